//! Mesh mTLS between sidecars, with real certificates from the control plane's CA:
//! the client sidecar originates TLS 1.3 to endpoints that run a sidecar and checks the
//! server's SPIFFE identity (secure naming); the server knows the caller; PeerAuthentication
//! STRICT refuses plaintext, PERMISSIVE takes both, DISABLE turns auto mTLS off; servers
//! with the wrong identity, an expired certificate or one from another CA are refused;
//! certificates rotate under load without a failed request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::{admin_get, get};
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::{any_port, eventually, free_port, fresh_dir};

const SERVICE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: reviews}}\n";

fn labels(app: &str) -> std::collections::BTreeMap<String, String> {
    [("app".to_string(), app.to_string())].into_iter().collect()
}

/// A sidecar for `app` running as service account `sa`, with a certificate for `cert_sa`
/// (normally the same), registered with its inbound listener as the workload's address.
async fn sidecar(
    cp: &weft_control::RunningControl,
    app_name: &str,
    sa: &str,
    cert_sa: &str,
    app: Option<SocketAddr>,
) -> RunningProxy {
    // The inbound port is picked before binding (the registration names it); another
    // test may take it meanwhile, so a few attempts.
    let mut attempts = 0;
    let proxy = loop {
        let inbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let token = cp
            .ca
            .as_ref()
            .expect("CA")
            .issue_token("default", cert_sa)
            .expect("a token");
        let started = weft_proxy::start(ProxyOptions {
            app,
            inbound,
            scope: ProxyScope {
                namespace: "default".into(),
                labels: labels(app_name),
                gateway: false,
            },
            stats: Some(any_port()),
            registration: Some(weft_proxy::control_source::Registration {
                workload: format!("{app_name}-v1"),
                service_account: sa.into(),
                address: "127.0.0.1".into(),
                ports: [("http".to_string(), u32::from(inbound.port()))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            ..mesh::sidecar_options(
                cp.xds,
                &format!("sidecar~{app_name}-v1.default"),
                Some(&token),
            )
        })
        .await;
        match started {
            Ok(p) => break p,
            Err(e) if attempts < 5 => {
                attempts += 1;
                tracing::debug!("sidecar start failed ({e}); another port");
            }
            Err(e) => panic!("proxy starts: {e}"),
        }
    };
    // Ready: its first configuration and its certificate are in.
    eventually(
        "configuration and certificate",
        Duration::from_secs(10),
        || async { (admin_get(proxy.admin, "/ready").await.status.as_u16() == 200).then_some(()) },
    )
    .await;
    proxy
}

/// reviews (its app behind its sidecar) and a productpage sidecar, once productpage
/// reaches reviews.
async fn reviews_and_productpage(
    cp: &weft_control::RunningControl,
) -> (weft_testkit::upstream::Upstream, RunningProxy, RunningProxy) {
    let app = weft_testkit::upstream::named("reviews").await;
    let server = sidecar(cp, "reviews", "reviews", "reviews", Some(app.addr)).await;
    let client = sidecar(cp, "productpage", "productpage", "productpage", None).await;
    eventually(
        "productpage reaches reviews",
        Duration::from_secs(10),
        || async {
            (get(client.outbound, "http://reviews:9080/").await.status == 200).then_some(())
        },
    )
    .await;
    (app, server, client)
}

async fn stats(p: &RunningProxy) -> String {
    admin_get(p.stats.expect("stats"), "/stats/prometheus")
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_speak_mutual_tls_and_peer_authentication_decides_what_the_server_accepts() {
    let dir = fresh_dir("mtls-peers");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(&cp, SERVICE);
    // Only productpage may call reviews: an identity only mTLS can prove.
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: productpage-only, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]\n",
    );
    let app = weft_testkit::upstream::named("reviews").await;
    let server = sidecar(&cp, "reviews", "reviews", "reviews", Some(app.addr)).await;
    let client = sidecar(&cp, "productpage", "productpage", "productpage", None).await;
    let inbound = server.inbound.expect("inbound");

    // PERMISSIVE (no PeerAuthentication): the client sidecar originates mTLS, so the
    // server knows the caller is productpage; plaintext is still accepted, without identity.
    let got = eventually(
        "productpage reaches reviews",
        Duration::from_secs(10),
        || async {
            let got = get(client.outbound, "http://reviews:9080/").await;
            (got.status == 200).then_some(got)
        },
    )
    .await;
    assert_eq!(got.body, "reviews");
    assert_eq!(
        common::tls::get_status(inbound, None).await,
        403,
        "plaintext has no identity"
    );
    let server_stats = stats(&server).await;
    assert!(
        server_stats
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains("source_principal=\"cluster.local/ns/default/sa/productpage\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains("response_code=\"200\"")),
        "{server_stats}"
    );

    // A plaintext keep-alive connection opened while PERMISSIVE.
    let (mut kept, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(inbound)
            .await
            .expect("connect"),
    ))
    .await
    .expect("handshake");
    tokio::spawn(conn);
    let request = || {
        http::Request::get("/")
            .header("host", "reviews")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    let first = kept.send_request(request()).await.expect("an answer");
    assert_eq!(first.status(), 403, "RBAC: plaintext has no identity");

    // STRICT mesh-wide: plaintext is refused, sidecar-to-sidecar calls go on.
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n",
    );
    eventually("plaintext refused", Duration::from_secs(10), || async {
        (common::tls::get_status(inbound, None).await == 0).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            get(client.outbound, "http://reviews:9080/").await.status,
            200
        );
    }
    // The connection accepted before STRICT gets no more requests through.
    if let Ok(answer) = kept.send_request(request()).await {
        use http_body_util::BodyExt;
        let body = answer.into_body().collect().await.expect("body").to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("PeerAuthentication is STRICT"),
            "{body:?}"
        );
    }
    assert_eq!(app.hits(), 6, "only mTLS requests reached the app");
    assert!(
        stats(&server)
            .await
            .lines()
            .any(|l| l.starts_with("weft_inbound_plaintext_refused_total ") && !l.ends_with(" 0")),
        "refusals are counted"
    );

    // DISABLE for reviews: the client's auto mTLS sends plaintext, so productpage's
    // identity is unknown and the policy denies it.
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n",
    );
    eventually("auto mTLS off", Duration::from_secs(10), || async {
        (get(client.outbound, "http://reviews:9080/").await.status == 403).then_some(())
    })
    .await;
    let server_stats = stats(&server).await;
    assert!(
        server_stats
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains("connection_security_policy=\"none\"")
                && l.contains("response_code=\"403\"")),
        "{server_stats}"
    );
    client.shutdown();
    server.shutdown();
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_domains_in_authorization_policies_match_the_callers_spiffe_trust_domain() {
    let dir = fresh_dir("mtls-trust-domains");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(&cp, SERVICE);
    let policy = |from: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: this-mesh, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  rules:\n  - from: [{{source: {from}}}]\n"
        )
    };
    // The CA's trust domain is cluster.local: the caller's identity is
    // spiffe://cluster.local/ns/default/sa/productpage.
    apply(
        &cp,
        &policy("{trustDomains: [\"cluster.*\"], notTrustDomains: [legacy.local]}"),
    );
    let (app, server, client) = reviews_and_productpage(&cp).await;
    let inbound = server.inbound.expect("inbound");
    assert_eq!(
        common::tls::get_status(inbound, None).await,
        403,
        "plaintext has no trust domain"
    );
    let hits = app.hits();

    // Another trust domain: the same mTLS caller is denied.
    apply(&cp, &policy("{trustDomains: [other.example]}"));
    eventually(
        "other trust domain denied",
        Duration::from_secs(10),
        || async {
            (get(client.outbound, "http://reviews:9080/").await.status == 403).then_some(())
        },
    )
    .await;
    // notTrustDomains naming the caller's: denied too; the condition key agrees.
    apply(&cp, &policy("{notTrustDomains: [cluster.local]}"));
    eventually(
        "notTrustDomains denied",
        Duration::from_secs(10),
        || async {
            let denied = get(client.outbound, "http://reviews:9080/").await.status == 403;
            denied.then_some(())
        },
    )
    .await;
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: this-mesh, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - when: [{key: source.trustDomain, values: [cluster.local]}]\n",
    );
    eventually(
        "source.trustDomain allows",
        Duration::from_secs(10),
        || async {
            (get(client.outbound, "http://reviews:9080/").await.status == 200).then_some(())
        },
    )
    .await;
    assert_eq!(common::tls::get_status(inbound, None).await, 403);
    assert!(app.hits() > hits);
    client.shutdown();
    server.shutdown();
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_services_identity_is_refused_by_secure_naming() {
    let dir = fresh_dir("mtls-naming");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(&cp, SERVICE);
    let app = weft_testkit::upstream::named("impostor").await;
    // Registered as reviews' account, but its certificate says ratings.
    let _server = sidecar(&cp, "reviews", "reviews", "ratings", Some(app.addr)).await;
    let client = sidecar(&cp, "productpage", "productpage", "productpage", None).await;
    let got = eventually("the answer", Duration::from_secs(10), || async {
        let got = get(client.outbound, "http://reviews:9080/").await;
        (got.status != 404).then_some(got)
    })
    .await;
    assert_eq!(got.status, 503, "{}", got.body);
    // Connect failures are retried (Istio's default policy), so URX may follow UF.
    assert!(
        got.header("x-weft-response-flags")
            .is_some_and(|f| f.starts_with("UF")),
        "{:?}",
        got.header("x-weft-response-flags")
    );
    assert!(
        got.body.contains("sa/ratings") && got.body.contains("sa/reviews"),
        "{}",
        got.body
    );
    assert_eq!(app.hits(), 0, "nothing reached the impostor's app");
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A test CA: its certificate and key.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("root");
        TestCa { cert, key }
    }

    /// An intermediate CA this one signs.
    fn intermediate(&self, name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        TestCa { cert, key }
    }

    /// A leaf for DNS name `name`: (chain PEM, key PEM).
    fn dns_leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf for `spiffe`, valid now unless `expired`: (chain PEM, key PEM).
    fn leaf(&self, spiffe: &str, expired: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().expect("uri"))];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS server speaking as a sidecar would (ALPN istio-http/1.1) with `cert`: answers
