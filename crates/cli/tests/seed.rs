//! The seed scenario end to end with real processes: `weft control`, a client-side
//! `weft proxy --control`, recommendation-service v1 and v2 at the addresses the example
//! ServiceEntry declares; `weft apply` shifts the split to 10/90, `weft delete` restores it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_testkit::client::{Send, get, via_proxy};
use weft_testkit::upstream::{self, Reply};
use weft_testkit::{binomial_tolerance, eventually, free_port};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("weft runs")
}

/// Share of `n` calls answered by v1.
async fn v1_share(proxy: std::net::SocketAddr, n: u32) -> f64 {
    let mut v1 = 0;
    for _ in 0..n {
        let got = get(proxy, "http://recommendation-service:8080/").await;
        assert_eq!(got.status, 200, "{}", got.body);
        if got.body == "v1" {
            v1 += 1;
        }
    }
    f64::from(v1) / f64::from(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_shifts_the_split_and_delete_restores_it() {
    // The endpoints examples/recommendation/service-entries.yaml declares.
    let _v1 = upstream::http_on(
        "127.0.0.1:9001".parse().expect("addr"),
        Arc::new(|_, _| Reply::ok("v1")),
    )
    .await;
    let _v2 = upstream::http_on(
        "127.0.0.2:9002".parse().expect("addr"),
        Arc::new(|_, _| Reply::ok("v2")),
    )
    .await;
    let state = std::env::temp_dir().join(format!("weft-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (api, xds, outbound, admin) = (free_port(), free_port(), free_port(), free_port());
    let server = format!("127.0.0.1:{api}");
    let _control = Killed(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "control",
                "--otlp",
                "127.0.0.1:0",
                "--query",
                "127.0.0.1:0",
                "--dashboard",
                "127.0.0.1:0",
                "--api",
                &server,
                "--xds",
                &format!("127.0.0.1:{xds}"),
                "--state-dir",
            ])
            .arg(&state)
            .stderr(Stdio::null())
            .spawn()
            .expect("weft control"),
    );
    let _proxy = Killed(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "proxy",
                "--stats",
                "127.0.0.1:0",
                "--control",
                &format!("127.0.0.1:{xds}"),
                "--workload",
                "bff-service",
            ])
            .args([
                "--outbound",
                &format!("127.0.0.1:{outbound}"),
                "--admin",
                &format!("127.0.0.1:{admin}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("weft proxy"),
    );
    let api_addr: std::net::SocketAddr = server.parse().expect("addr");
    eventually("the control plane", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(api_addr)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let base = weft(&[
        "apply",
        "--server",
        &server,
        "-f",
        "examples/recommendation/service-entries.yaml",
        "-f",
        "examples/recommendation/destination-rule.yaml",
    ]);
    assert!(
        base.status.success(),
        "{}",
        String::from_utf8_lossy(&base.stderr)
    );
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{outbound}").parse().expect("addr");
    let admin_url = format!("http://127.0.0.1:{admin}/ready");
    eventually(
        "the proxy has its first configuration",
        Duration::from_secs(10),
        || async {
            let ok = tokio::net::TcpStream::connect(format!("127.0.0.1:{admin}"))
                .await
                .is_ok();
            if !ok {
                return None;
            }
            let ready = via_proxy(
                format!("127.0.0.1:{admin}").parse().ok()?,
                Send {
                    url: &admin_url,
                    ..Default::default()
                },
            )
            .await;
            (ready.status == 200).then_some(())
        },
    )
    .await;

    let n = 400;
    let even = v1_share(proxy, n).await;
    assert!(
        (even - 0.5).abs() * f64::from(n) <= binomial_tolerance(n, 0.5, 5.0),
        "before any rule: v1 share {even}"
    );

    let applied = weft(&[
        "apply",
        "--server",
        &server,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(
        String::from_utf8_lossy(&applied.stdout)
            .contains("virtualservice.networking.istio.io/recommendation-service created")
    );
    let start = Instant::now();
    // 40 calls with no v1 answer at all would be unlikely under an even split (2^-40).
    eventually(
        "the 10/90 rule reaches the proxy",
        Duration::from_secs(5),
        || async { (v1_share(proxy, 40).await < 0.3).then_some(()) },
    )
    .await;
    let converged = start.elapsed();
    let split = v1_share(proxy, n).await;
    assert!(
        (split - 0.1).abs() * f64::from(n) <= binomial_tolerance(n, 0.1, 5.0),
        "after the 10/90 rule: v1 share {split}"
    );
    assert!(
        converged < Duration::from_secs(2),
        "converged in {converged:?}"
    );

    // What the proxy holds, through the control plane: its routes carry the 10/90 weights.
    let routes = weft(&["proxy-config", "routes", "bff-service", "--server", &server]);
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains("outbound|8080|v2|recommendation-service.default.svc.cluster.local")
            && routes.contains("\"weight\": 90"),
        "{routes}"
    );
    let status = weft(&["proxy-status", "--server", &server]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("sidecar~bff-service.default"));
    let described = weft(&[
        "describe",
        "service",
        "recommendation-service",
        "--server",
        &server,
    ]);
    let described = String::from_utf8_lossy(&described.stdout);
    for line in [
        "Service:     recommendation-service.default.svc.cluster.local",
        "outbound|8080|v1|recommendation-service.default.svc.cluster.local 10%",
        "outbound|8080|v2|recommendation-service.default.svc.cluster.local 90%",
        "127.0.0.2:9002  [app=recommendation-service,version=v2]  healthy",
        "Proxies connected: sidecar~bff-service.default",
    ] {
        assert!(described.contains(line), "missing {line:?} in\n{described}");
    }

    let deleted = weft(&[
        "delete",
        "--server",
        &server,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(String::from_utf8_lossy(&deleted.stdout).contains("deleted"));
    eventually("the even split is back", Duration::from_secs(5), || async {
        (v1_share(proxy, 40).await > 0.25).then_some(())
    })
    .await;
    let back = v1_share(proxy, n).await;
    assert!(
        (back - 0.5).abs() * f64::from(n) <= binomial_tolerance(n, 0.5, 5.0),
        "after delete: v1 share {back}"
    );
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_control_plane_under_load_fails_no_request() {
    let app = upstream::http(Arc::new(|_, _| Reply::ok("ok"))).await;
    let state = std::env::temp_dir().join(format!("weft-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (api, xds, outbound) = (free_port(), free_port(), free_port());
    let server = format!("127.0.0.1:{api}");
    let start_control = || {
        Killed(
            Command::new(env!("CARGO_BIN_EXE_weft"))
                .args([
                    "control",
                    "--otlp",
                    "127.0.0.1:0",
                    "--query",
                    "127.0.0.1:0",
                    "--dashboard",
                    "127.0.0.1:0",
                    "--api",
                    &server,
                    "--xds",
                    &format!("127.0.0.1:{xds}"),
                    "--state-dir",
                ])
                .arg(&state)
                .stderr(Stdio::null())
                .spawn()
                .expect("weft control"),
        )
    };
    let control = start_control();
    let _proxy = Killed(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "proxy",
                "--stats",
                "127.0.0.1:0",
                "--control",
                &format!("127.0.0.1:{xds}"),
                "--workload",
                "client",
            ])
            .args([
                "--outbound",
                &format!("127.0.0.1:{outbound}"),
                "--admin",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("weft proxy"),
    );
    let api_addr: std::net::SocketAddr = server.parse().expect("addr");
    eventually("the control plane", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(api_addr)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let entry = std::env::temp_dir().join(format!("weft-kill9-{}.yaml", std::process::id()));
    std::fs::write(&entry, format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: app}}\nspec:\n  hosts: [app.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n", app.addr.port())).expect("write");
    let entry_path = entry.to_string_lossy().into_owned();
    assert!(
        weft(&["apply", "--server", &server, "-f", &entry_path])
            .status
            .success()
    );
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{outbound}").parse().expect("addr");
    eventually("the proxy routes", Duration::from_secs(10), || async {
        (get(proxy, "http://app/").await.status == 200).then_some(())
    })
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, mut failures, mut total) = (stop.clone(), 0u32, 0u32);
    let load = tokio::spawn(async move {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let got = get(proxy, "http://app/").await;
            total += 1;
            if got.status != 200 {
                failures += 1;
            }
        }
        (total, failures)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(control); // SIGKILL
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _control = start_control();
    eventually(
        "the restarted control plane",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(api_addr)
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    let listed = weft(&["get", "se", "--server", &server]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("app"),
        "the accepted resource survived kill -9"
    );
    eventually("the proxy reconnects", Duration::from_secs(10), || async {
        let status = weft(&["proxy-status", "--server", &server]);
        String::from_utf8_lossy(&status.stdout)
            .contains("sidecar~client.default")
            .then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (total, failures) = load.await.expect("load");
    assert!(total > 50, "the load ran ({total} requests)");
    assert_eq!(
        failures, 0,
        "no request failed while the control plane was killed and restarted"
    );
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&entry);
}

/// Starts `weft proxy --control` in front of `app`, registering it with `labels`.
fn sidecar(xds: u16, workload: &str, labels: &str, app: std::net::SocketAddr) -> (Killed, u16) {
    let inbound = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy",
            "--stats",
            "127.0.0.1:0",
            "--control",
            &format!("127.0.0.1:{xds}"),
            "--workload",
            workload,
            "--labels",
            labels,
        ])
        .args([
            "--app",
            &app.to_string(),
            "--inbound",
            &format!("127.0.0.1:{inbound}"),
        ])
        .args([
            "--outbound",
            &format!("127.0.0.1:{}", free_port()),
            "--admin",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--address",
            "127.0.0.1",
            "--port",
            &format!("http={inbound}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("weft proxy");
    (Killed(child), inbound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_on_both_sides_register_and_route_by_the_rules() {
    let v1 = upstream::http(Arc::new(|_, _| Reply::ok("v1"))).await;
    let v2 = upstream::http(Arc::new(|_, _| Reply::ok("v2"))).await;
    let state = std::env::temp_dir().join(format!("weft-both-sides-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (api, xds, outbound) = (free_port(), free_port(), free_port());
    let server = format!("127.0.0.1:{api}");
    let _control = Killed(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "control",
                "--otlp",
                "127.0.0.1:0",
                "--query",
                "127.0.0.1:0",
                "--dashboard",
                "127.0.0.1:0",
                "--api",
                &server,
                "--xds",
                &format!("127.0.0.1:{xds}"),
                "--state-dir",
            ])
            .arg(&state)
            .stderr(Stdio::null())
            .spawn()
            .expect("weft control"),
    );
    let api_addr: std::net::SocketAddr = server.parse().expect("addr");
    eventually("the control plane", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(api_addr)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let _s1 = sidecar(
        xds,
        "recommendation-v1",
        "app=recommendation-service,version=v1",
        v1.addr,
    );
    let _s2 = sidecar(
        xds,
        "recommendation-v2",
        "app=recommendation-service,version=v2",
        v2.addr,
    );
    let _client = Killed(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "proxy",
                "--stats",
                "127.0.0.1:0",
                "--control",
                &format!("127.0.0.1:{xds}"),
                "--workload",
                "bff-service",
            ])
            .args([
                "--outbound",
                &format!("127.0.0.1:{outbound}"),
                "--admin",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("weft proxy"),
    );
    // The service selects its workloads by label, as Kubernetes Services do in Istio.
    let entry = state.with_extension("yaml");
    std::fs::write(
        &entry,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: recommendation-service}\nspec:\n  hosts: [recommendation-service.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: recommendation-service}}\n",
    )
    .expect("write");
    let entry_path = entry.to_string_lossy().into_owned();
    let applied = weft(&[
        "apply",
        "--server",
        &server,
        "-f",
        &entry_path,
        "-f",
        "examples/recommendation/destination-rule.yaml",
    ]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{outbound}").parse().expect("addr");
    eventually(
        "both registered workloads serve",
        Duration::from_secs(10),
        || async {
            if tokio::net::TcpStream::connect(proxy).await.is_err() {
                return None;
            }
            let got = get(proxy, "http://recommendation-service:8080/").await;
            (got.status == 200 && v1.hits() > 0 && v2.hits() > 0).then_some(())
        },
    )
    .await;
    let n = 400;
    let even = v1_share(proxy, n).await;
    assert!(
        (even - 0.5).abs() * f64::from(n) <= binomial_tolerance(n, 0.5, 5.0),
        "even split through both sidecars: {even}"
    );

    let applied = weft(&[
        "apply",
        "--server",
        &server,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(applied.status.success());
    eventually("the 10/90 rule", Duration::from_secs(5), || async {
        (v1_share(proxy, 40).await < 0.3).then_some(())
    })
    .await;
    let split = v1_share(proxy, n).await;
    assert!(
        (split - 0.1).abs() * f64::from(n) <= binomial_tolerance(n, 0.1, 5.0),
        "10/90 through both sidecars: {split}"
    );
    let seen = v2.seen();
    let last = seen.last().expect("v2 was called");
    assert!(
        last.headers.get("x-forwarded-for").is_some(),
        "requests crossed the server-side sidecar's inbound listener"
    );

    let _ = weft(&[
        "delete",
        "--server",
        &server,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    eventually("the even split is back", Duration::from_secs(5), || async {
        (v1_share(proxy, 40).await > 0.25).then_some(())
    })
    .await;
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&entry);
}
