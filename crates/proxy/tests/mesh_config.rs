//! Tracing as the control plane's mesh config (Istio's MeshConfig) says, pushed over the
//! proxy stream to proxies started without `--trace-endpoint`: into the control plane's
//! own trace store when there is no mesh config, to the mesh config's default
//! OpenTelemetry provider when it names one, and not at all with `enableTracing: false`.

use std::net::SocketAddr;
use std::time::Duration;

use weft_control::RunningControl;
use weft_proxy::RunningProxy;
use weft_testkit::client::{Send, admin_get, via_proxy};
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::{eventually, fresh_dir, upstream};

const CLIENT: &str = "sidecar~client.default";

fn with_store(name: &str) -> ControlPlane {
    ControlPlane::new(&fresh_dir(name)).trace_store(10_000, 16 << 20)
}

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

/// A sidecar of `control`, without tracing flags, once it has its first push.
async fn sidecar(control: &RunningControl) -> RunningProxy {
    let p = mesh::sidecar(control.xds, CLIENT, None).await;
    let admin = p.admin;
    eventually("the first push", Duration::from_secs(5), || async {
        (admin_get(admin, "/ready").await.status == 200).then_some(())
    })
    .await;
    p
}

/// Sends a request whose caller sampled trace `trace_id` (a caller's decision wins over
/// the sampling percentage).
async fn traced_call(p: &RunningProxy, trace_id: &str) {
    let parent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let got = via_proxy(
        p.outbound,
        Send {
            url: "http://reviews:8080/",
            headers: &[("traceparent", &parent)],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 200, "{}", got.body);
}

/// How many spans of `trace_id` the trace store of `control` holds.
async fn spans(control: &RunningControl, trace_id: &str) -> usize {
    let query = control.query.expect("query API");
    let got = admin_get(query, &format!("/api/traces/{trace_id}")).await;
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap_or_default();
    body["data"][0]["spans"].as_array().map_or(0, Vec::len)
}

async fn eventually_spans(control: &RunningControl, trace_id: &str, what: &str) {
    eventually(what, Duration::from_secs(10), || async {
        (spans(control, trace_id).await > 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mesh_config_proxies_trace_into_the_control_planes_store() {
    let app = upstream::named("reviews").await;
    let control = with_store("mesh-config-none").start().await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    eventually(
        "the pushed mesh config turns tracing on",
        Duration::from_secs(5),
        || async { p.telemetry.sinks.load().tracer.is_some().then_some(()) },
    )
    .await;
    assert_eq!(
        p.telemetry.sinks.load().tracer.as_ref().map(|t| t.sampling),
        Some(1.0),
        "Istio's default sampling"
    );
    traced_call(&p, trace_id).await;
    eventually_spans(&control, trace_id, "the span in the embedded store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_the_default_provider_and_stop_with_enable_tracing_false() {
    let app = upstream::named("reviews").await;
    // A collector of its own: another control plane's trace store.
    let collector = with_store("mesh-config-collector").start().await;
    let otlp = collector.otlp.expect("otlp");
    let mesh_config = format!(
        "defaultConfig:\n  tracing:\n    sampling: 100\nextensionProviders:\n- name: otel\n  opentelemetry:\n    service: 127.0.0.1\n    port: {}\n    http: {{path: /v1/traces, timeout: 2s, headers: [{{name: x-tenant, value: shop}}]}}\ndefaultProviders:\n  tracing: [otel]\n",
        otlp.port()
    );
    let control = with_store("mesh-config-otel")
        .mesh_config(&mesh_config)
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    eventually(
        "the pushed mesh config turns tracing on",
        Duration::from_secs(5),
        || async { p.telemetry.sinks.load().tracer.is_some().then_some(()) },
    )
    .await;
    assert_eq!(
        p.telemetry.sinks.load().tracer.as_ref().map(|t| t.sampling),
        Some(100.0)
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    traced_call(&p, trace_id).await;
    eventually_spans(
        &collector,
        trace_id,
        "the span at the mesh config's provider",
    )
    .await;
    assert_eq!(
        spans(&control, trace_id).await,
        0,
        "not in the control plane's own store"
    );

    // `enableTracing: false`: no tracer, and a sampled call leaves no span anywhere.
    let off = with_store("mesh-config-off")
        .mesh_config(&format!("enableTracing: false\n{mesh_config}"))
        .start()
        .await;
    reviews(&off, app.addr);
    let quiet = sidecar(&off).await;
    assert!(
        quiet.telemetry.sinks.load().tracer.is_none(),
        "tracing is off"
    );
    let trace_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    traced_call(&quiet, trace_id).await;
    // The call still propagates the caller's context to the app.
    assert!(
        app.seen()
            .iter()
            .any(|s| s.headers.get("traceparent").is_some())
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(spans(&collector, trace_id).await, 0);
    assert_eq!(spans(&off, trace_id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_started_with_a_trace_endpoint_keeps_it() {
    let app = upstream::named("reviews").await;
    let collector = with_store("mesh-config-flag-collector").start().await;
    let control = with_store("mesh-config-flag")
        .mesh_config("enableTracing: false\n")
        .start()
        .await;
    reviews(&control, app.addr);
    let mut opts = mesh::sidecar_options(control.xds, CLIENT, None);
    opts.tracing = Some(weft_proxy::TracingOptions {
        endpoint: format!("http://{}/v1/traces", collector.otlp.expect("otlp"))
            .parse()
            .expect("uri"),
        sampling: 100.0,
    });
    let p = mesh::start_proxy(opts).await;
    let admin = p.admin;
    eventually("the first push", Duration::from_secs(5), || async {
        (admin_get(admin, "/ready").await.status == 200).then_some(())
    })
    .await;
    let trace_id = "a3ce929d0e0e47364bf92f3577b34da6";
    traced_call(&p, trace_id).await;
    eventually_spans(&collector, trace_id, "the span at the flag's endpoint").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_written_where_the_mesh_config_says() {
    let app = upstream::named("reviews").await;
    let dir = fresh_dir("mesh-config-access-log");
    let file = dir.join("access.log");
    let control = ControlPlane::new(&dir.join("state"))
        .mesh_config(&format!(
            "accessLogFile: {}\naccessLogEncoding: JSON\n",
            file.display()
        ))
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    let got = via_proxy(
        p.outbound,
        Send {
            url: "http://reviews:8080/logged",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 200);
    let line = eventually("the request's line", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&file).ok()?;
        let line = text.lines().find(|l| l.contains("/logged"))?.to_string();
        Some(line)
    })
    .await;
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(entry["path"], "/logged");
    assert_eq!(entry["response_code"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_a_zipkin_provider_as_zipkin_json() {
    let app = upstream::named("reviews").await;
    // The collector: another control plane, whose receiver also serves Zipkin's span API.
    let collector = with_store("mesh-config-zipkin-collector").start().await;
    let port = collector.otlp.expect("receiver").port();
    let mesh_config = format!(
        "defaultConfig: {{tracing: {{sampling: 100}}}}\nextensionProviders:\n- name: zipkin\n  zipkin: {{service: 127.0.0.1, port: {port}, maxTagLength: 12}}\ndefaultProviders: {{tracing: [zipkin]}}\n"
    );
    let control = with_store("mesh-config-zipkin")
        .mesh_config(&mesh_config)
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    eventually("the zipkin tracer", Duration::from_secs(5), || async {
        p.telemetry.sinks.load().tracer.is_some().then_some(())
    })
    .await;
    let trace_id = "7a3f5c2b9d1e4f60a1b2c3d4e5f60718";
    traced_call(&p, trace_id).await;
    eventually_spans(&collector, trace_id, "the span at the zipkin provider").await;
    let query = collector.query.expect("query API");
    let got = admin_get(query, &format!("/api/traces/{trace_id}")).await;
    let body: serde_json::Value = serde_json::from_str(&got.body).expect("json");
    let span = &body["data"][0]["spans"][0];
    let tags = span["tags"].as_array().expect("tags");
    let tag = |key: &str| {
        tags.iter()
            .find(|t| t["key"] == key)
            .map(|t| t["value"].to_string())
    };
    assert_eq!(tag("span.kind").as_deref(), Some("\"client\""));
    // Tag values are cut at the provider's maxTagLength (12 bytes).
    let url = tag("http.url").expect("http.url");
    assert_eq!(url, "\"http://revie\"", "{tags:?}");
    // The parent is the caller's span, as the traceparent said.
    assert_eq!(span["references"][0]["spanID"], "00f067aa0ba902b7");
    assert_eq!(
        spans(&control, trace_id).await,
        0,
        "not in the proxy's own control plane"
    );
}
