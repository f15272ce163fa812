//! Gateway servers beyond plain HTTP, as real TLS clients (curl, openssl s_client) see
//! them: HTTPS terminated with certificate files (SNI choosing among servers, TLS
//! versions, client certificates and their pins), `httpsRedirect`, TLS passed through by
//! SNI to a backend that terminates it itself, TCP servers and TLS terminated into TCP,
//! by the VirtualServices' `tls` and `tcp` rules.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::pki::{Pki, curl, run, secret, text};
use common::{Harness, service};
use weft_testkit::upstream;

/// `openssl s_client` to `addr` with server name `sni`, sending `input`; what it printed.
async fn s_client(addr: SocketAddr, sni: &str, extra: &[&str], input: &'static str) -> String {
    let mut cmd = Command::new("sh");
    // The input is sent once the handshake is done; a pause lets the answer come back
    // before stdin closes.
    let args = extra.join(" ");
    cmd.arg("-c").arg(format!(
        "(printf '{input}'; sleep 1) | timeout 10 openssl s_client -connect {addr} -servername {sni} {args} 2>&1"
    ));
    String::from_utf8_lossy(&run(cmd).await.stdout).into_owned()
}

fn gateway_ports(h: &Harness) -> std::collections::BTreeMap<u16, SocketAddr> {
    h.proxy.gateways.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_terminate_with_certificate_files_chosen_by_sni() {
    let dir = weft_testkit::fresh_dir("gateway-https");
    let pki = Pki::new(&dir, "server");
    let (a_cert, a_key) = pki.issue("a", &["a.example.com"]);
    let (b_cert, b_key) = pki.issue("b", &["b.example.com"]);
    let ca = pki.ca_file();
    let web = upstream::named("web").await;
    let yaml = format!(
        r#"{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {a_cert}, privateKey: {a_key}}}
  - port: {{number: 443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: {b_cert}
      privateKey: {b_key}
      minProtocolVersion: TLSV1_3
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [a.example.com]
    tls: {{httpsRedirect: true}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [tls-gateway]
  http:
  - route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
"#,
        service("web", 8080, "HTTP", &[(web.addr, "v1")]),
    );
    let h = Harness::gateway_on(&yaml, &[("istio", "ingressgateway")], &[80, 443]).await;
    let ports = gateway_ports(&h);
    let https = ports[&443];

    // Each name gets its own server's certificate, and the request is routed.
    let got = curl(https, "https://a.example.com:PORT/hello", Some(&ca), &[]).await;
    assert_eq!(
        text(&got),
        "web\n200 ",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let got = curl(
        https,
        "https://b.example.com:PORT/",
        Some(&ca),
        &["--http2"],
    )
    .await;
    assert_eq!(
        text(&got),
        "web\n200 ",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let seen = web.seen();
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
    assert_eq!(seen[1].version, "HTTP/1.1", "the upstream port is HTTP/1.1");
    let printed = s_client(https, "b.example.com", &["-brief"], "").await;
    assert!(
        printed.contains("CN = b.example.com") || printed.contains("CN=b.example.com"),
        "{printed}"
    );
    let printed = s_client(https, "a.example.com", &["-brief"], "").await;
    assert!(
        printed.contains("CN = a.example.com") || printed.contains("CN=a.example.com"),
        "{printed}"
    );

    // b's server allows TLS 1.3 only; a's allows 1.2 as well.
    let refused = curl(
        https,
        "https://b.example.com:PORT/",
        Some(&ca),
        &["--tls-max", "1.2"],
    )
    .await;
    assert!(
        !refused.status.success(),
        "TLS 1.2 to a TLS 1.3 server: {}",
        text(&refused)
    );
    let got = curl(
        https,
        "https://a.example.com:PORT/",
        Some(&ca),
        &["--tls-max", "1.2"],
    )
    .await;
    assert_eq!(text(&got), "web\n200 ");

    // No server serves c.example.com (and none has host "*"): the handshake fails.
    let refused = curl(https, "https://c.example.com:PORT/", Some(&ca), &["-k"]).await;
    assert!(!refused.status.success(), "{}", text(&refused));

    // Port 80 redirects a.example.com to https, path and query kept, :80 dropped.
    let http = ports[&80];
    let got = curl(http, "http://a.example.com:PORT/x?y=1", None, &[]).await;
    let location = format!("https://a.example.com:{}/x?y=1", http.port());
    assert_eq!(text(&got), format!("\n301 {location}"));
    assert_eq!(
        web.hits(),
        3,
        "redirects and refused handshakes reach nothing"
    );
}

/// `credentialName`: the certificate comes from a Secret in the gateway's namespace
/// (`istio-system`), `kubernetes.io/tls` (`tls.crt`, `tls.key`) or Istio's generic form
/// (`cert`, `key`, `cacert`: the CA that verifies client certificates, for MUTUAL); a
/// changed Secret is served from the next handshake on; a Secret of the Gateway's own
/// namespace is not the gateway's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_names_serve_secrets_of_the_gateways_namespace() {
    let dir = weft_testkit::fresh_dir("gateway-credential");
    let server = Pki::new(&dir, "server");
    let renewed = Pki::new(&dir, "renewed");
    let clients = Pki::new(&dir, "clients");
    let (a_cert, a_key) = server.issue("a", &["a.example.com"]);
    let (b_cert, b_key) = server.issue("b", &["b.example.com"]);
    let (a2_cert, a2_key) = renewed.issue("a2", &["a.example.com"]);
    let (alice, alice_key) = clients.issue("alice", &["alice.example.com"]);
    let web = upstream::named("web").await;
    let config = |a_secret: String| {
        format!(
            r#"{}{a_secret}{}{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, credentialName: a-cert}}
  - port: {{number: 443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {{mode: MUTUAL, credentialName: b-credential}}
  - port: {{number: 443, name: https-c, protocol: HTTPS}}
    hosts: [c.example.com]
    tls: {{mode: SIMPLE, credentialName: c-cert}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*.example.com"]
  gateways: [tls-gateway]
  http:
  - route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
"#,
            service("web", 8080, "HTTP", &[(web.addr, "v1")]),
            secret(
                "istio-system",
                "b-credential",
                "Opaque",
                &[
                    ("cert", &b_cert),
                    ("key", &b_key),
                    ("cacert", &clients.ca_file())
                ]
            ),
            // In the Gateway's namespace, not the gateway proxy's: not read.
            secret(
                "default",
                "c-cert",
                "kubernetes.io/tls",
                &[("tls.crt", &a_cert), ("tls.key", &a_key)]
            ),
        )
    };
    let a_secret = |cert: &str, key: &str| {
        secret(
            "istio-system",
            "a-cert",
            "kubernetes.io/tls",
            &[("tls.crt", cert), ("tls.key", key)],
        )
    };
    let h = Harness::gateway_on(
        &config(a_secret(&a_cert, &a_key)),
        &[("istio", "ingressgateway")],
        &[443],
    )
    .await;
    let https = gateway_ports(&h)[&443];
    let trust = server.ca_file();
    let got = curl(https, "https://a.example.com:PORT/", Some(&trust), &[]).await;
    assert_eq!(
        text(&got),
        "web\n200 ",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    // MUTUAL: the Secret's cacert verifies client certificates.
    let none = curl(https, "https://b.example.com:PORT/", Some(&trust), &[]).await;
    assert!(
        !text(&none).starts_with("web"),
        "no client certificate: {}",
        text(&none)
    );
    let got = curl(
        https,
        "https://b.example.com:PORT/",
        Some(&trust),
        &["--cert", &alice, "--key", &alice_key],
    )
    .await;
    assert_eq!(
        text(&got),
        "web\n200 ",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    // c's Secret is in `default`: the server is not served, so no certificate for c.
    let refused = curl(https, "https://c.example.com:PORT/", None, &["-k"]).await;
    assert!(!refused.status.success(), "{}", text(&refused));

    // The Secret changes (another CA's certificate): the next handshake has it.
    h.write(&config(a_secret(&a2_cert, &a2_key)));
    let renewed_ca = renewed.ca_file();
    weft_testkit::eventually(
        "the renewed certificate served",
        Duration::from_secs(10),
        || async {
            let got = curl(https, "https://a.example.com:PORT/", Some(&renewed_ca), &[]).await;
            (text(&got) == "web\n200 ").then_some(())
        },
    )
    .await;
    let old = curl(https, "https://a.example.com:PORT/", Some(&trust), &[]).await;
    assert!(
        !old.status.success(),
        "the old CA no longer verifies it: {}",
        text(&old)
    );
    assert_eq!(web.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_servers_require_a_client_certificate_the_ca_signs_and_the_pins_allow() {
    let dir = weft_testkit::fresh_dir("gateway-mutual");
    let server = Pki::new(&dir, "server");
    let clients = Pki::new(&dir, "clients");
    let strangers = Pki::new(&dir, "strangers");
    let (cert, key) = server.issue("gw", &["secure.example.com", "pinned.example.com"]);
    let (alice, alice_key) = clients.issue("alice", &["alice.example.com"]);
    let (bob, bob_key) = clients.issue("bob", &["bob.example.com"]);
    let (eve, eve_key) = strangers.issue("eve", &["alice.example.com"]);
    let web = upstream::named("web").await;
    let yaml = format!(
        r#"{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: mtls-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [secure.example.com]
    tls: {{mode: MUTUAL, serverCertificate: {cert}, privateKey: {key}, caCertificates: {ca}}}
  - port: {{number: 443, name: https-pinned, protocol: HTTPS}}
    hosts: [pinned.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {cert}
      privateKey: {key}
      caCertificates: {ca}
      subjectAltNames: [alice.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*.example.com"]
  gateways: [mtls-gateway]
  http:
  - route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
"#,
        service("web", 8080, "HTTP", &[(web.addr, "v1")]),
        ca = clients.ca_file(),
    );
    let h = Harness::gateway_on(&yaml, &[("istio", "ingressgateway")], &[443]).await;
    let https = gateway_ports(&h)[&443];
    let trust = server.ca_file();
    // curl to `host` presenting the client certificate (cert, key).
    let as_client = |host: &'static str, (cert, key): (&str, &str)| {
        let args = ["--cert", cert, "--key", key].map(String::from);
        let trust = trust.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let url = format!("https://{host}:PORT/");
            curl(https, &url, Some(&trust), &args).await
        }
    };

    let none = curl(https, "https://secure.example.com:PORT/", Some(&trust), &[]).await;
    assert!(
        !text(&none).starts_with("web"),
        "no client certificate: {}",
        text(&none)
    );
    let got = as_client("secure.example.com", (&alice, &alice_key)).await;
    assert_eq!(
        text(&got),
        "web\n200 ",
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    // Eve's certificate names alice too, but another CA signed it.
    let got = as_client("secure.example.com", (&eve, &eve_key)).await;
    assert!(
        !text(&got).starts_with("web"),
        "a stranger's certificate: {}",
        text(&got)
    );

    // The pinned server takes alice and not bob, though the CA signed both.
    let got = as_client("pinned.example.com", (&alice, &alice_key)).await;
    assert_eq!(text(&got), "web\n200 ");
    let got = as_client("pinned.example.com", (&bob, &bob_key)).await;
    assert!(
        !text(&got).starts_with("web"),
        "bob is not pinned: {}",
        text(&got)
    );
    assert_eq!(web.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_routes_by_sni_and_tcp_servers_by_tcp_rules() {
    let dir = weft_testkit::fresh_dir("gateway-l4");
    let pki = Pki::new(&dir, "backend");
    let (cert, key) = pki.issue("backend", &["pass.example.com"]);
    let (term_cert, term_key) = pki.issue("term", &["echo.example.com"]);
    // The passthrough backend terminates TLS itself: openssl's status page.
    let backend_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut backend = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(backend_port.to_string())
        .args(["-cert", &cert, "-key", &key])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let backend_addr: SocketAddr = format!("127.0.0.1:{backend_port}").parse().expect("addr");
    let echo = upstream::tcp_echo().await;
    let yaml = format!(
        r#"{}{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: l4-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: tls-pass, protocol: TLS}}
    hosts: [pass.example.com]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 443, name: tls-term, protocol: TLS}}
    hosts: [echo.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {term_cert}, privateKey: {term_key}}}
  - port: {{number: 31400, name: tcp, protocol: TCP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pass, namespace: default}}
spec:
  hosts: [pass.example.com]
  gateways: [l4-gateway]
  tls:
  - match: [{{sniHosts: [pass.example.com]}}]
    route: [{{destination: {{host: backend.default.svc.cluster.local, port: {{number: 8443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [l4-gateway]
  tcp:
  - route: [{{destination: {{host: echo.default.svc.cluster.local, port: {{number: 9000}}}}}}]
---
"#,
        service("backend", 8443, "TLS", &[(backend_addr, "v1")]),
        service("echo", 9000, "TCP", &[(echo, "v1")]),
    );
    let h = Harness::gateway_on(&yaml, &[("istio", "ingressgateway")], &[443, 31400]).await;
    let ports = gateway_ports(&h);
    let tls = ports[&443];

    // Passthrough: the backend's own certificate and page, the gateway never decrypting.
    let mut ready = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(backend_addr).is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "openssl s_server listens");
    let got = curl(
        tls,
        "https://pass.example.com:PORT/",
        Some(&pki.ca_file()),
        &[],
    )
    .await;
    let body = text(&got);
    assert!(
        body.contains("s_server") && body.ends_with("200 "),
        "{body} {}",
        String::from_utf8_lossy(&got.stderr)
    );

    // TLS terminated by the gateway, then the bytes echoed by a TCP backend.
    let printed = s_client(tls, "echo.example.com", &["-quiet"], "ping-through-tls\\n").await;
    assert!(printed.contains("ping-through-tls"), "{printed}");

    // Plain TCP on 31400.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(ports[&31400])
        .await
        .expect("connect");
    s.write_all(b"hello tcp").await.expect("write");
    let mut buf = [0u8; 9];
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&buf, b"hello tcp");
    let _ = backend.kill();
    let _ = backend.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_mutual_servers_take_mesh_peers_with_the_gateways_own_certificate() {
    use std::time::Duration;
    use weft_testkit::client::{admin_get, get};
    use weft_testkit::mesh::{self, ControlPlane, apply};
    let state = weft_testkit::fresh_dir("gateway-istio-mutual");
    let cp = ControlPlane::new(&state)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    let ca = cp.ca.as_ref().expect("CA");
    let web = upstream::named("web").await;
    let gw_addr: SocketAddr = format!("127.0.0.1:{}", weft_testkit::free_port())
        .parse()
        .expect("addr");
    let token = ca
        .issue_token("istio-system", "istio-ingressgateway-service-account")
        .expect("token");
    let gateway = mesh::start_proxy(weft_proxy::ProxyOptions {
        scope: weft_model::ProxyScope {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())]
                .into_iter()
                .collect(),
            gateway: true,
        },
        gateways: vec![(443, gw_addr)],
        ..mesh::sidecar_options(
            cp.xds,
            "router~istio-ingressgateway.istio-system",
            Some(&token),
        )
    })
    .await;
    let token = ca.issue_token("default", "client").expect("token");
    let client = mesh::start_proxy(weft_proxy::ProxyOptions {
        scope: weft_model::ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "client".to_string())]
                .into_iter()
                .collect(),
            gateway: false,
        },
        ..mesh::sidecar_options(cp.xds, "sidecar~client.default", Some(&token))
    })
    .await;
    apply(
        &cp,
        &format!(
            r#"{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: mesh-gateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https-mesh, protocol: HTTPS}}
    hosts: ["*"]
    tls: {{mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: through-gateway, namespace: istio-system}}
spec:
  hosts: [gw.example.com]
  gateways: [mesh-gateway]
  http:
  - route: [{{destination: {{host: web.default.svc.cluster.local}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: gw, namespace: default}}
spec:
  hosts: [gw.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: gw, namespace: default}}
spec:
  host: gw.example.com
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      subjectAltNames: [spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account]
---
"#,
            service("web", 8080, "HTTP", &[(web.addr, "v1")]),
            gw_addr.port()
        ),
    );
    for proxy in [&gateway, &client] {
        weft_testkit::eventually(
            "configuration and certificate",
            Duration::from_secs(10),
            || async {
                (admin_get(proxy.admin, "/ready").await.status.as_u16() == 200).then_some(())
            },
        )
        .await;
    }
    // The client's sidecar originates mesh mTLS; the gateway terminates it with its own
    // workload certificate (the client checked its SPIFFE name) and routes the request.
    let got = weft_testkit::eventually(
        "the client reaches web through the gateway",
        Duration::from_secs(10),
        || async {
            let got = get(client.outbound, "http://gw.example.com/").await;
            (got.status.as_u16() == 200).then_some(got)
        },
    )
    .await;
    assert_eq!(got.body, "web");
    // A TLS client without a mesh certificate is refused.
    let refused = curl(gw_addr, "https://gw.example.com:PORT/", None, &["-k"]).await;
    assert!(!text(&refused).starts_with("web"), "{}", text(&refused));
    assert_eq!(web.hits(), 1);
}
