//! Traces as a search finds them: a client sidecar and a server sidecar each record a
//! span of one call (client, then server, linked parent to child), exported as OTLP to
//! the control plane's trace store and found through Jaeger's query API. A malformed
//! `traceparent` starts a new trace; a caller's "not sampled" is respected; with the
//! collector gone, requests still succeed and the dropped spans are counted.

mod common;

use std::time::Duration;

use common::Harness;
use weft_model::service::WorkloadInfo;
use weft_testkit::client::{Send, admin_get, get, via_proxy};
use weft_testkit::mesh::ControlPlane;
use weft_testkit::{eventually, fresh_dir, upstream};

fn workload(name: &str, app: &str) -> WorkloadInfo {
    let labels = [
        ("app".to_string(), app.to_string()),
        ("version".to_string(), "v1".to_string()),
    ]
    .into_iter()
    .collect();
    WorkloadInfo::new(name, "default", app, &labels)
}

async fn trace_store() -> weft_control::RunningControl {
    ControlPlane::new(&fresh_dir("tracing-test"))
        .trace_store(10_000, 16 << 20)
        .start()
        .await
}

fn tracing_to(otlp: std::net::SocketAddr, sampling: f64) -> Option<weft_proxy::TracingOptions> {
    Some(weft_proxy::TracingOptions {
        endpoint: format!("http://{otlp}/v1/traces").parse().expect("uri"),
        sampling,
    })
}

const SERVICE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n";

