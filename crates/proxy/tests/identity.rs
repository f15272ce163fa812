//! Workload certificates from the control plane's CA: a root made once and kept
//! owner-only, a proxy proving itself with its bootstrap token and getting a SPIFFE
//! certificate for its service account, renewed at 80 % of its life; unknown and reused
//! tokens get nothing.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

mod common;

use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::admin_get;
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::{any_port, eventually, fresh_dir};

async fn certs(p: &RunningProxy) -> Option<serde_json::Value> {
    let got = admin_get(p.admin, "/certs").await;
    (got.status.as_u16() == 200).then(|| serde_json::from_str(&got.body).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_gets_and_renews_its_spiffe_certificate() {
    let dir = fresh_dir("ca-test");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(5))
        .start()
        .await;
    for file in ["root-cert.pem", "root-key.pem"] {
        let mode = std::fs::metadata(dir.join("ca").join(file))
            .expect("CA file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    let ca = cp.ca.clone().expect("a CA");
    let token = ca.issue_token("default", "reviews").expect("a token");
    let p = mesh::sidecar(cp.xds, "sidecar~reviews-v1.default", Some(&token)).await;
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
    let stranger = mesh::sidecar(cp.xds, "sidecar~stranger.default", Some("not-a-token")).await;
    let thief = mesh::sidecar(cp.xds, "sidecar~thief.default", Some(&token)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(certs(&stranger).await.is_none());
    assert!(certs(&thief).await.is_none(), "a reused token was honoured");
    cp.stop();

    // The root survives a restart.
    let root = ca.root_pem().to_string();
    let again = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(5))
        .start()
        .await;
    assert_eq!(again.ca.as_ref().expect("CA").root_pem(), root);
    again.stop();

    // Root rotation: the operator's new root signs, the old one stays trusted meanwhile.
    let new_dir = dir.join("new-root");
    let fresh = ControlPlane::new(&new_dir)
        .with_ca(Duration::from_secs(60))
        .start()
        .await;
    let new_root = fresh.ca.as_ref().expect("CA").root_pem().to_string();
    fresh.stop();
    let rotated = ControlPlane::new(&dir.join("rotated"))
        .with_ca(Duration::from_secs(60))
        .supplied_root(weft_control::ca::SuppliedRoot {
            root: None,
            cert: new_dir.join("ca/root-cert.pem"),
            key: new_dir.join("ca/root-key.pem"),
        })
        .extra_roots(weft_control::ca::pem_certificates(&root).expect("old root"))
        .start()
        .await;
    let token = rotated
        .ca
        .as_ref()
        .expect("CA")
        .issue_token("default", "reviews")
        .expect("a token");
    let p = mesh::sidecar(rotated.xds, "sidecar~reviews-v2.default", Some(&token)).await;
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
    let dir = fresh_dir("mtls-test");
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(600))
        .start()
        .await;
    let ca = cp.ca.clone().expect("CA");
    apply(
        &cp,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: productpage-only, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from: [{source: {principals: [cluster.local/ns/default/sa/productpage]}}]\n",
    );
    let app = weft_testkit::upstream::named("reviews").await;
    let token = ca.issue_token("default", "reviews").expect("a token");
    let server = mesh::start_proxy(ProxyOptions {
        app: Some(app.addr),
        scope: ProxyScope {
            namespace: "default".into(),
            labels: [("app".to_string(), "reviews".to_string())]
                .into_iter()
                .collect(),
            gateway: false,
        },
        stats: Some(any_port()),
        ..mesh::sidecar_options(cp.xds, "sidecar~reviews-v1.default", Some(&token))
    })
    .await;
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
