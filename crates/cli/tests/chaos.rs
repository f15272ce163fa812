//! Failures sized for CI, with real processes: the control plane killed with `-9` and
//! restarted while routing flips under load (no request fails); an upstream killed in the
//! middle of a request (a prompt 503, no hang, and the next requests go to the endpoint
//! left); the control plane's disk full (the apply is refused with the reason, nothing
//! stored is lost).

#![allow(clippy::print_stderr)]

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use weft_testkit::client::{Send, via_proxy};
use weft_testkit::{eventually, free_port, upstream};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

/// The tests that run control planes on picked free ports take turns: two running at
/// once could be handed the same port between picking it and binding it (a control plane
/// answering another test's requests made these tests fail now and then).
static CONTROL_PLANES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn listening(addr: std::net::SocketAddr) {
    eventually(
        &format!("something listens on {addr}"),
        Duration::from_secs(15),
        || async { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) },
    )
    .await;
}

fn control(state: &std::path::Path, api: u16, xds: u16) -> Process {
    let child = weft()
        .args([
            "control",
            "--otlp",
            "off",
            "--query",
            "off",
            "--dashboard",
            "off",
        ])
        .args(["--api", &format!("127.0.0.1:{api}")])
        .args(["--xds", &format!("127.0.0.1:{xds}")])
        .arg("--state-dir")
        .arg(state)
        .stderr(Stdio::null())
        .spawn()
        .expect("weft control starts");
    Process(child)
}

fn apply(api: u16, file: &std::path::Path) -> Output {
    weft()
        .args(["apply", "-f"])
        .arg(file)
        .args(["--server", &format!("127.0.0.1:{api}")])
        .output()
        .expect("weft apply runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn services(v1: std::net::SocketAddr, v2: std::net::SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: {}, ports: {{http: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"#,
        v1.ip(),
        v1.port(),
        v2.ip(),
        v2.port()
    )
}

fn route_to(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: {subset}}}}}]\n"
    )
}

