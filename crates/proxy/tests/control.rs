//! A proxy configured by the control plane over the delta xDS stream: first push, live
//! changes within a second, deletes, and serving on while the control plane is away.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_control::RunningControl;
use weft_model::ProxyScope;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::{Send, admin_get, get, via_proxy};
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::{eventually, fresh_dir, upstream};

/// The client sidecar of these tests.
const CLIENT: &str = "sidecar~client.default";

/// A control plane with its state in `state` that forgets a leaving workload soon.
fn control_plane(state: &std::path::Path) -> ControlPlane {
    ControlPlane::new(state).registration_grace(Duration::from_millis(300))
}

/// The reviews service with endpoints v1 and v2 and their subsets.
fn reviews_v1_v2(control: &RunningControl, v1: SocketAddr, v2: SocketAddr) {
    apply(
        control,
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v1}}}}\n  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]\n",
            v1.port(),
            v2.port()
        ),
    );
}

async fn bodies(p: &RunningProxy, n: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for _ in 0..n {
        out.insert(get(p.outbound, "http://reviews:8080/").await.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_pushes_configuration_and_changes() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let state = fresh_dir("xds-test");
    let cp = control_plane(&state).start().await;
    let xds = cp.xds;
    reviews_v1_v2(&cp, v1.addr, v2.addr);
    let p = mesh::sidecar(xds, CLIENT, None).await;
    let admin = p.admin;
    eventually(
        "the proxy is ready after its first push",
        Duration::from_secs(5),
        || async {
            let got = admin_get(admin, "/ready").await;
            (got.status == 200).then_some(())
        },
    )
    .await;
    assert_eq!(
        bodies(&p, 20).await.len(),
        2,
        "no rule yet: both versions serve"
    );

    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v2}}]\n";
    let applied_at = Instant::now();
    apply(&cp, vs);
    eventually(
        "the rule reaches the proxy",
        Duration::from_secs(5),
        || async { (bodies(&p, 20).await.into_iter().collect::<Vec<_>>() == ["v2"]).then_some(()) },
    )
    .await;
    assert!(
        applied_at.elapsed() < Duration::from_secs(1),
        "converged in {:?}",
        applied_at.elapsed()
    );
    assert_eq!(
        cp.proxies.list().len(),
        1,
        "the control plane knows the proxy"
    );

    // A configuration the proxy cannot apply (a regex that does not compile, slipped past
    // validation) is NACKed with the reason; the proxy keeps its last good configuration.
    let mut bad = weft_api::load_str(
        "bad",
        &vs.replace("  - route:", "  - match: [{uri: {regex: x}}]\n    route:"),
    )
    .resources
    .remove(0)
    .resource;
    if let weft_api::Resource::VirtualService(o) = &mut bad {
        o.spec.http[0].matches[0].uri.as_mut().expect("uri").regex = Some("(".into());
    }
    cp.store.put(bad, false).expect("stored without validation");
    eventually("the proxy NACKs", Duration::from_secs(5), || async {
        cp.proxies
            .list()
            .first()
            .and_then(|p| p.last_nack.clone())
            .filter(|n| n.contains("regex"))
    })
    .await;
    assert_eq!(
        bodies(&p, 20).await.into_iter().collect::<Vec<_>>(),
        ["v2"],
        "the last good configuration stays"
    );

    // The control plane's metrics show the proxy, the pushes, the NACK and convergence times.
    let api = cp.api;
    let metrics = admin_get(api, "/metrics").await.body;
    for line in [
        "weft_control_connected_proxies 1",
        "weft_control_nacks_total 1",
        "weft_control_resources{kind=\"VirtualService\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        !metrics.contains("weft_control_convergence_seconds_count 0"),
        "the rule's push was ACKed and timed:\n{metrics}"
    );

    // The control plane goes away: the proxy keeps serving its last configuration.
    cp.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bodies(&p, 20).await.into_iter().collect::<Vec<_>>(), ["v2"]);

    // It comes back (same state, same address): the proxy reconnects, resyncs and follows changes.
    let cp = control_plane(&state).xds(xds).start().await;
    apply(&cp, &vs.replace("subset: v2", "subset: v1"));
    eventually(
        "the reconnected proxy follows a new rule",
        Duration::from_secs(10),
        || async { (bodies(&p, 20).await.into_iter().collect::<Vec<_>>() == ["v1"]).then_some(()) },
    )
    .await;
    cp.store
        .delete(&weft_control::store::Key {
            kind: weft_api::Kind::VirtualService,
            namespace: "default".into(),
            name: "reviews".into(),
        })
        .expect("delete");
    eventually(
        "the delete reaches the proxy",
        Duration::from_secs(5),
        || async { (bodies(&p, 20).await.len() == 2).then_some(()) },
    )
    .await;
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_register_their_workloads_and_leave_after_the_grace_period() {
    let app = upstream::named("reviews-v1").await;
    let state = fresh_dir("registry-test");
    let cp = control_plane(&state).start().await;
    apply(
        &cp,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: reviews}}\n",
    );
    let labels = [
        ("app".to_string(), "reviews".to_string()),
        ("version".to_string(), "v1".to_string()),
    ]
    .into_iter()
    .collect();
    let server = mesh::start_proxy(ProxyOptions {
        scope: ProxyScope {
            namespace: "default".into(),
            labels,
            gateway: false,
        },
        drain: Duration::from_millis(100),
        registration: Some(weft_proxy::control_source::Registration {
            workload: "reviews-v1".into(),
            service_account: "reviews".into(),
            address: "127.0.0.1".into(),
            ports: [("http".to_string(), u32::from(app.addr.port()))]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..mesh::sidecar_options(cp.xds, "sidecar~reviews-v1.default", None)
    })
    .await;
    let client = mesh::sidecar(cp.xds, CLIENT, None).await;
    eventually(
        "the registered workload serves the service",
        Duration::from_secs(5),
        || async {
            let got = get(client.outbound, "http://reviews:8080/").await;
            (got.body == "reviews-v1").then_some(())
        },
    )
    .await;

    server.shutdown();
    server.wait().await;
    eventually(
        "the workload is removed after the grace period",
        Duration::from_secs(5),
        || async {
            let got = get(client.outbound, "http://reviews:8080/").await;
            (got.status == 503 && got.header("x-weft-response-flags") == Some("UH")).then_some(())
        },
    )
    .await;
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_resource_narrows_what_a_proxy_receives() {
    let a = upstream::named("a").await;
    let b = upstream::named("b").await;
    let state = fresh_dir("sidecar-test");
    let cp = control_plane(&state).start().await;
    let entry = |name: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\n"
        )
    };
    apply(
        &cp,
        &format!("{}{}", entry("a", a.addr.port()), entry("b", b.addr.port())),
    );
    let p = mesh::sidecar(cp.xds, CLIENT, None).await;
    let call = |host: &'static str| {
        let outbound = p.outbound;
        async move {
            via_proxy(
                outbound,
                Send {
                    url: &format!("http://{host}/"),
                    ..Default::default()
                },
            )
            .await
        }
    };
    eventually(
        "both services reach the proxy",
        Duration::from_secs(5),
        || async { (call("a").await.body == "a" && call("b").await.body == "b").then_some(()) },
    )
    .await;
    apply(
        &cp,
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec:\n  egress:\n  - hosts: [\"./a.default.svc.cluster.local\"]\n",
    );
    eventually(
        "the Sidecar keeps only service a",
        Duration::from_secs(5),
        || async {
            let gone = call("b").await;
            (gone.status == 404 && gone.header("x-weft-response-flags") == Some("NR")).then_some(())
        },
    )
    .await;
    assert_eq!(
        call("a").await.body,
        "a",
        "the service the Sidecar lists stays"
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pushed_with_a_nacked_resource_arrives_once_the_resource_is_fixed() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let state = fresh_dir("nack-test");
    let cp = control_plane(&state).start().await;
    reviews_v1_v2(&cp, v1.addr, v2.addr);
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v2}}]\n";
    apply(&cp, vs);
    let p = mesh::sidecar(cp.xds, CLIENT, None).await;
    eventually("v2 only", Duration::from_secs(5), || async {
        (bodies(&p, 10).await.into_iter().collect::<Vec<_>>() == ["v2"]).then_some(())
    })
    .await;

    // One push: a good change (reviews → v1) and a resource the proxy cannot apply. The
    // proxy rejects the whole update, so reviews stays on v2.
    let broken = |regex: &str| {
        let mut r = weft_api::load_str(
            "broken",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken}\nspec:\n  hosts: [other]\n  http:\n  - match: [{uri: {regex: x}}]\n    route: [{destination: {host: other}}]\n",
        )
        .resources
        .remove(0)
        .resource;
        if let weft_api::Resource::VirtualService(o) = &mut r {
            o.spec.http[0].matches[0].uri.as_mut().expect("uri").regex = Some(regex.into());
        }
        r
    };
    cp.store.put(broken("("), false).expect("stored");
    apply(&cp, &vs.replace("subset: v2", "subset: v1"));
    eventually("the proxy NACKs", Duration::from_secs(5), || async {
        cp.proxies.list().first().and_then(|p| p.last_nack.clone())
    })
    .await;
    assert_eq!(bodies(&p, 10).await.into_iter().collect::<Vec<_>>(), ["v2"]);

    // Fixing the broken resource must also deliver the change rejected with it.
    cp.store.put(broken("x.*"), false).expect("stored");
    eventually(
        "the rejected change arrives with the fix",
        Duration::from_secs(5),
        || async { (bodies(&p, 10).await.into_iter().collect::<Vec<_>>() == ["v1"]).then_some(()) },
    )
    .await;
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_in_parts_with_a_refused_part_applies_nothing() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let state = fresh_dir("parts-test");
    let cp = control_plane(&state).start().await;
    reviews_v1_v2(&cp, v1.addr, v2.addr);
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v2}}]\n";
    apply(&cp, vs);
    let p = mesh::sidecar(cp.xds, CLIENT, None).await;
    eventually("v2 only", Duration::from_secs(5), || async {
        (bodies(&p, 10).await.into_iter().collect::<Vec<_>>() == ["v2"]).then_some(())
    })
    .await;

    // One update of 72 resources goes out in parts (at most 16 each, in name order): the
    // first carries a resource the proxy refuses (`aaa-broken`), the last the change of
    // `reviews` to v1. The proxy must apply none of them.
    let mut broken = weft_api::load_str(
        "broken",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: aaa-broken}\nspec:\n  hosts: [other]\n  http:\n  - match: [{uri: {regex: x}}]\n    route: [{destination: {host: other}}]\n",
    )
    .resources
    .remove(0)
    .resource;
    if let weft_api::Resource::VirtualService(o) = &mut broken {
        o.spec.http[0].matches[0].uri.as_mut().expect("uri").regex = Some("(".into());
    }
    cp.store.put(broken, false).expect("stored");
    for i in 0..70 {
        apply(
            &cp,
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: filler-{i:02}}}\nspec:\n  hosts: [filler-{i:02}]\n  http:\n  - route: [{{destination: {{host: filler-{i:02}}}}}]\n"
            ),
        );
    }
    apply(&cp, &vs.replace("subset: v2", "subset: v1"));
    eventually("the proxy NACKs", Duration::from_secs(5), || async {
        cp.proxies.list().first().and_then(|p| p.last_nack.clone())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bodies(&p, 10).await.into_iter().collect::<Vec<_>>(),
        ["v2"],
        "no part of the refused update is in force"
    );
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_survives_the_end_of_the_old_stream() {
    let state = fresh_dir("session-test");
    let cp = control_plane(&state).start().await;
    // Two streams under one proxy id: the old one ends after the new one started.
    let old = mesh::sidecar(cp.xds, CLIENT, None).await;
    eventually(
        "the first stream is known",
        Duration::from_secs(5),
        || async { (cp.proxies.list().len() == 1).then_some(()) },
    )
    .await;
    let new = mesh::sidecar(cp.xds, CLIENT, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    old.shutdown();
    tokio::time::timeout(Duration::from_secs(5), old.wait())
        .await
        .expect("the old proxy stops");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cp.proxies.list().len(),
        1,
        "the new stream is still listed after the old one ended"
    );
    drop(new);
    cp.stop();
    let _ = std::fs::remove_dir_all(&state);
}
