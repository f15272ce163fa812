//! Workload certificates from the control plane's CA: a root made once and kept
//! owner-only, a proxy proving itself with its bootstrap token and getting a SPIFFE
//! certificate for its service account, renewed at 80 % of its life; unknown and reused
//! tokens get nothing.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

mod common;

use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::admin_get;
use weft_testkit::eventually;

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

async fn control(dir: &std::path::Path, ttl: Duration) -> weft_control::RunningControl {
    control_with(dir, ttl, None, Vec::new()).await
}

async fn control_with(
    dir: &std::path::Path,
    ttl: Duration,
    supplied: Option<weft_control::ca::SuppliedRoot>,
    extra_roots: Vec<String>,
) -> weft_control::RunningControl {
    weft_control::start(weft_control::ControlOptions {
        trace_spans: 10,
        ca: Some(weft_control::CaOptions {
            trust_domain: "cluster.local".into(),
            ttl,
            supplied,
            extra_roots,
        }),
        ..weft_control::ControlOptions::ephemeral(dir)
    })
    .await
    .expect("control plane starts")
}

async fn proxy(xds: SocketAddr, id: &str, token: &str) -> RunningProxy {
    weft_proxy::start(ProxyOptions {
        control: Some(xds.to_string()),
        ca_token: Some(token.into()),
        ..ProxyOptions::ephemeral(id)
    })
    .await
    .expect("proxy starts")
}

