//! The dashboard end to end, in a real browser: `weft up` starts the seed mesh, calls
//! flow through the ingress gateway the whole time, and headless Chromium (driven by
//! playwright-core, `crates/control/dashboard/e2e/seed.mjs`) checks the graph, shifts
//! traffic to 10/90 with the editor, injects and resets a fault, searches traces for
//! errors and opens one as a waterfall, and finds an analysis finding on the config page.
//! Screenshots go to `WEFT_SCREENSHOTS` (docs/dashboard/ when refreshed for the docs).
//!
//! The JSON endpoints' own answers to bad input are checked here too.

// The skip notice goes to the terminal on purpose.
#![allow(clippy::print_stderr)]

mod common;

use common::{Down, ROOT, is_root, weft};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weft_testkit::free_port;

/// `method path` to `addr` with `headers`: (status, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr} accepts: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Calls bff-service through the ingress gateway until dropped.
struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    fn start(ingress: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(mut s) = TcpStream::connect(&ingress) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = write!(
                        s,
                        "GET /api HTTP/1.1\r\nhost: {ingress}\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.read_to_end(&mut Vec::new());
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Traffic(stop, Some(handle))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            let _ = h.join();
        }
    }
}

/// What the browser test needs: as root (CI, where scripts/test installs them) their
/// absence fails the test; otherwise it says it skips.
fn browser_or_skip(dashboard_dir: &Path) -> bool {
    let missing: Vec<&str> = [
        (
            "node",
            Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
        ),
        ("/usr/bin/chromium", Path::new("/usr/bin/chromium").exists()),
        (
            "playwright-core (npm ci in crates/control/dashboard)",
            dashboard_dir.join("node_modules/playwright-core").exists(),
        ),
    ]
    .into_iter()
    .filter_map(|(what, ok)| (!ok).then_some(what))
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !is_root(),
        "the browser test needs {}: scripts/test installs them",
        missing.join(", ")
    );
    eprintln!(
        "SKIPPED: {} missing (run scripts/test as root to install them)",
        missing.join(", ")
    );
    false
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

const BAD_SUBSET: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-subset
  namespace: default
spec:
  hosts: [canary.example.com]
  http:
  - route:
    - destination:
        host: recommendation-service
        subset: v9