/// every request 200 and counts them.
async fn fake_sidecar(cert: (String, String), hits: Arc<AtomicUsize>) -> SocketAddr {
    tls_server(cert, None, b"istio-http/1.1", hits).await
}

/// A TLS server with `cert` offering `alpn`, asking for a client certificate `clients`
/// signs when given: answers every request 200 and counts them.
async fn tls_server(
    (cert, key): (String, String),
    clients: Option<&TestCa>,
    alpn: &[u8],
    hits: Arc<AtomicUsize>,
) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match clients {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).expect("root");
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier"),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain"),
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
        )
        .expect("server config");
    config.alpn_protocols = vec![alpn.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, hits) = (acceptor.clone(), hits.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::Relaxed);
                // The SNI the client sent, for the test to see.
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nx-sni: {sni}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfake"
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_with_expired_untrusted_or_misnamed_certificates_are_refused() {
    let dir = fresh_dir("mtls-refused");
    // The mesh's root is one this test holds, so it can sign its own server certificates.
    let mesh_ca = TestCa::new("mesh root");
    let (cert_file, key_file) = (dir.join("root.pem"), dir.join("root-key.pem"));
    std::fs::write(&cert_file, mesh_ca.cert.pem()).expect("write");
    std::fs::write(&key_file, mesh_ca.key.serialize_pem()).expect("write");
    let cp = ControlPlane::new(&dir.join("state"))
        .with_ca(Duration::from_secs(600))
        .supplied_root(weft_control::ca::SuppliedRoot {
            root: None,
            cert: cert_file,
            key: key_file,
        })
        .start()
        .await;
    apply(&cp, SERVICE);
    let client = sidecar(&cp, "productpage", "productpage", "productpage", None).await;
    let reviews = "spiffe://cluster.local/ns/default/sa/reviews";
    let other_ca = TestCa::new("another root");
    let cases = [
        ("valid", mesh_ca.leaf(reviews, false), 200),
        ("expired", mesh_ca.leaf(reviews, true), 503),
        ("untrusted CA", other_ca.leaf(reviews, false), 503),
        (
            "another identity",
            mesh_ca.leaf("spiffe://cluster.local/ns/default/sa/ratings", false),
            503,
        ),
    ];
    for (i, (case, cert, want)) in cases.into_iter().enumerate() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = fake_sidecar(cert, hits.clone()).await;
        // The one endpoint of reviews: a workload with a sidecar, as Istio labels it.
        apply(
            &cp,
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {}}}\n  labels: {{app: reviews, security.istio.io/tlsMode: istio, case: c{i}}}\n  serviceAccount: reviews\n",
                addr.port()
            ),
        );
        let got = eventually(case, Duration::from_secs(10), || async {
            let got = get(client.outbound, "http://reviews:9080/").await;
            // Until the new endpoint arrives the previous case's server may still answer.
            // (or none be known yet: UH); a TLS refusal is UF.
            let refused = got
                .header("x-weft-response-flags")
                .is_some_and(|f| f.starts_with("UF"));
            let fresh = refused || hits.load(Ordering::Relaxed) > 0;
            fresh.then_some(got)
        })
        .await;
        assert_eq!(got.status, want, "{case}: {}", got.body);
        if want == 503 {
            let flags = got.header("x-weft-response-flags").unwrap_or_default();
            assert!(flags.starts_with("UF"), "{case}: {flags}");
            assert!(got.body.contains("TLS error"), "{case}: {}", got.body);
            assert_eq!(
                hits.load(Ordering::Relaxed),
                0,
                "{case}: no request got through"
            );
        } else {
            assert_eq!(got.body, "fake");
            // Istio's SNI for mesh mTLS: outbound_.<port>_.<subset>_.<host>.
            assert_eq!(
                got.header("x-sni"),
                Some("outbound_.9080_._.reviews.default.svc.cluster.local")
            );
        }
    }
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The serial of the certificate a sidecar's inbound side presents in a new handshake.
async fn presented_serial(inbound: SocketAddr, client: &(String, String)) -> String {
    let config = common::tls::client_config(client, b"istio-http/1.1");
    let tcp = tokio::net::TcpStream::connect(inbound)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("reviews").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("certificate")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("X.509");
    cert.raw_serial_as_string().replace(':', "")
}