async fn certs(p: &RunningProxy) -> Option<serde_json::Value> {
    let got = admin_get(p.admin, "/certs").await;
    (got.status.as_u16() == 200).then(|| serde_json::from_str(&got.body).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_gets_and_renews_its_spiffe_certificate() {
    let dir = std::env::temp_dir().join(format!("weft-ca-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cp = control(&dir, Duration::from_secs(5)).await;
    for file in ["root-cert.pem", "root-key.pem"] {
        let mode = std::fs::metadata(dir.join("ca").join(file))
            .expect("CA file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    let ca = cp.ca.clone().expect("a CA");
    let token = ca.issue_token("default", "reviews").expect("a token");
    let p = proxy(cp.xds, "sidecar~reviews-v1.default", &token).await;
    let first = eventually("a certificate", Duration::from_secs(10), || certs(&p)).await;
    assert_eq!(
        first["identity"],
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    assert_eq!(first["roots"][0], ca.root_pem());
    // The leaf is the CA's and carries the SPIFFE URI.
    let leaf = first["cert_chain"][0].as_str().expect("leaf").to_string();
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    let (_, root_pem) =
        x509_parser::pem::parse_x509_pem(ca.root_pem().as_bytes()).expect("root PEM");
    let root = root_pem.parse_x509().expect("root");
    assert_eq!(cert.issuer(), root.subject());
    cert.verify_signature(Some(root.public_key()))
        .expect("the leaf is signed by the mesh's root");
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("SANs")
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    assert!(
        sans.iter()
            .any(|s| s.contains("spiffe://cluster.local/ns/default/sa/reviews")),
        "{sans:?}"
    );
    let life =
        first["not_after"].as_u64().expect("end") - first["not_before"].as_u64().expect("start");
    assert!(life <= 6, "5s TTL: {life}");

    // Renewed at 80 % of its life, without a gap.
    let serial = first["serial"].clone();
    eventually("a renewed certificate", Duration::from_secs(10), || async {
        certs(&p).await.filter(|c| c["serial"] != serial)
    })
    .await;

    // Unknown tokens and a token another proxy already used get nothing.
    let stranger = proxy(cp.xds, "sidecar~stranger.default", "not-a-token").await;
    let thief = proxy(cp.xds, "sidecar~thief.default", &token).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(certs(&stranger).await.is_none());
    assert!(certs(&thief).await.is_none(), "a reused token was honoured");
    cp.stop();

    // The root survives a restart.
    let root = ca.root_pem().to_string();
    let again = control(&dir, Duration::from_secs(5)).await;
    assert_eq!(again.ca.as_ref().expect("CA").root_pem(), root);
    again.stop();

    // Root rotation: the operator's new root signs, the old one stays trusted meanwhile.
    let new_dir = dir.join("new-root");
    let fresh = control(&new_dir, Duration::from_secs(60)).await;
    let new_root = fresh.ca.as_ref().expect("CA").root_pem().to_string();
    fresh.stop();
    let rotated = control_with(
        &dir.join("rotated"),
        Duration::from_secs(60),
        Some(weft_control::ca::SuppliedRoot {
            root: None,
            cert: new_dir.join("ca/root-cert.pem"),
            key: new_dir.join("ca/root-key.pem"),
        }),
        weft_control::ca::pem_certificates(&root).expect("old root"),
    )
    .await;
    let token = rotated
        .ca
        .as_ref()
        .expect("CA")
        .issue_token("default", "reviews")
        .expect("a token");
    let p = proxy(rotated.xds, "sidecar~reviews-v2.default", &token).await;
    let cert = eventually(
        "a certificate from the new root",
        Duration::from_secs(10),
        || certs(&p),
    )
    .await;
    let roots: Vec<&str> = cert["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(
        roots,
        [new_root.as_str(), root.as_str()],
        "both roots trusted during the overlap"
    );
    let leaf = cert["cert_chain"][0].as_str().expect("leaf").to_string();
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).expect("PEM");
    let (_, new_pem) = x509_parser::pem::parse_x509_pem(new_root.as_bytes()).expect("PEM");
    pem.parse_x509()
        .expect("leaf")
        .verify_signature(Some(new_pem.parse_x509().expect("new root").public_key()))
        .expect("signed by the new root");
    rotated.stop();
}

/// A test client's certificate for `sa`, from the mesh's CA (its key made here).
fn client_identity(ca: &weft_control::ca::Ca, sa: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .expect("CSR");
    let (cert, _) = ca.sign(&csr, "default", sa).expect("signed");
    (cert, key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_peers_over_mutual_tls_are_authorized_by_identity() {
    let dir = std::env::temp_dir().join(format!("weft-mtls-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cp = control(&dir, Duration::from_secs(600)).await;
    let ca = cp.ca.clone().expect("CA");
    let policy = weft_api::load_str(
        "policy.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: productpage-only, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]\n",
    );
    for r in policy.resources {
        cp.store.put(r.resource, true).expect("stored");
    }
    let app = weft_testkit::upstream::named("reviews").await;
    let token = ca.issue_token("default", "reviews").expect("a token");
    let server = weft_proxy::start(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())]
                .into_iter()
                .collect(),
            gateway: false,
        },
        control: Some(cp.xds.to_string()),
        stats: Some(any()),
        ca_token: Some(token),
        ..ProxyOptions::ephemeral("sidecar~reviews-v1.default")
    })
    .await
    .expect("proxy starts");
    eventually(
        "the policy and a certificate",
        Duration::from_secs(10),
        || async {
            let ready = admin_get(server.admin, "/ready").await.status.as_u16() == 200;
            (ready && certs(&server).await.is_some()).then_some(())
        },
    )
    .await;
    let inbound = server.inbound.expect("inbound");
    // PERMISSIVE: plaintext is served, but carries no identity, so the policy denies it.
    assert_eq!(common::tls::get_status(inbound, None).await, 403);
    // Over mutual TLS the caller is known by its SPIFFE identity.
    assert_eq!(
        common::tls::get_status(inbound, Some(&client_identity(&ca, "productpage"))).await,
        200
    );
    assert_eq!(
        common::tls::get_status(inbound, Some(&client_identity(&ca, "ratings"))).await,
        403
    );
    // A certificate the mesh's roots did not sign gets no HTTP answer at all.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/default/sa/productpage"
            .try_into()
            .expect("uri"),
    )];
    let forged = params.self_signed(&key).expect("self-signed");
    assert_eq!(
        common::tls::get_status(inbound, Some(&(forged.pem(), key.serialize_pem()))).await,
        0
    );
    assert_eq!(app.hits(), 1);
    // The server sidecar's metrics say which calls came over mutual TLS.
    let stats = admin_get(server.stats.expect("stats"), "/stats/prometheus")
        .await
        .body;
    let series = |code: &str, policy: &str| {
        stats.lines().any(|l| {
            l.starts_with("istio_requests_total{")
                && l.contains(&format!("response_code=\"{code}\""))
                && l.contains(&format!("connection_security_policy=\"{policy}\""))
        })
    };
    assert!(
        series("200", "mutual_tls") && series("403", "mutual_tls"),
        "{stats}"
    );
    assert!(series("403", "none"), "the plaintext call: {stats}");
    cp.stop();
}
