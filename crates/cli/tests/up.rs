//! `weft up` end to end: one command starts the control plane, bff-service and
//! recommendation-service v1 and v2 (real Python apps), each beside its own sidecar.
//! bff-service reaches recommendation-service by name through its sidecar; `weft apply`
//! shifts the split to 10/90, the fault rule makes every call fail with 500, `weft
//! delete` restores the even split, and `weft down` stops every process (twice is fine).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weft_testkit::binomial_tolerance;

/// Both tests use the addresses 127.0.10.N: one mesh at a time.
static ONE_MESH: std::sync::Mutex<()> = std::sync::Mutex::new(());

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("weft runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `weft down` however the test ends.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = weft(&["down", "--state-dir", &self.0.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// GET `/api` on bff-service through its sidecar's inbound listener: (status, body).
fn call_bff() -> (u16, String) {
    let mut stream = TcpStream::connect("127.0.10.1:15006").expect("bff sidecar accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /api HTTP/1.1\r\nhost: bff-service\r\nconnection: close\r\n\r\n")
        .expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// Share of `n` calls recommendation-service v1 answered (all must succeed).
fn v1_share(n: u32) -> f64 {
    let mut v1 = 0;
    for _ in 0..n {
        let (status, body) = call_bff();
        assert_eq!(status, 200, "{body}");
        if body.contains(r#""version": "v1""#) {
            v1 += 1;
        } else {
            assert!(body.contains(r#""version": "v2""#), "{body}");
        }
    }
    f64::from(v1) / f64::from(n)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// A scratch state directory (the mesh in it is stopped at the end) and free control
/// plane ports; holding it also holds the one-mesh lock.
struct Scratch {
    dir: PathBuf,
    state_dir: String,
    api: String,
    xds: String,
    _down: Down,
    _one: std::sync::MutexGuard<'static, ()>,
}

fn scratch(name: &str) -> Scratch {
    let one = ONE_MESH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("weft-{name}-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Scratch {
        state_dir: dir.to_string_lossy().to_string(),
        api: format!("127.0.0.1:{}", free_port()),
        xds: format!("127.0.0.1:{}", free_port()),
        _down: Down(dir.clone()),
        dir,
        _one: one,
    }
}

#[test]
fn up_runs_the_seed_scenario_and_down_stops_it() {
    let s = scratch("up");
    let (dir, state_dir, api, xds) = (&s.dir, &s.state_dir, &s.api, &s.xds);

    let up = weft(&[
        "up",
        "-f",
        "examples/up/recommendation.yaml",
        "--state-dir",
        state_dir,
        "--api",
        api,
        "--xds",
        xds,
    ]);
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(printed.contains("sidecars ready: 3/3"), "{printed}");

    // A second `weft up` on a running mesh is refused, not doubled.
    let again = weft(&[
        "up",
        "-f",
        "examples/up/recommendation.yaml",
        "--state-dir",
        state_dir,
        "--api",
        api,
        "--xds",
        xds,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let status = weft(&["status", "--state-dir", state_dir]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert_eq!(table.matches(" ready ").count(), 3, "{table}");

    // No VirtualService: both versions answer, about evenly.
    let n = 200;
    let share = v1_share(n);
    let tolerance = binomial_tolerance(n, 0.5, 4.0) / f64::from(n);
    assert!(
        (share - 0.5).abs() < tolerance,
        "v1 share {share} without rules"
    );

    // 10/90.
    let applied = weft(&[
        "apply",
        "--server",
        api,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    wait_for("the 10/90 split", || v1_share(20) <= 0.25);
    let share = v1_share(n);
    let tolerance = binomial_tolerance(n, 0.1, 4.0) / f64::from(n);
    assert!(
        (share - 0.1).abs() < tolerance,
        "v1 share {share} under 10/90"
    );

    // The fault rule: every call fails with 500, and bff-service passes it on.
    let fault = weft(&[
        "apply",
        "--server",
        api,
        "-f",
        "examples/recommendation/virtual-service-fault.yaml",
    ]);
    assert!(
        fault.status.success(),
        "{}",
        String::from_utf8_lossy(&fault.stderr)
    );
    wait_for("the fault", || call_bff().0 == 500);
    for _ in 0..20 {
        let (status, body) = call_bff();
        assert_eq!(status, 500, "{body}");
    }

    // Deleting the rule restores the even split.
    let deleted = weft(&[
        "delete",
        "--server",
        api,
        "virtualservice",
        "recommendation-service",
    ]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    wait_for("recovery", || call_bff().0 == 200);
    let share = v1_share(n);
    let tolerance = binomial_tolerance(n, 0.5, 4.0) / f64::from(n);
    assert!(
        (share - 0.5).abs() < tolerance,
        "v1 share {share} after delete"
    );

    // Down stops every process it started; a second down is a no-op.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state file"))
            .expect("state JSON");
    let mut pids = vec![state["control_pid"].to_string()];
    for w in state["workloads"].as_array().expect("workloads") {
        pids.push(w["app_pid"].to_string());
        pids.push(w["sidecar_pid"].to_string());
    }
    assert_eq!(pids.len(), 7);
    let down = weft(&["down", "--state-dir", state_dir]);
    assert!(down.status.success());
    for pid in &pids {
        assert!(!alive(pid), "process {pid} still runs after weft down");
    }
    let twice = weft(&["down", "--state-dir", state_dir]);
    assert!(twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stdout).contains("Nothing to stop"));
}

#[test]
fn demo_narrates_the_scenario_and_stops_the_mesh() {
    let s = scratch("demo");
    let (dir, state_dir, api, xds) = (&s.dir, &s.state_dir, &s.api, &s.xds);
    let demo = weft(&[
        "demo",
        "--no-pause",
        "--calls",
        "30",
        "--state-dir",
        state_dir,
        "--api",
        api,
        "--xds",
        xds,
    ]);
    let printed = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for step in [
        "1. Start the mesh",
        "2. No routing rule",
        "3. A VirtualService",
        "4. A fault rule",
        "5. Delete the rules",
        "mesh down",
    ] {
        assert!(printed.contains(step), "missing {step:?} in:\n{printed}");
    }
    // The fault step: all 30 calls answered 500.
    let fault = printed
        .split("4. A fault rule")
        .nth(1)
        .and_then(|s| s.split("5. Delete").next())
        .expect("fault step");
    let count_500: u32 = fault
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("500").map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    assert_eq!(count_500, 30, "{fault}");
    assert!(
        !dir.join("state.json").exists(),
        "the demo left its mesh running"
    );
}

#[test]
fn up_uses_a_running_control_plane_and_down_leaves_it_clean() {
    let _one = ONE_MESH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("weft-up-reuse-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _guard = Down(dir.join("up"));
    let api = format!("127.0.0.1:{}", free_port());
    let xds = format!("127.0.0.1:{}", free_port());
    let mut control = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["control", "--api", &api, "--xds", &xds, "--state-dir"])
        .arg(dir.join("control"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("control plane starts");
    wait_for("the control plane", || TcpStream::connect(&api).is_ok());
    let state_dir = dir.join("up").to_string_lossy().to_string();
    let up = weft(&[
        "up",
        "-f",
        "examples/up/recommendation.yaml",
        "--state-dir",
        &state_dir,
        "--api",
        &api,
        "--xds",
        &xds,
    ]);
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        printed.contains("using the control plane already running"),
        "{printed}"
    );
    let (status, body) = call_bff();
    assert_eq!(status, 200, "{body}");

    let down = weft(&["down", "--state-dir", &state_dir]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        control.try_wait().expect("status").is_none(),
        "down stopped a control plane it did not start"
    );
    let left = weft(&["get", "serviceentries", "--server", &api]);
    let listed = String::from_utf8_lossy(&left.stdout);
    assert!(
        left.status.success(),
        "{}",
        String::from_utf8_lossy(&left.stderr)
    );
    assert!(
        !listed.contains("bff-service") && !listed.contains("recommendation-service"),
        "services left behind:\n{listed}"
    );
    let _ = control.kill();
    let _ = control.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
