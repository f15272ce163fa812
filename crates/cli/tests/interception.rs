//! Transparent interception as in Istio's sidecars: in a network namespace, iptables
//! REDIRECTs the app's outbound TCP to `weft proxy`, which recovers the original
//! destination with SO_ORIGINAL_DST and routes it.
//!
//! Needs root, `ip` (iproute2), `iptables`, `setpriv`, `curl` and `python3`; `scripts/test` installs
//! them. As a non-root user the test says so and skips (README: run the tests as root to
//! include it). As root, a missing tool fails the test loudly.

// The skip notice goes to the terminal on purpose.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Namespace {
    name: String,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Namespace {
    fn create(name: &str) -> Namespace {
        let _ = Command::new("ip").args(["netns", "delete", name]).status();
        run("ip", &["netns", "add", name]);
        let dir = std::env::temp_dir().join(format!("{name}-files"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Namespace {
            name: name.to_string(),
            children: Vec::new(),
            dir,
        }
    }

    fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    fn spawn(&mut self, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {args:?} in {}: {e}", self.name));
        self.children.push(child);
    }

    /// What `args` print, run in the namespace.
    fn output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn curl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-s", "--max-time", "3"])
            .args(args)
            .output()
            .expect("curl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd} is required for this test: {e}"));
    assert!(status.success(), "{cmd} {args:?} failed: {status}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn redirected_connections_are_routed_by_their_original_destination() {
    if !is_root() {
        eprintln!(
            "SKIPPED: transparent interception needs root (network namespaces and iptables); run the tests as root to include it"
        );
        return;
    }
    for tool in ["ip", "iptables", "curl", "python3", "setpriv"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .status()
                .is_ok_and(|s| s.success()),
            "{tool} is missing: scripts/test installs it (apt-get install iproute2 iptables curl python3)"
        );
    }
    let mut ns = Namespace::create(&format!("weft-it-{}", std::process::id()));
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    // Virtual IPs live only inside the namespace; the route makes connect() reach iptables.
    ns.exec(&[
        "ip",
        "route",
        "add",
        "198.18.0.0/15",
        "dev",
        "lo",
        "src",
        "127.0.0.1",
    ]);
    // As Istio's init container does: redirect outbound TCP, except the proxy's own (uid 1337).
    ns.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        "198.18.0.0/15",
        "-m",
        "owner",
        "!",
        "--uid-owner",
        "1337",
        "-j",
        "REDIRECT",
        "--to-ports",
        "15001",
    ]);

    let www = ns.dir.join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("who"), "web v1\n").expect("file");
    let mesh = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [198.18.0.10]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 9001}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "routed by weft"}}
  - route: [{destination: {host: web}}]
"#;
    let config = ns.dir.join("mesh.yaml");
    std::fs::write(&config, mesh).expect("config");
    let outside = ns.dir.join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("who"), "outside the mesh\n").expect("file");
    // A server outside the registry, at an address the app can dial directly.
    ns.exec(&["ip", "addr", "add", "198.18.0.99/32", "dev", "lo"]);
    let outside_dir = outside.to_string_lossy().into_owned();
    ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "81",
        "--bind",
        "198.18.0.99",
        "--directory",
        &outside_dir,
    ]);
    let www_dir = www.to_string_lossy().into_owned();
    ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "9001",
        "--bind",
        "127.0.0.1",
        "--directory",
        &www_dir,
    ]);
    let config_path = config.to_string_lossy().into_owned();
    ns.spawn(&[
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        env!("CARGO_BIN_EXE_weft"),
        "proxy",
        "--config",
        &config_path,
    ]);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !(ns.curl(&["http://127.0.0.1:15000/ready"]).0
        && ns.curl(&["http://127.0.0.1:9001/who"]).0)
    {
        assert!(
            Instant::now() < deadline,
            "the proxy and the upstream did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // By virtual IP: the app dials 198.18.0.10:80, iptables sends it to 15001.
    let (ok, body) = ns.curl(&["http://198.18.0.10/who"]);
    assert!(ok, "request through the redirect failed");
    assert_eq!(body, "web v1\n");
    // The VirtualService applies: the route was chosen by weft, not by the upstream.
    let (_, code) = ns.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://198.18.0.10/teapot",
    ]);
    assert_eq!(code, "418");
    // By name, with the virtual IP resolved the way a hosts file would.
    let (ok, body) = ns.curl(&["--resolve", "web:80:198.18.0.10", "http://web/who"]);
    assert!(ok);
    assert_eq!(body, "web v1\n");
    // A destination outside the registry is passed through to the address the app dialled
    // (Istio's ALLOW_ANY); the proxy's own connection (uid 1337) is not redirected again.
    let (ok, body) = ns.curl(&["http://198.18.0.99:81/who"]);
    assert!(ok, "passthrough failed");
    assert_eq!(body, "outside the mesh\n");
    // Opaque TCP outside the registry passes through too: the server answers the bytes.
    let tcp = |ns: &Namespace| {
        ns.output(&[
            "python3",
            "-c",
            "import socket\ns = socket.create_connection(('198.18.0.99', 81), 3)\ns.settimeout(3)\ns.sendall(b'\\x00\\x01 / HTTP/1.0\\r\\n\\r\\n')\ntry:\n    print(s.recv(12) or 'closed')\nexcept ConnectionResetError:\n    print('closed')\nexcept OSError as e:\n    print('error', e)\n",
        ])
    };
    assert_eq!(tcp(&ns).trim(), "b'HTTP/1.0 501'", "TCP passthrough");

    // REGISTRY_ONLY (a Sidecar's outboundTrafficPolicy without a mode): HTTP to a host
    // outside the registry gets 502 and opaque TCP is closed, as Istio's BlackHoleCluster;
    // the registry's services are still reached. The file change applies without a restart.
    let status =
        |ns: &Namespace, url: &str| ns.curl(&["-o", "/dev/null", "-w", "%{http_code}", url]).1;
    let sidecar = "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec:\n  outboundTrafficPolicy: {}\n";
    std::fs::write(&config, format!("{mesh}{sidecar}")).expect("config");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&ns, "http://198.18.0.99:81/who") != "502" {
        assert!(Instant::now() < deadline, "REGISTRY_ONLY did not apply");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tcp(&ns).trim(), "closed", "TCP outside the registry");
    let (ok, body) = ns.curl(&["http://198.18.0.10/who"]);
    assert!(ok && body == "web v1\n", "the registry's service: {body:?}");

    // ALLOW_ANY with an egressProxy: what is outside the registry goes to that service.
    let egress = sidecar.replace(
        "outboundTrafficPolicy: {}",
        "outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: web, port: {number: 80}}",
    );
    std::fs::write(&config, format!("{mesh}{egress}")).expect("config");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns.curl(&["http://198.18.0.99:81/who"]).1 != "web v1\n" {
        assert!(Instant::now() < deadline, "the egress proxy did not apply");
        std::thread::sleep(Duration::from_millis(100));
    }
}