async fn get(proxy: std::net::SocketAddr) -> (u16, String) {
    let got = via_proxy(
        proxy,
        Send {
            url: "http://reviews:9080/",
            ..Default::default()
        },
    )
    .await;
    (got.status.as_u16(), got.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_flips_under_load_while_the_control_plane_is_killed_and_restarted() {
    let _turn = CONTROL_PLANES.lock().await;
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let dir = weft_testkit::fresh_dir("chaos-control");
    let state = dir.join("state");
    let (api, xds, outbound) = (free_port(), free_port(), free_port());
    let mut cp = Some(control(&state, api, xds));
    listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
    let base = dir.join("services.yaml");
    std::fs::write(&base, services(v1.addr, v2.addr)).expect("write");
    let to = |subset: &str| {
        let f = dir.join(format!("route-{subset}.yaml"));
        std::fs::write(&f, route_to(subset)).expect("write");
        f
    };
    let (to_v1, to_v2) = (to("v1"), to("v2"));
    assert!(apply(api, &base).status.success());
    assert!(apply(api, &to_v1).status.success());
    let proxy_addr: std::net::SocketAddr = format!("127.0.0.1:{outbound}").parse().expect("addr");
    let _proxy = Process(
        weft()
            .args(["proxy", "--control", &format!("127.0.0.1:{xds}")])
            .args(["--workload", "sidecar~bff.default"])
            .args(["--outbound", &proxy_addr.to_string()])
            .args(["--stats", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("weft proxy starts"),
    );
    listening(proxy_addr).await;
    eventually("the pushed route", Duration::from_secs(15), || async {
        (get(proxy_addr).await == (200, "v1".into())).then_some(())
    })
    .await;

    // Load from four clients while routing flips, the control plane is killed -9 and
    // restarted on the same ports and state.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, failures) =
            (stop.clone(), ok.clone(), failed.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = get(proxy_addr).await;
                if status == 200 && (body == "v1" || body == "v2") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("{status} {body}"));
                }
            }
        }));
    }
    let mut flips = 0;
    let started = std::time::Instant::now();
    let mut killed = false;
    let mut restarted = false;
    while started.elapsed() < Duration::from_secs(9) {
        let t = started.elapsed();
        if !killed && t > Duration::from_secs(3) {
            drop(cp.take()); // SIGKILL
            killed = true;
        }
        if killed && !restarted && t > Duration::from_secs(5) {
            cp = Some(control(&state, api, xds));
            listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
            restarted = true;
        }
        if cp.is_some() {
            let target = if flips % 2 == 0 { &to_v2 } else { &to_v1 };
            if apply(api, target).status.success() {
                flips += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // The route applied last reaches the proxy through the restarted control plane.
    let last = if flips % 2 == 0 { "v1" } else { "v2" };
    eventually(
        "the last route after the restart",
        Duration::from_secs(15),
        || async { (get(proxy_addr).await == (200, last.to_string())).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {:?}",
        ok + failed,
        failures
            .lock()
            .expect("lock")
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(ok > 200, "only {ok} requests");
    assert!(flips >= 20, "only {flips} flips");
    assert!(v1.hits() > 0 && v2.hits() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_request_gets_a_prompt_503_and_traffic_moves_on() {
    let dir = weft_testkit::fresh_dir("chaos-upstream");
    // The doomed endpoint: a separate process that answers after 3 s, killed after 300 ms.
    let doomed_port = free_port();
    let doomed = Process(
        Command::new("python3")
            .args([
                "-c",
                "import http.server,time\nclass H(http.server.BaseHTTPRequestHandler):\n  def do_GET(self):\n    time.sleep(3); self.send_response(200); self.end_headers(); self.wfile.write(b'late')\n  def log_message(self,*a): pass\nhttp.server.HTTPServer(('127.0.0.1', int(__import__('sys').argv[1])), H).serve_forever()\n",
                &doomed_port.to_string(),
            ])
            .spawn()
            .expect("python3 runs"),
    );
    let doomed_addr: std::net::SocketAddr =
        format!("127.0.0.1:{doomed_port}").parse().expect("addr");
    listening(doomed_addr).await;
    let healthy = upstream::named("healthy").await;
    let services = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{http: {doomed_port}}}, labels: {{version: v1}}}}\n  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n",
        healthy.addr.port()
    );
    // First pinned to the doomed endpoint (its subset).
    let config = dir.join("mesh.yaml");
    std::fs::write(&config, format!("{services}---\n{}", route_to("v1"))).expect("write");
    let outbound = free_port();
    let proxy_addr: std::net::SocketAddr = format!("127.0.0.1:{outbound}").parse().expect("addr");
    let _proxy = Process(
        weft()
            .args(["proxy", "-c"])
            .arg(&config)
            .args(["--outbound", &proxy_addr.to_string()])
            .args(["--stats", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("weft proxy starts"),
    );
    listening(proxy_addr).await;
    let in_flight = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let got = via_proxy(
            proxy_addr,
            Send {
                url: "http://reviews:9080/",
                headers: &[("x-request", "doomed")],
                ..Default::default()
            },
        )
        .await;
        (
            got.status.as_u16(),
            got.header("x-weft-response-flags").map(str::to_string),
            started.elapsed(),
        )
    });
    // Wait until the doomed server has the request, then kill it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(doomed);
    let (status, flags, took) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request ends: no hang")
        .expect("client");
    assert_eq!(status, 503, "flags {flags:?}");
    assert!(
        took < Duration::from_secs(3),
        "answered when the upstream died, not when it would have answered: {took:?}"
    );
    assert!(
        flags.as_deref().is_some_and(|f| f.contains("UC")),
        "upstream connection termination: {flags:?}"
    );
    // Unpinned again: the dead endpoint refuses connections, which Istio's default retry
    // policy retries on the other endpoint; no request fails.
    std::fs::write(&config, &services).expect("unpin");
    eventually(
        "the route without the pin",
        Duration::from_secs(10),
        || async { (get(proxy_addr).await == (200, "healthy".into())).then_some(()) },
    )
    .await;
    for i in 0..20 {
        assert_eq!(
            get(proxy_addr).await,
            (200, "healthy".into()),
            "request {i}"
        );
    }
}

/// Unmounts (lazily) a test's mount when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `weft get virtualservice reviews -o yaml` against the control plane at `api`.
fn get_route(api: u16) -> Output {
    weft()
        .args([
            "get",
            "virtualservice",
            "reviews",
            "-n",
            "default",
            "-o",
            "yaml",
        ])
        .args(["--server", &format!("127.0.0.1:{api}")])
        .output()
        .expect("weft get runs")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_apply_and_loses_nothing_stored() {
    let _turn = CONTROL_PLANES.lock().await;
    if !is_root() {
        eprintln!(
            "SKIPPED: a full disk needs a small tmpfs, which needs root; run the tests as root to include it"
        );
        return;
    }
    let dir = weft_testkit::fresh_dir("chaos-disk");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("dir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs as root");
    let _unmount = Unmount(state.clone());
    let (api, xds) = (free_port(), free_port());
    let cp = control(&state, api, xds);
    listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
    let v1 = upstream::named("v1").await;
    let base = dir.join("services.yaml");
    std::fs::write(&base, services(v1.addr, v1.addr)).expect("write");
    assert!(apply(api, &base).status.success());
    let route = dir.join("route.yaml");
    std::fs::write(&route, route_to("v1")).expect("write");
    let applied = apply(api, &route);
    assert!(applied.status.success(), "{}", text(&applied));
    // Fill the disk.
    let filler = state.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=100"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let change = dir.join("change.yaml");
    std::fs::write(&change, route_to("v2")).expect("write");
    let refused = apply(api, &change);
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("No space left on device"),
        "the reason is named: {said}"
    );
    // What was stored is intact, served and survives a restart, once there is room again.
    let got = get_route(api);
    assert!(text(&got).contains("subset: v1"), "{}", text(&got));
    drop(cp);
    std::fs::remove_file(&filler).expect("room again");
    let _cp = control(&state, api, xds);
    listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
    let got = get_route(api);
    assert!(
        text(&got).contains("subset: v1"),
        "after the restart: {}",
        text(&got)
    );
    let list = weft()
        .args(["get", "serviceentry", "-n", "default"])
        .args(["--server", &format!("127.0.0.1:{api}")])
        .output()
        .expect("weft get runs");
    assert!(text(&list).contains("reviews"), "{}", text(&list));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_state_directory_refuses_the_apply_and_loses_nothing_stored() {
    let _turn = CONTROL_PLANES.lock().await;
    if !is_root() {
        eprintln!("SKIPPED: a read-only mount needs root; run the tests as root to include it");
        return;
    }
    let dir = weft_testkit::fresh_dir("chaos-readonly");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("dir");
    let (api, xds) = (free_port(), free_port());
    let cp = control(&state, api, xds);
    listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
    let route = dir.join("route.yaml");
    std::fs::write(&route, route_to("v1")).expect("write");
    let applied = apply(api, &route);
    assert!(applied.status.success(), "{}", text(&applied));
    // The state directory turns read-only under the running control plane.
    let mount = |args: &[&str]| {
        let ok = Command::new("mount")
            .args(args)
            .arg(&state)
            .arg(&state)
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "mount {args:?}");
    };
    mount(&["--bind"]);
    let unmount = Unmount(state.clone());
    let ok = Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&state)
        .status()
        .expect("mount runs")
        .success();
    assert!(ok, "remount read-only");
    let change = dir.join("change.yaml");
    std::fs::write(&change, route_to("v2")).expect("write");
    let refused = apply(api, &change);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("Read-only file system"),
        "the reason is named: {}",
        text(&refused)
    );
    assert!(
        text(&get_route(api)).contains("subset: v1"),
        "{}",
        text(&get_route(api))
    );
    // Writable again and restarted: the stored route is there, unchanged.
    drop(cp);
    drop(unmount);
    let _cp = control(&state, api, xds);
    listening(format!("127.0.0.1:{api}").parse().expect("addr")).await;
    let got = get_route(api);
    assert!(
        text(&got).contains("subset: v1"),
        "after the restart: {}",
        text(&got)
    );
}
