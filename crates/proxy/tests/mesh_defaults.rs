//! What the control plane's mesh config (Istio's MeshConfig) sets as every proxy's
//! defaults: `defaultHttpRetryPolicy` for routes that set no `retries`, and
//! `outboundTrafficPolicy` for destinations outside the registry (enforced on redirected
//! traffic; the namespace test in weft's CLI tests drives that with iptables).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weft_control::RunningControl;
use weft_proxy::RunningProxy;
use weft_testkit::client::{Send, admin_get, via_proxy};
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::upstream::{self, Reply};
use weft_testkit::{eventually, fresh_dir};

const CLIENT: &str = "sidecar~client.default";

/// The reviews service, served by `app`, in `control`.
fn reviews(control: &RunningControl, app: SocketAddr) {
    apply(
        control,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
            app.port()
        ),
    );
}

/// A sidecar of `control` once it has its first push.
async fn sidecar(control: &RunningControl) -> RunningProxy {
    let p = mesh::sidecar(control.xds, CLIENT, None).await;
    let admin = p.admin;
    eventually("the first push", Duration::from_secs(5), || async {
        (admin_get(admin, "/ready").await.status == 200).then_some(())
    })
    .await;
    p
}

/// How many times the app saw one call that it answers with 503.
async fn tries(p: &RunningProxy, app: &upstream::Upstream) -> usize {
    let before = app.hits();
    let got = via_proxy(
        p.outbound,
        Send {
            url: "http://reviews:8080/",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 503, "{}", got.body);
    app.hits() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_without_retries_take_the_mesh_configs_default_retry_policy() {
    let app = upstream::http(Arc::new(|_, _| Reply::status(503, "busy"))).await;

    // Istio's own default retries on connect failures and reset streams, not on a 503.
    let istio = ControlPlane::new(&fresh_dir("mesh-retry-istio"))
        .start()
        .await;
    reviews(&istio, app.addr);
    let p = sidecar(&istio).await;
    assert_eq!(
        tries(&p, &app).await,
        1,
        "Istio's default does not retry a 503"
    );

    let control = ControlPlane::new(&fresh_dir("mesh-retry"))
        .mesh_config("defaultHttpRetryPolicy:\n  attempts: 3\n  retryOn: 5xx\n")
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    // The service's default route (no VirtualService) and a rule without `retries`.
    assert_eq!(tries(&p, &app).await, 4, "the first try and 3 retries");
    apply(
        &control,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - name: no-retries\n    route: [{destination: {host: reviews}}]\n",
    );
    eventually("the VirtualService", Duration::from_secs(5), || async {
        let dump = admin_get(p.admin, "/config_dump").await.body;
        dump.contains("no-retries").then_some(())
    })
    .await;
    assert_eq!(tries(&p, &app).await, 4, "a rule without retries");
    // A rule's own `retries` wins, `attempts: 0` included.
    apply(
        &control,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 1, retryOn: 5xx}\n",
    );
    eventually("one retry", Duration::from_secs(5), || async {
        (tries(&p, &app).await == 2).then_some(())
    })
    .await;
    apply(
        &control,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 0}\n",
    );
    eventually("no retry", Duration::from_secs(5), || async {
        (tries(&p, &app).await == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_configs_outbound_policy_reaches_the_proxy_and_a_sidecar_overrides_it() {
    let app = upstream::named("reviews").await;
    let control = ControlPlane::new(&fresh_dir("mesh-outbound"))
        .mesh_config("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n")
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    let outbound = |p: &RunningProxy| {
        let admin = p.admin;
        async move {
            let dump = admin_get(admin, "/config_dump").await.body;
            let v: serde_json::Value = serde_json::from_str(&dump).expect("json");
            v["mesh"]["outbound"].clone()
        }
    };
    assert_eq!(outbound(&p).await, "registryOnly");
    // The registry's services are still served.
    let got = via_proxy(
        p.outbound,
        Send {
            url: "http://reviews:8080/",
            ..Default::default()
        },
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "reviews"));
    // A Sidecar's policy replaces the mesh config's.
    apply(
        &control,
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec:\n  outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
    );
    eventually(
        "the Sidecar's ALLOW_ANY",
        Duration::from_secs(5),
        || async { (outbound(&p).await == "allowAny").then_some(()) },
    )
    .await;
}