async fn serial(p: &RunningProxy) -> String {
    let certs: serde_json::Value =
        serde_json::from_str(&admin_get(p.admin, "/certs").await.body).expect("JSON");
    certs["serial"].as_str().expect("serial").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let dir = fresh_dir("mtls-rotation");
    // 4 s certificates: renewed every 3.2 s.
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(4))
        .start()
        .await;
    apply(&cp, SERVICE);
    let (_app, server, client) = reviews_and_productpage(&cp).await;
    let (server_first, client_first) = (serial(&server).await, serial(&client).await);
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (ok, failed, outbound) = (ok.clone(), failed.clone(), client.outbound);
        workers.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                let got = get(outbound, "http://reviews:9080/").await;
                if got.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed
                        .lock()
                        .expect("lock")
                        .push(format!("{} {}", got.status, got.body));
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let failed = failed.lock().expect("lock").clone();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok.load(Ordering::Relaxed) > 100, "load was applied");
    let (server_now, client_now) = (serial(&server).await, serial(&client).await);
    assert_ne!(
        server_now, server_first,
        "the server's certificate was renewed"
    );
    assert_ne!(
        client_now, client_first,
        "the client's certificate was renewed"
    );
    // A new handshake gets the certificate now in force.
    let ca = cp.ca.clone().expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .expect("CSR");
    let (cert, _) = ca.sign(&csr, "default", "productpage").expect("signed");
    let before = serial(&server).await;
    let presented = presented_serial(
        server.inbound.expect("inbound"),
        &(cert, key.serialize_pem()),
    )
    .await;
    let after = serial(&server).await;
    assert!(
        presented == before || presented == after,
        "the renewed certificate is in use: presented {presented}, in force {before} / {after}"
    );
    assert_ne!(presented, server_first);
    client.shutdown();
    server.shutdown();
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rules_originate_simple_and_mutual_tls_to_external_servers() {
    let dir = fresh_dir("mtls-origination");
    let cp = ControlPlane::new(&dir.join("state"))
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    let server_ca = TestCa::new("api CA");
    let client_ca = TestCa::new("client CA");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let ca_file = write("api-ca.pem", &server_ca.cert.pem());
    let wrong_ca_file = write("client-ca.pem", &client_ca.cert.pem());
    let (client_cert, client_key) = client_ca.dns_leaf("productpage.example.test");
    let (cert_file, key_file) = (
        write("client.pem", &client_cert),
        write("client-key.pem", &client_key),
    );
    let (simple_hits, mutual_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let simple = tls_server(
        server_ca.dns_leaf("api.example.test"),
        None,
        b"http/1.1",
        simple_hits.clone(),
    )
    .await;
    let mutual = tls_server(
        server_ca.dns_leaf("api.example.test"),
        Some(&client_ca),
        b"http/1.1",
        mutual_hits.clone(),
    )
    .await;
    // The app speaks plain HTTP to port 80; the sidecar originates TLS (Istio's egress
    // TLS origination).
    let entry = |name: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}.example.test]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\n"
        )
    };
    let rule = |name: &str, tls: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}.example.test\n  trafficPolicy:\n    tls: {tls}\n---\n"
        )
    };
    apply(
        &cp,
        &format!(
            "{}{}{}{}",
            entry("simple", simple.port()),
            entry("mutual", mutual.port()),
            rule(
                "simple",
                &format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: api.example.test}}")
            ),
            rule(
                "mutual",
                &format!(
                    "{{mode: MUTUAL, caCertificates: {ca_file}, sni: api.example.test, clientCertificate: {cert_file}, privateKey: {key_file}}}"
                )
            ),
        ),
    );
    let client = mesh::sidecar(cp.xds, "sidecar~productpage-v1.default", None).await;
    for (url, hits) in [
        ("http://simple.example.test/", &simple_hits),
        ("http://mutual.example.test/", &mutual_hits),
    ] {
        let got = eventually(url, Duration::from_secs(10), || async {
            let got = get(client.outbound, url).await;
            (got.status == 200).then_some(got)
        })
        .await;
        assert_eq!(got.body, "fake", "{url}");
        assert!(hits.load(Ordering::Relaxed) >= 1, "{url}");
    }
    // The server's CA is checked: with another CA's roots the handshake fails.
    apply(
        &cp,
        &rule(
            "simple",
            &format!("{{mode: SIMPLE, caCertificates: {wrong_ca_file}, sni: api.example.test}}"),
        ),
    );
    // And the name: a certificate for api.example.test does not serve other.example.test.
    apply(
        &cp,
        &rule(
            "mutual",
            &format!(
                "{{mode: MUTUAL, caCertificates: {ca_file}, sni: other.example.test, clientCertificate: {cert_file}, privateKey: {key_file}}}"
            ),
        ),
    );
    for url in ["http://simple.example.test/", "http://mutual.example.test/"] {
        let got = eventually(url, Duration::from_secs(10), || async {
            let got = get(client.outbound, url).await;
            (got.status == 503).then_some(got)
        })
        .await;
        assert!(got.body.contains("TLS error"), "{url}: {}", got.body);
    }
    // MUTUAL's server refuses a client without a certificate (SIMPLE toward it).
    apply(
        &cp,
        &rule(
            "mutual",
            &format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: api.example.test}}"),
        ),
    );
    let before = mutual_hits.load(Ordering::Relaxed);
    let got = eventually("no client certificate", Duration::from_secs(10), || async {
        let got = get(client.outbound, "http://mutual.example.test/").await;
        (got.status == 503 && !got.body.contains("other.example.test")).then_some(got)
    })
    .await;
    assert_eq!(mutual_hits.load(Ordering::Relaxed), before, "{}", got.body);
    client.shutdown();
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a CONNECT tunnel through `proxy` to `authority`, sends `ping` and returns the
/// echo (empty when the tunnel fails).
async fn echo_through(proxy: SocketAddr, authority: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let request = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            return String::new();
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return String::new();
    }
    if tcp.write_all(b"ping").await.is_err() {
        return String::new();
    }
    let mut echo = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(3), tcp.read_exact(&mut echo)).await {
        Ok(Ok(_)) => String::from_utf8_lossy(&echo).into_owned(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_between_sidecars_is_carried_in_mutual_tls() {
    let dir = fresh_dir("mtls-tcp");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(
        &cp,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo, namespace: default}\nspec:\n  hosts: [echo.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 7000, name: http, protocol: TCP}]\n  workloadSelector: {labels: {app: echo}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: productpage-only, namespace: default}\nspec:\n  selector: {matchLabels: {app: echo}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]\n",
    );
    let echo = weft_testkit::upstream::tcp_echo().await;
    let server = sidecar(&cp, "echo", "echo", "echo", Some(echo)).await;
    let client = sidecar(&cp, "productpage", "productpage", "productpage", None).await;
    let stranger = sidecar(&cp, "ratings", "ratings", "ratings", None).await;
    // STRICT, and only productpage may connect: the bytes went over mTLS, with its identity.
    eventually("an echo over mTLS", Duration::from_secs(10), || async {
        (echo_through(client.outbound, "echo:7000").await == "ping").then_some(())
    })
    .await;
    assert_eq!(
        echo_through(stranger.outbound, "echo:7000").await,
        "",
        "ratings is not allowed"
    );
    // Plaintext TCP straight to the server sidecar is refused.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.inbound.expect("inbound"))
            .await
            .expect("connect");
        let _ = tcp.write_all(b"ping").await;
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "plaintext got {read:?}"
        );
    }
    let server_stats = stats(&server).await;
    assert!(
        server_stats
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains("source_principal=\"cluster.local/ns/default/sa/productpage\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")),
        "{server_stats}"
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_intermediate_signs_and_sidecars_trust_its_root() {
    let dir = fresh_dir("mtls-intermediate");
    let root = TestCa::new("operator root");
    let intermediate = root.intermediate("weft intermediate");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let supplied = |root_file: std::path::PathBuf| weft_control::ca::SuppliedRoot {
        cert: write("ca-cert.pem", &intermediate.cert.pem()),
        key: write("ca-key.pem", &intermediate.key.serialize_pem()),
        root: Some(root_file),
    };
    // An intermediate that does not chain to the root named is refused at start.
    let other = TestCa::new("another root");
    let refused = ControlPlane::new(&dir.join("refused"))
        .with_ca(Duration::from_secs(600))
        .supplied_root(supplied(write("other-root.pem", &other.cert.pem())))
        .try_start()
        .await;
    let error = match refused {
        Ok(_) => panic!("an intermediate of another root was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("is not signed by"), "{error}");

    let cp = ControlPlane::new(&dir.join("state"))
        .with_ca(Duration::from_secs(600))
        .supplied_root(supplied(write("root-cert.pem", &root.cert.pem())))
        .start()
        .await;
    apply(&cp, SERVICE);
    let (_app, server, _client) = reviews_and_productpage(&cp).await;
    let certs: serde_json::Value =
        serde_json::from_str(&admin_get(server.admin, "/certs").await.body).expect("JSON");
    let chain = certs["cert_chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 2, "leaf and intermediate");
    assert_eq!(chain[1], intermediate.cert.pem());
    assert_eq!(
        certs["roots"][0],
        root.cert.pem(),
        "the operator's root is the anchor"
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_tls_modes_decide_what_a_sidecar_sends_to_the_mesh() {
    let dir = fresh_dir("mtls-dr-modes");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(&cp, SERVICE);
    // Only an mTLS-proven productpage gets through: the answer tells how the call came.
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: productpage-only, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]\n",
    );
    let (app, server, client) = reviews_and_productpage(&cp).await;
    let rule = |mode: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {{mode: {mode}}}\n"
        )
    };
    let status_becomes = |want: u16| {
        let outbound = client.outbound;
        async move {
            eventually(
                &format!("status {want}"),
                Duration::from_secs(10),
                || async {
                    (get(outbound, "http://reviews:9080/").await.status == want).then_some(())
                },
            )
            .await
        }
    };
    // DISABLE: plaintext even to a mesh endpoint, so no identity.
    apply(&cp, &rule("DISABLE"));
    status_becomes(403).await;
    // ISTIO_MUTUAL: mesh mTLS again.
    apply(&cp, &rule("ISTIO_MUTUAL"));
    status_becomes(200).await;
    // ISTIO_MUTUAL from a proxy without a workload certificate fails, and says why.
    let bare = mesh::sidecar(cp.xds, "sidecar~bare.default", None).await;
    let got = eventually("the refusal", Duration::from_secs(10), || async {
        let got = get(bare.outbound, "http://reviews:9080/").await;
        (got.status == 503).then_some(got)
    })
    .await;
    assert!(
        got.body
            .contains("ISTIO_MUTUAL needs the workload certificate"),
        "{}",
        got.body
    );

    // HTTP/2 between sidecars: ALPN istio-h2, and the app gets HTTP/2.
    let inbound = server.inbound.expect("inbound").port();
    apply(
        &cp,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews-h2, namespace: default}}\nspec:\n  hosts: [reviews-h2.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 9081, name: h2, protocol: HTTP2, targetPort: {inbound}}}]\n  workloadSelector: {{labels: {{app: reviews}}}}\n"
        ),
    );
    let got = eventually("reviews over h2", Duration::from_secs(10), || async {
        let got = get(client.outbound, "http://reviews-h2:9081/").await;
        (got.status == 200).then_some(got)
    })
    .await;
    assert_eq!(got.body, "reviews");
    let last = app.seen().pop().expect("a request");
    assert_eq!(last.version, "HTTP/2.0", "h2 end to end");
    bare.shutdown();
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_buckets_by_the_mtls_identity_of_the_caller() {
    let dir = fresh_dir("mtls-rl-principal");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(&cp, SERVICE);
    let (_app, _server, productpage) = reviews_and_productpage(&cp).await;
    let ratings = sidecar(&cp, "ratings", "ratings", "ratings", None).await;
    apply(
        &cp,
        "apiVersion: policy.weft.dev/v1alpha1\nkind: RateLimit\nmetadata: {name: per-caller, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  limit: {requests: 3, interval: 1h}\n  bucketBy: {sourcePrincipal: true}\n",
    );
    // productpage's bucket runs out (the reviews_and_productpage call may have counted).
    let limited = eventually("productpage limited", Duration::from_secs(10), || async {
        let got = get(productpage.outbound, "http://reviews:9080/").await;
        (got.status == 429).then_some(got)
    })
    .await;
    // The server sidecar's answer (the client sidecar reports only its own flags).
    assert_eq!(limited.body.trim(), "local_rate_limited");
    // ratings, another identity proven by mTLS, has a bucket of its own.
    for _ in 0..3 {
        assert_eq!(
            get(ratings.outbound, "http://reviews:9080/").await.status,
            200
        );
    }
    assert_eq!(
        get(ratings.outbound, "http://reviews:9080/").await.status,
        429
    );
    assert_eq!(
        get(productpage.outbound, "http://reviews:9080/")
            .await
            .status,
        429
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_root_rotation_certificates_of_both_roots_are_accepted_both_ways() {
    let dir = fresh_dir("mtls-root-overlap");
    let (old, new) = (TestCa::new("old root"), TestCa::new("new root"));
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    // The control plane signs with the new root and still trusts the old one.
    let cp = ControlPlane::new(&dir.join("state"))
        .with_ca(Duration::from_secs(600))
        .supplied_root(weft_control::ca::SuppliedRoot {
            cert: write("new.pem", &new.cert.pem()),
            key: write("new-key.pem", &new.key.serialize_pem()),
            root: None,
        })
        .extra_roots(vec![old.cert.pem()])
        .start()
        .await;
    apply(&cp, SERVICE);
    let (app, server, client) = reviews_and_productpage(&cp).await;
    // A caller still holding a certificate from the old root is served...
    let old_caller = old.leaf("spiffe://cluster.local/ns/default/sa/productpage", false);
    let before = app.hits();
    assert_eq!(
        common::tls::get_status(server.inbound.expect("inbound"), Some(&old_caller)).await,
        200
    );
    assert_eq!(app.hits(), before + 1);
    // ...and a server still presenting one is accepted by a renewed client.
    let hits = Arc::new(AtomicUsize::new(0));
    let fake = fake_sidecar(
        old.leaf("spiffe://cluster.local/ns/default/sa/legacy", false),
        hits.clone(),
    )
    .await;
    apply(
        &cp,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: legacy, namespace: default}}\nspec:\n  hosts: [legacy.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: legacy}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: legacy, namespace: default}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {}}}\n  labels: {{app: legacy, security.istio.io/tlsMode: istio}}\n  serviceAccount: legacy\n",
            fake.port()
        ),
    );
    let got = eventually("the legacy server", Duration::from_secs(10), || async {
        let got = get(client.outbound, "http://legacy:9080/").await;
        (got.status == 200).then_some(got)
    })
    .await;
    assert_eq!(got.body, "fake");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    // A certificate from a root the mesh does not trust is still refused.
    let other = TestCa::new("unrelated root");
    let stranger = other.leaf("spiffe://cluster.local/ns/default/sa/productpage", false);
    assert_eq!(
        common::tls::get_status(server.inbound.expect("inbound"), Some(&stranger)).await,
        0
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_tcp_connection_ends_when_strict_comes_to_apply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = fresh_dir("mtls-strict-later");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    let echo = weft_testkit::upstream::tcp_echo().await;
    let server = sidecar(&cp, "echo", "echo", "echo", Some(echo)).await;
    // PERMISSIVE: a plaintext TCP connection is served...
    let mut tcp = tokio::net::TcpStream::connect(server.inbound.expect("inbound"))
        .await
        .expect("connect");
    tcp.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    tcp.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"ping");
    // ...until STRICT applies: then the sidecar closes it.
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n",
    );
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the plaintext connection stayed open: {read:?}"
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_checks_reach_strict_workloads_over_mtls() {
    let dir = fresh_dir("mtls-health");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    // Probed every 100 ms; two failures in a row would take the endpoint out.
    apply(
        &cp,
        &format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: default\n  annotations:\n    health.weft.io/check: '{{\"http\": {{\"path\": \"/\"}}, \"interval\": \"100ms\", \"unhealthyThreshold\": 2}}'\nspec:\n  host: reviews\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n",
            SERVICE
        ),
    );
    let (app, _server, client) = reviews_and_productpage(&cp).await;
    // Long enough for several probes: the endpoint stays in, and the app saw the probes.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for _ in 0..5 {
        assert_eq!(
            get(client.outbound, "http://reviews:9080/").await.status,
            200
        );
    }
    let probes = app
        .seen()
        .iter()
        .filter(|s| {
            s.headers
                .get("user-agent")
                .is_some_and(|v| v == "weft-health-check")
        })
        .count();
    assert!(probes >= 3, "{probes} probes reached the app");
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_reach_strict_workloads_over_mtls() {
    use futures_util::{SinkExt, StreamExt};
    let dir = fresh_dir("mtls-websocket");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    apply(
        &cp,
        &format!(
            "{SERVICE}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
        ),
    );
    let echo = weft_testkit::upstream::websocket_echo().await;
    let _server = sidecar(&cp, "reviews", "reviews", "reviews", Some(echo)).await;
    let client = sidecar(&cp, "productpage", "productpage", "productpage", None).await;
    let stream = tokio::net::TcpStream::connect(client.outbound)
        .await
        .expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://reviews:9080/chat", stream)
        .await
        .expect("the upgrade through both sidecars");
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .expect("send");
    let back = ws.next().await.expect("a message").expect("ok");
    assert_eq!(back.into_text().expect("text").as_str(), "hello");
    cp.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
