//! SIGTERM while requests are in flight: the proxy stops accepting, lets them finish
//! within the drain period, then exits 0. No in-flight request is lost.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use weft_testkit::client::get;
use weft_testkit::upstream::{self, Reply};
use weft_testkit::{eventually, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_in_flight_request() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(400),
        ..Reply::ok("done")
    }))
    .await;
    let dir = std::env::temp_dir().join(format!("weft-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("mesh.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: slow}}\nspec:\n  hosts: [slow.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
            slow.addr.port()
        ),
    )
    .expect("config");
    let (outbound, admin) = (free_port(), free_port());
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["proxy", "--stats", "127.0.0.1:0", "--config"])
        .arg(&config)
        .args([
            "--outbound",
            &format!("127.0.0.1:{outbound}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--drain",
            "3s",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("weft proxy starts");
    let outbound_addr: std::net::SocketAddr =
        format!("127.0.0.1:{outbound}").parse().expect("addr");
    eventually("the proxy listens", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(outbound_addr)
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    let mut in_flight = Vec::new();
    for _ in 0..20 {
        in_flight.push(tokio::spawn(async move {
            get(outbound_addr, "http://slow:8080/").await
        }));
    }
    eventually(
        "every request reached the upstream",
        Duration::from_secs(5),
        || async { (slow.hits() == 20).then_some(()) },
    )
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    for request in in_flight {
        let got = request.await.expect("task");
        assert_eq!(
            (got.status.as_u16(), got.body.as_str()),
            (200, "done"),
            "an in-flight request was lost"
        );
    }
    let exit = tokio::task::spawn_blocking(move || proxy.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        exit.success(),
        "the proxy exits cleanly after draining: {exit}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
