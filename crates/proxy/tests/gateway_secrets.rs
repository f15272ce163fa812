//! Gateway certificates from Secrets through the control plane: a Secret applied to the
//! control plane reaches a gateway proxy only when the proxy proved its namespace with
//! its CA bootstrap token (Istio's SDS authorizes by the gateway's identity the same
//! way). Which Secrets each proxy may read (its namespace's, those ReferenceGrants
//! allow; none for a sidecar) is `secrets_reach_only_the_proven_gateways_allowed_to_read_them`
//! in crates/control/src/xds/delta/tests.rs.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::pki::{Pki, curl, secret, text};
use common::service;
use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::admin_get;
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::{any_port, eventually, fresh_dir, upstream};

/// The gateway proxy of Gateway API Gateway `infra/web`, fed by the control plane at
/// `xds`, proving namespace `infra` with `token` when given.
async fn gateway_proxy(
    xds: SocketAddr,
    id: &str,
    token: Option<&str>,
) -> (RunningProxy, SocketAddr) {
    let options = ProxyOptions {
        control: Some(xds.to_string()),
        ca_token: token.map(str::to_string),
        gateways: vec![(443, any_port())],
        scope: ProxyScope {
            namespace: "infra".into(),
            labels: [(
                "gateway.networking.k8s.io/gateway-name".to_string(),
                "web".to_string(),
            )]
            .into(),
            gateway: true,
        },
        ..ProxyOptions::ephemeral(&weft_proto::node_id(true, id, "infra"))
    };
    let proxy = mesh::start_proxy(options).await;
    let port = proxy.gateways[0].1;
    (proxy, port)
}

/// The mesh part of the proxy's `/config_dump`, as text.
async fn dump(p: &RunningProxy) -> String {
    admin_get(p.admin, "/config_dump").await.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_only_gateways_whose_token_proves_their_namespace() {
    let dir = fresh_dir("gateway-secrets");
    let pki = Pki::new(&dir, "server");
    let (cert, key) = pki.issue("web", &["web.example.com"]);
    let web = upstream::named("web").await;
    let cp = ControlPlane::new(&dir)
        .with_ca(Duration::from_secs(3600))
        .start()
        .await;
    let ca = cp.ca.clone().expect("a CA");
    let backend = service("web", 8080, "HTTP", &[(web.addr, "v1")])
        .replace("namespace: default", "namespace: infra")
        .replace("web.default.svc", "web.infra.svc");
    apply(
        &cp,
        &format!(
            "{backend}{}apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web, namespace: infra}}\nspec:\n  gatewayClassName: weft\n  listeners:\n  - {{name: https, port: 443, protocol: HTTPS, hostname: web.example.com, tls: {{certificateRefs: [{{name: web-cert}}]}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: web, namespace: infra}}\nspec:\n  parentRefs: [{{name: web}}]\n  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]\n",
            secret(
                "infra",
                "web-cert",
                "kubernetes.io/tls",
                &[("tls.crt", &cert), ("tls.key", &key)]
            ),
        ),
    );
    let trust = pki.ca_file();
    let url = "https://web.example.com:PORT/";

    // Proven: its token is for namespace infra.
    let token = ca.issue_token("infra", "web-weft").expect("a token");
    let (proven, port) = gateway_proxy(cp.xds, "web-weft-1", Some(&token)).await;
    eventually(
        "HTTPS with the Secret's certificate",
        Duration::from_secs(10),
        || async { (text(&curl(port, url, Some(&trust), &[]).await) == "web\n200 ").then_some(()) },
    )
    .await;
    let seen = dump(&proven).await;
    assert!(
        seen.contains("Secret infra/web-cert[tls.crt]"),
        "the dump names the Secret: {seen}"
    );
    assert!(
        !seen.contains("PRIVATE KEY"),
        "the dump never shows the key"
    );

    // Unproven: no token, or a token for another namespace. Both get the Gateway but
    // not the Secret, so the listener is not served.
    let other = ca.issue_token("shop", "web-weft").expect("a token");
    for (id, token) in [("web-weft-2", None), ("web-weft-3", Some(other.as_str()))] {
        let (p, port) = gateway_proxy(cp.xds, id, token).await;
        eventually("the Gateway pushed", Duration::from_secs(10), || async {
            dump(&p)
                .await
                .contains("web.infra.svc.cluster.local")
                .then_some(())
        })
        .await;
        let refused = curl(port, url, Some(&trust), &[]).await;
        assert!(!refused.status.success(), "{id}: {}", text(&refused));
        assert!(!dump(&p).await.contains("web-cert"), "{id} has no Secret");
    }

    assert_eq!(web.hits(), 1, "only the proven gateway served");
}