async fn jaeger(query: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let got = admin_get(query, path).await;
    assert_eq!(got.status.as_u16(), 200, "{path}: {}", got.body);
    serde_json::from_str(&got.body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_makes_one_trace_of_linked_client_and_server_spans() {
    let store = trace_store().await;
    let (otlp, query) = (store.otlp.expect("otlp"), store.query.expect("query"));
    let app = upstream::named("reviews").await;
    let server = Harness::traced_sidecar(
        SERVICE,
        Some(app.addr),
        workload("reviews-v1", "reviews"),
        &[("app", "reviews")],
        tracing_to(otlp, 100.0),
    )
    .await;
    let inbound = server.proxy.inbound.expect("inbound");
    let client_yaml = format!(
        "{SERVICE}  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
        inbound.port()
    );
    let client = Harness::traced_sidecar(
        &client_yaml,
        None,
        workload("productpage-v1", "productpage"),
        &[("app", "productpage")],
        tracing_to(otlp, 100.0),
    )
    .await;

    // A malformed traceparent: the request works and a new trace starts.
    let got = via_proxy(
        client.proxy.outbound,
        Send {
            url: "http://reviews:9080/",
            headers: &[("traceparent", "00-not-a-trace-01")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 200);
    let seen = &app.seen()[0];
    let sent = seen.headers["traceparent"]
        .to_str()
        .expect("text")
        .to_string();
    let trace_id = sent.split('-').nth(1).expect("trace id").to_string();
    assert_eq!(trace_id.len(), 32, "{sent}");

    let trace = eventually(
        "both spans in the store",
        Duration::from_secs(10),
        || async {
            let got = admin_get(query, &format!("/api/traces/{trace_id}")).await;
            let body: serde_json::Value = serde_json::from_str(&got.body).ok()?;
            (body["data"][0]["spans"].as_array().map_or(0, Vec::len) == 2).then_some(body)
        },
    )
    .await;
    let trace = &trace["data"][0];
    let spans = trace["spans"].as_array().expect("spans");
    let kind = |s: &serde_json::Value| {
        s["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["key"] == "span.kind"))
            .map(|t| t["value"].clone())
    };
    let client_span = spans
        .iter()
        .find(|s| kind(s) == Some("client".into()))
        .expect("client span");
    let server_span = spans
        .iter()
        .find(|s| kind(s) == Some("server".into()))
        .expect("server span");
    assert!(
        client_span["references"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "the client span is the root"
    );
    assert_eq!(
        server_span["references"][0]["spanID"], client_span["spanID"],
        "server is the client's child"
    );
    // The app got the server span as its parent.
    assert!(
        sent.contains(server_span["spanID"].as_str().expect("id")),
        "{sent}"
    );
    let process = |s: &serde_json::Value| {
        trace["processes"][s["processID"].as_str().expect("pid")]["serviceName"].clone()
    };
    assert_eq!(process(client_span), "productpage.default");
    assert_eq!(process(server_span), "reviews.default");
    assert_eq!(
        client_span["operationName"],
        "reviews.default.svc.cluster.local:9080/*"
    );
    let tag = |s: &serde_json::Value, k: &str| {
        s["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["key"] == k))
            .map(|t| t["value"].clone())
    };
    assert_eq!(tag(client_span, "http.status_code"), Some("200".into()));
    assert_eq!(
        tag(client_span, "upstream_cluster"),
        Some("outbound|9080||reviews.default.svc.cluster.local".into())
    );
    assert_eq!(tag(client_span, "component"), Some("proxy".into()));
    assert_eq!(tag(client_span, "http.method"), Some("GET".into()));
    assert!(tag(client_span, "guid:x-request-id").is_some());

    // Found by service, tag and duration, as the Jaeger UI searches.
    let found = jaeger(
        query,
        "/api/traces?service=productpage&tags=http.status_code%3D200&lookback=1h&limit=10",
    )
    .await;
    assert!(
        found["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|t| t["traceID"] == trace_id.as_str()))
    );
    let none = jaeger(query, "/api/traces?service=productpage&minDuration=10s").await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let services = jaeger(query, "/api/services").await;
    assert_eq!(
        services["data"],
        serde_json::json!(["productpage.default", "reviews.default"])
    );

    // A caller's sampling decision holds: "not sampled" records nothing, yet propagates.
    let unsampled = "4bf92f3577b34da6a3ce929d0e0e4736";
    let got = via_proxy(
        client.proxy.outbound,
        Send {
            url: "http://reviews:9080/",
            headers: &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            )],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 200);
    let forwarded = app.seen().last().expect("seen").headers["traceparent"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        forwarded.starts_with(&format!("00-{unsampled}-")) && forwarded.ends_with("-00"),
        "{forwarded}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got = admin_get(query, &format!("/api/traces/{unsampled}")).await;
    assert_eq!(
        got.status.as_u16(),
        404,
        "an unsampled trace was recorded: {}",
        got.body
    );
    store.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_collector_requests_succeed_and_dropped_spans_are_counted() {
    let app = upstream::named("ok").await;
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let yaml = format!(
        "{SERVICE}  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
        app.addr.port()
    );
    let client = Harness::traced_sidecar(
        &yaml,
        None,
        workload("productpage-v1", "productpage"),
        &[],
        tracing_to(closed, 100.0),
    )
    .await;
    for _ in 0..20 {
        assert_eq!(
            get(client.proxy.outbound, "http://reviews:9080/")
                .await
                .status
                .as_u16(),
            200
        );
    }
    eventually(
        "the dropped spans to be counted",
        Duration::from_secs(10),
        || async {
            let stats = client.stats().await;
            stats
                .lines()
                .find_map(|l| l.strip_prefix("weft_tracing_spans_dropped_total "))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n >= 20)
        },
    )
    .await;
}

/// Istio's canonical names when labels are missing: a sidecar started with only a
/// workload name (`--workload acc-client`, no `app`) names its spans and metrics by it,
/// and the server's canonical labels win over `app` on both reporters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_without_app_labels_are_named_as_istio_names_them() {
    let store = trace_store().await;
    let (otlp, query) = (store.otlp.expect("otlp"), store.query.expect("query"));
    let app = upstream::named("reviews").await;
    let server_labels = [
        ("app", "reviews"),
        ("service.istio.io/canonical-name", "reviews-canonical"),
        ("service.istio.io/canonical-revision", "r7"),
    ];
    let labels_map = server_labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let server = Harness::traced_sidecar(
        SERVICE,
        Some(app.addr),
        WorkloadInfo::new("reviews-r7", "default", "reviews", &labels_map),
        &server_labels,
        tracing_to(otlp, 100.0),
    )
    .await;
    let inbound = server.proxy.inbound.expect("inbound");
    let client_yaml = format!(
        "{SERVICE}  workloadSelector: {{labels: {{app: reviews}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-r7}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {}}}\n  labels: {{app: reviews, service.istio.io/canonical-name: reviews-canonical, service.istio.io/canonical-revision: r7}}\n  serviceAccount: reviews\n",
        inbound.port()
    );
    let client = Harness::traced_sidecar(
        &client_yaml,
        None,
        WorkloadInfo::new("acc-client", "default", "acc", &Default::default()),
        &[],
        tracing_to(otlp, 100.0),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            get(client.proxy.outbound, "http://reviews:9080/")
                .await
                .status
                .as_u16(),
            200
        );
    }
    let source = client.stats().await;
    let line = source
        .lines()
        .find(|l| l.starts_with("istio_requests_total{reporter=\"source\""))
        .unwrap_or_else(|| panic!("no source series in {source}"));
    for want in [
        "source_workload=\"acc-client\"",
        "source_app=\"acc-client\"",
        "source_canonical_service=\"acc-client\"",
        "source_canonical_revision=\"latest\"",
        "destination_app=\"reviews\"",
        "destination_canonical_service=\"reviews-canonical\"",
        "destination_canonical_revision=\"r7\"",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
    let destination = server.stats().await;
    let line = destination
        .lines()
        .find(|l| l.starts_with("istio_requests_total{reporter=\"destination\""))
        .unwrap_or_else(|| panic!("no destination series in {destination}"));
    for want in [
        "source_workload=\"acc-client\"",
        "source_app=\"acc-client\"",
        "source_canonical_service=\"acc-client\"",
        "destination_canonical_service=\"reviews-canonical\"",
        "destination_canonical_revision=\"r7\"",
        "destination_service_name=\"reviews\"",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
    // Jaeger's service names are the canonical services.
    let services = eventually("both services' spans", Duration::from_secs(10), || async {
        let v = jaeger(query, "/api/services").await;
        let names: Vec<String> = v["data"]
            .as_array()?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        (names.len() >= 2).then_some(names)
    })
    .await;
    assert!(
        services.contains(&"acc-client.default".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"reviews-canonical.default".to_string()),
        "{services:?}"
    );
    assert!(
        !services.iter().any(|s| s.starts_with("unknown")),
        "{services:?}"
    );
    store.stop();
}