---
# The Gateway API route the routes page shows: accepted by its Gateway (whose proxy the
# gateway deployer starts), refused by nothing, and a parent that does not exist.
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bff-gateway, namespace: default}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bff-ingress, namespace: default}
spec:
  parentRefs: [{name: bff-gateway}, {name: missing-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {name: bff-service, port: 8080, weight: 3}
    - {name: bff-service-canary, port: 8080, weight: 1}
";

#[test]
fn the_dashboard_shows_and_steers_the_seed_mesh_in_a_real_browser() {
    let dashboard_dir = Path::new(ROOT).join("crates/control/dashboard");
    if !browser_or_skip(&dashboard_dir) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("weft-dashboard-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state_dir = dir.to_string_lossy().to_string();
    let port = |_: u8| format!("127.0.0.1:{}", free_port());
    let (api, xds, ingress, otlp, query, dashboard) =
        (port(0), port(1), port(2), port(3), port(4), port(5));
    let _down = Down(dir.clone());
    let up = weft(&[
        "up",
        "-f",
        "examples/up/recommendation.yaml",
        "--mode",
        "loopback",
        "--state-dir",
        &state_dir,
        "--api",
        &api,
        "--xds",
        &xds,
        "--ingress",
        &ingress,
        "--otlp",
        &otlp,
        "--query",
        &query,
        "--dashboard",
        &dashboard,
    ]);
    assert!(
        up.status.success(),
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );

    // A VirtualService naming a subset no DestinationRule defines: the config page's finding.
    let bad = dir.join("bad-subset.yaml");
    std::fs::write(&bad, BAD_SUBSET).expect("written");
    let applied = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .args(["apply", "--server", &api, "-f", &bad.to_string_lossy()])
        .current_dir(ROOT)
        .output()
        .expect("weft runs");
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // The JSON endpoints refuse bad input with 400 and a message; unknown traces are 404.
    let (status, body) = request(&dashboard, "GET", "/api/mesh/graph?window=soon", &[], "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("window"), "{body}");
    let (status, _) = request(&dashboard, "GET", "/api/traces?minDuration=soon", &[], "");
    assert_eq!(status, 400);
    let (status, _) = request(
        &dashboard,
        "GET",
        "/api/traces/00000000000000000000000000000001",
        &[],
        "",
    );
    assert_eq!(status, 404);
    // Writes need the dashboard's header and its own origin.
    let put = "/api/mesh/traffic?namespace=default&service=recommendation-service";
    let form = r#"{"weights": {"v1": 50, "v2": 50}}"#;
    assert_eq!(request(&dashboard, "PUT", put, &[], form).0, 403);
    assert_eq!(
        request(
            &dashboard,
            "PUT",
            put,
            &[("x-weft-dashboard", "1"), ("origin", "http://evil.example")],
            form
        )
        .0,
        403
    );
    assert_eq!(
        request(
            &dashboard,
            "PUT",
            put,
            &[("x-weft-dashboard", "1"), ("sec-fetch-site", "cross-site")],
            form
        )
        .0,
        403
    );
    let (status, body) = request(
        &dashboard,
        "PUT",
        put,
        &[("x-weft-dashboard", "1")],
        r#"{"weights": {"v1": -5, "v2": 105}}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("weights.v1") && body.contains("weights.v2"),
        "{body}"
    );

    let _traffic = Traffic::start(ingress.clone());
    // The gateway's calls are labelled with its workload, so the graph has its node.
    wait_for(
        "the gateway's edge in the graph",
        Duration::from_secs(60),
        || {
            let (status, body) = request(&dashboard, "GET", "/api/mesh/graph?window=30s", &[], "");
            status == 200
                && body.contains("wl:istio-system/istio-ingressgateway>svc:default/bff-service")
        },
    );

    let screenshots = std::env::var("WEFT_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("screenshots"));
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let run = Command::new("node")
        .arg(dashboard_dir.join("e2e/seed.mjs"))
        .current_dir(&dashboard_dir)
        .env("WEFT_DASHBOARD", format!("http://{dashboard}"))
        .env("WEFT_SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{out}");
    assert!(run.status.success(), "the browser test failed:\n{out}");
    for shot in [
        "graph.png",
        "traffic.png",
        "graph-fault.png",
        "traces.png",
        "trace.png",
        "config.png",
        "routes.png",
    ] {
        let size = std::fs::metadata(screenshots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 10_000, "{shot}: {size} bytes");
    }

    // The control plane restarts under an open page: it shows "Reconnecting" and comes
    // back by itself, without a reload.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state"))
            .expect("JSON");
    let pid = state["control_pid"]
        .as_u64()
        .expect("the control plane's pid")
        .to_string();
    let cmdline: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("its command line")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut watcher = Command::new("node")
        .arg(dashboard_dir.join("e2e/reconnect.mjs"))
        .current_dir(&dashboard_dir)
        .env("WEFT_DASHBOARD", format!("http://{dashboard}"))
        .env("WEFT_SCREENSHOTS", &screenshots)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = watcher.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let expect = |want: &str| {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("reconnect.mjs never printed {want}"));
        assert_eq!(line, want);
    };
    expect("READY");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success())
    );
    wait_for("the control plane to stop", Duration::from_secs(15), || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    expect("BANNER");
    let restarted = Command::new(&cmdline[0])
        .args(&cmdline[1..])
        .current_dir(ROOT)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the control plane restarts");
    let _restarted = Killed(restarted);
    expect("RECOVERED");
    assert!(watcher.wait().expect("node ends").success());
}

/// A process killed when the test ends (the restarted control plane, which `weft down`
/// does not know).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
