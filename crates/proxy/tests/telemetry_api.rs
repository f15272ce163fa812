//! Istio's Telemetry API, applied to a running control plane and pushed to proxies that
//! keep running: each change takes effect on the next request. Sampling (0 and 100
//! percent), custom span tags at a real OTLP collector, access logs filtered by a CEL
//! expression, and metric overrides in `/stats/prometheus`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weft_control::RunningControl;
use weft_proxy::RunningProxy;
use weft_testkit::client::{Send, admin_get, via_proxy};
use weft_testkit::mesh::{self, ControlPlane, apply};
use weft_testkit::upstream::{self, Reply, Upstream};
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

/// A Telemetry `name` in `namespace` with `spec` (YAML, indented by two).
fn telemetry(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

/// An app answering `/missing...` with 404 and everything else with 200.
async fn app() -> Upstream {
    upstream::http(Arc::new(|_, seen| {
        if seen.path.starts_with("/missing") {
            Reply::status(404, "no such thing")
        } else {
            Reply::ok("reviews")
        }
    }))
    .await
}

/// A sidecar of `control` serving `/stats/prometheus`, once it has its first push.
async fn sidecar(control: &RunningControl) -> RunningProxy {
    let mut opts = mesh::sidecar_options(control.xds, CLIENT, None);
    opts.stats = Some("127.0.0.1:0".parse().expect("address"));
    let p = mesh::start_proxy(opts).await;
    let admin = p.admin;
    eventually("the first push", Duration::from_secs(5), || async {
        (admin_get(admin, "/ready").await.status == 200).then_some(())
    })
    .await;
    p
}

/// Waits until the proxy's configuration in force applies the Telemetry resources
/// `applied` (`namespace/name`, least specific first).
async fn in_force(p: &RunningProxy, applied: &[&str]) {
    eventually(
        "the Telemetry pushed and in force",
        Duration::from_secs(5),
        || async { (p.snapshots.load().mesh.telemetry.applied == applied).then_some(()) },
    )
    .await;
}

/// Calls `path` on reviews through the sidecar with `headers`; the status.
async fn call(p: &RunningProxy, path: &str, headers: &[(&str, &str)]) -> u16 {
    let url = format!("http://reviews:8080{path}");
    via_proxy(
        p.outbound,
        Send {
            url: &url,
            headers,
            ..Default::default()
        },
    )
    .await
    .status
    .as_u16()
}

/// The trace id and sampled flag of the `traceparent` the app saw on the request to `path`.
fn trace_of(app: &Upstream, path: &str) -> (String, bool) {
    let seen = app.seen();
    let request = seen
        .iter()
        .rev()
        .find(|s| s.path == path)
        .expect("the app saw the request");
    let parent = request
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("the sidecar propagates a traceparent")
        .to_string();
    let parts: Vec<&str> = parent.split('-').collect();
    (parts[1].to_string(), parts[3] == "01")
}

/// The spans of `trace_id` in `collector`'s store, as Jaeger's API returns them.
async fn spans(collector: &RunningControl, trace_id: &str) -> Vec<serde_json::Value> {
    let query = collector.query.expect("query API");
    let got = admin_get(query, &format!("/api/traces/{trace_id}")).await;
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap_or_default();
    body["data"][0]["spans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_and_custom_tags_change_with_the_telemetry_in_force() {
    let app = app().await;
    let collector = ControlPlane::new(&fresh_dir("telemetry-api-collector"))
        .trace_store(10_000, 16 << 20)
        .start()
        .await;
    let otlp = collector.otlp.expect("otlp");
    // The mesh samples every trace; the Telemetry decides otherwise.
    let control = ControlPlane::new(&fresh_dir("telemetry-api-tracing"))
        .mesh_config(&format!(
            "defaultConfig: {{tracing: {{sampling: 100}}}}\nextensionProviders:\n- name: otel\n  opentelemetry: {{service: 127.0.0.1, port: {}}}\ndefaultProviders: {{tracing: [otel]}}\n",
            otlp.port()
        ))
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;

    apply(
        &control,
        &telemetry(
            "istio-system",
            "mesh-default",
            "  tracing:\n  - randomSamplingPercentage: 0\n",
        ),
    );
    in_force(&p, &["istio-system/mesh-default"]).await;
    let mut unsampled = Vec::new();
    for i in 0..20 {
        let path = format!("/zero/{i}");
        assert_eq!(call(&p, &path, &[]).await, 200);
        let (trace_id, sampled) = trace_of(&app, &path);
        assert!(!sampled, "0 percent: the next hop is told not to sample");
        unsampled.push(trace_id);
    }

    // The namespace's Telemetry overrides the mesh's: every trace, with custom tags.
    apply(
        &control,
        &telemetry(
            "default",
            "tracing",
            "  tracing:\n  - randomSamplingPercentage: 100\n    customTags:\n      team: {literal: {value: shop}}\n      path_env: {environment: {name: PATH}}\n      unset_env: {environment: {name: WEFT_TELEMETRY_API_TEST_UNSET, defaultValue: fallback}}\n      user: {header: {name: x-user, defaultValue: anonymous}}\n      tenant: {header: {name: x-tenant, defaultValue: none}}\n",
        ),
    );
    in_force(&p, &["istio-system/mesh-default", "default/tracing"]).await;
    assert_eq!(call(&p, "/hundred", &[("x-user", "ann")]).await, 200);
    let (trace_id, sampled) = trace_of(&app, "/hundred");
    assert!(sampled, "100 percent");
    let found = eventually(
        "the span at the collector",
        Duration::from_secs(10),
        || async {
            let s = spans(&collector, &trace_id).await;
            (!s.is_empty()).then_some(s)
        },
    )
    .await;
    let tags = found[0]["tags"].as_array().expect("tags").clone();
    let tag = |key: &str| {
        tags.iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str().map(str::to_string))
    };
    assert_eq!(tag("team").as_deref(), Some("shop"), "{tags:?}");
    assert_eq!(tag("path_env"), std::env::var("PATH").ok());
    assert_eq!(tag("unset_env").as_deref(), Some("fallback"));
    assert_eq!(tag("user").as_deref(), Some("ann"));
    assert_eq!(tag("tenant").as_deref(), Some("none"));
    assert_eq!(
        tag("http.status_code").as_deref(),
        Some("200"),
        "Istio's tags stay"
    );
    // Spans are batched: by now the unsampled calls' would have arrived too.
    for trace_id in &unsampled {
        assert!(
            spans(&collector, trace_id).await.is_empty(),
            "an unsampled call left a span"
        );
    }

    // disableSpanReporting: the trace is still sampled and propagated, but not reported.
    apply(
        &control,
        &telemetry(
            "default",
            "tracing",
            "  tracing:\n  - randomSamplingPercentage: 100\n    disableSpanReporting: true\n",
        ),
    );
    eventually("span reporting off", Duration::from_secs(5), || async {
        p.snapshots
            .load()
            .mesh
            .telemetry
            .client
            .tracing
            .disable_span_reporting
            .then_some(())
    })
    .await;
    assert_eq!(call(&p, "/quiet", &[]).await, 200);
    let (quiet, sampled) = trace_of(&app, "/quiet");
    assert!(sampled, "the decision still travels");
    assert_eq!(call(&p, "/after-quiet", &[]).await, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        spans(&collector, &quiet).await.is_empty(),
        "no span reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_filter_decides_which_requests_are_logged() {
    let app = app().await;
    let dir = fresh_dir("telemetry-api-access-log");
    let file = dir.join("access.log");
    let providers = dir.join("provider.log");
    let control = ControlPlane::new(&dir.join("state"))
        .mesh_config(&format!(
            "accessLogFile: {}\nextensionProviders:\n- name: errors\n  envoyFileAccessLog: {{path: {}}}\n",
            file.display(),
            providers.display()
        ))
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    let logged = |f: &std::path::Path, path: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(&format!(" {path} ")))
    };
    assert_eq!(call(&p, "/before", &[]).await, 200);
    eventually(
        "no filter: every request",
        Duration::from_secs(5),
        || async { logged(&file, "/before").then_some(()) },
    )
    .await;

    apply(
        &control,
        &telemetry(
            "istio-system",
            "mesh-default",
            "  accessLogging:\n  - filter:\n      expression: response.code >= 400 || request.headers['x-debug'] == 'on'\n",
        ),
    );
    in_force(&p, &["istio-system/mesh-default"]).await;
    assert_eq!(call(&p, "/ok", &[]).await, 200);
    assert_eq!(call(&p, "/ok-debug", &[("x-debug", "on")]).await, 200);
    assert_eq!(call(&p, "/missing", &[]).await, 404);
    eventually("the 404 logged", Duration::from_secs(5), || async {
        logged(&file, "/missing").then_some(())
    })
    .await;
    assert!(logged(&file, "/ok-debug"), "the header matched");
    // One writer, in order: had /ok been logged it would be there before /missing.
    assert!(
        !logged(&file, "/ok"),
        "a 200 without the header is filtered out"
    );

    // A namespace's Telemetry sends its requests to a named provider instead of the mesh's
    // file, with a filter of its own (the more specific one wins).
    apply(
        &control,
        &telemetry(
            "default",
            "logs",
            "  accessLogging:\n  - providers: [{name: errors}]\n    filter: {expression: \"request.method == 'GET'\"}\n",
        ),
    );
    in_force(&p, &["istio-system/mesh-default", "default/logs"]).await;
    assert_eq!(call(&p, "/to-provider", &[]).await, 200);
    eventually("the provider's file", Duration::from_secs(5), || async {
        logged(&providers, "/to-provider").then_some(())
    })
    .await;
    assert!(
        !logged(&file, "/to-provider"),
        "the provider replaced the mesh's file"
    );

    apply(
        &control,
        &telemetry(
            "default",
            "logs",
            "  accessLogging:\n  - match: {mode: CLIENT}\n    disabled: true\n",
        ),
    );
    eventually("logging off", Duration::from_secs(5), || async {
        p.snapshots
            .load()
            .mesh
            .telemetry
            .client
            .access_log
            .is_off()
            .then_some(())
    })
    .await;
    assert_eq!(call(&p, "/missing-silent", &[]).await, 404);
    assert_eq!(call(&p, "/ok-debug", &[("x-debug", "on")]).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!logged(&file, "/missing-silent"));
    assert!(!logged(&providers, "/missing-silent"));
}

/// The `/stats/prometheus` lines of `p` starting with `prefix`.
async fn lines(p: &RunningProxy, prefix: &str) -> Vec<String> {
    let stats = p.stats.expect("stats listener");
    admin_get(stats, "/stats/prometheus")
        .await
        .body
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_overrides_disable_a_metric_and_change_labels() {
    let app = app().await;
    let control = ControlPlane::new(&fresh_dir("telemetry-api-metrics"))
        .start()
        .await;
    reviews(&control, app.addr);
    let p = sidecar(&control).await;
    assert_eq!(call(&p, "/before", &[]).await, 200);
    let before = lines(&p, "istio_requests_total{").await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].contains("response_flags=\"-\""), "{}", before[0]);

    apply(
        &control,
        &telemetry(
            "default",
            "metrics",
            "  metrics:\n  - providers: [{name: prometheus}]\n    overrides:\n    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n      disabled: true\n    - match: {metric: REQUEST_DURATION, mode: SERVER}\n      disabled: true\n    - match: {metric: ALL_METRICS}\n      tagOverrides:\n        response_flags: {operation: REMOVE}\n        response_code: {operation: REMOVE}\n        team: {value: \"'shop'\"}\n        method: {value: request.method}\n",
        ),
    );
    in_force(&p, &["default/metrics"]).await;
    assert_eq!(call(&p, "/after", &[]).await, 200);
    assert_eq!(call(&p, "/missing", &[]).await, 404);
    let stats = p.stats.expect("stats listener");
    let text = admin_get(stats, "/stats/prometheus").await.body;
    assert!(
        !text.contains("istio_requests_total{"),
        "REQUEST_COUNT is disabled on the client side, the only side this proxy reported:\n{text}"
    );
    let durations = lines(&p, "istio_request_duration_milliseconds_count{").await;
    assert_eq!(
        durations.len(),
        2,
        "the 200 and the 404 are one series once response_code is removed; the call made before the override keeps its own: {durations:?}"
    );
    let series = durations
        .iter()
        .find(|s| s.contains("team=\"shop\""))
        .expect("the calls made under the override");
    assert!(series.ends_with(" 2"), "{series}");
    assert!(!series.contains("response_flags="), "{series}");
    assert!(!series.contains("response_code="), "{series}");
    assert!(series.contains("method=\"GET\""), "{series}");
    assert!(
        series.contains("destination_service=\"reviews.default.svc.cluster.local\""),
        "untouched labels stay: {series}"
    );
    let older = durations
        .iter()
        .find(|s| !s.contains("team="))
        .expect("the older call");
    assert!(
        older.ends_with(" 1") && !older.contains("response_flags="),
        "{older}"
    );
    assert!(
        !lines(&p, "istio_response_bytes_count{").await.is_empty(),
        "the other metrics remain"
    );

    // Deleting the Telemetry restores Istio's metrics as they were.
    let key = weft_control::store::Key {
        kind: weft_api::Kind::Telemetry,
        namespace: "default".into(),
        name: "metrics".into(),
    };
    control.store.delete(&key).expect("deleted");
    in_force(&p, &[]).await;
    assert_eq!(call(&p, "/restored", &[]).await, 200);
    let restored = lines(&p, "istio_requests_total{").await;
    assert_eq!(
        restored.len(),
        1,
        "the calls made while REQUEST_COUNT was off were not counted: {restored:?}"
    );
    assert!(
        restored[0].contains("response_flags=\"-\""),
        "{}",
        restored[0]
    );
    assert!(!restored[0].contains("team="), "{}", restored[0]);
    assert!(
        restored[0].ends_with(" 2"),
        "/before and /restored: {}",
        restored[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_reading_files_takes_telemetry_edits_and_its_trace_endpoint_takes_every_provider() {
    let app = app().await;
    let collector = ControlPlane::new(&fresh_dir("telemetry-api-files-collector"))
        .trace_store(10_000, 16 << 20)
        .start()
        .await;
    let service = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\n",
        app.addr.port()
    );
    let with = |percent: u32| {
        format!(
            "{service}{}",
            telemetry(
                "default",
                "tracing",
                &format!(
                    "  tracing:\n  - providers: [{{name: some-provider}}]\n    randomSamplingPercentage: {percent}\n    customTags: {{team: {{literal: {{value: files}}}}}}\n"
                ),
            )
        )
    };
    let dir = fresh_dir("telemetry-api-files");
    let mut opts = mesh::file_options(&dir, &with(0), CLIENT);
    opts.tracing = Some(weft_proxy::TracingOptions {
        endpoint: format!("http://{}/v1/traces", collector.otlp.expect("otlp"))
            .parse()
            .expect("uri"),
        sampling: 100.0,
    });
    let p = mesh::start_proxy(opts).await;
    assert_eq!(call(&p, "/files-zero", &[]).await, 200);
    assert!(
        !trace_of(&app, "/files-zero").1,
        "the Telemetry's 0 percent"
    );

    mesh::write_config(&dir, &with(100));
    eventually(
        "the edited file in force",
        Duration::from_secs(10),
        || async {
            (p.snapshots.load().mesh.telemetry.client.tracing.sampling == Some(100.0)).then_some(())
        },
    )
    .await;
    assert_eq!(call(&p, "/files-hundred", &[]).await, 200);
    let (trace_id, sampled) = trace_of(&app, "/files-hundred");
    assert!(sampled);
    let found = eventually(
        "the span at the flag's endpoint",
        Duration::from_secs(10),
        || async {
            let s = spans(&collector, &trace_id).await;
            (!s.is_empty()).then_some(s)
        },
    )
    .await;
    let tags = found[0]["tags"].as_array().expect("tags");
    assert!(
        tags.iter()
            .any(|t| t["key"] == "team" && t["value"] == "files"),
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mode_applies_to_the_inbound_side_and_client_mode_to_the_outbound_side() {
    let app = app().await;
    let labels = |name: &str, app: &str| {
        let labels = [("app", app), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        weft_model::service::WorkloadInfo::new(name, "default", name, &labels)
    };
    let entry = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: reviews}}\n---\n";
    let disable = |mode: &str| {
        telemetry(
            "istio-system",
            "mesh-default",
            &format!(
                "  metrics:\n  - overrides:\n    - match: {{metric: REQUEST_COUNT, mode: {mode}}}\n      disabled: true\n"
            ),
        )
    };
    let server = common::Harness::sidecar(
        &format!("{entry}{}", disable("SERVER")),
        Some(app.addr),
        labels("reviews-v1", "reviews"),
        &[("app", "reviews"), ("version", "v1")],
    )
    .await;
    let inbound = server.proxy.inbound.expect("inbound listener");
    let client_yaml = format!(
        "{entry}apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-v1}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {}}}\n  labels: {{app: reviews, version: v1}}\n---\n{}",
        inbound.port(),
        disable("SERVER")
    );
    let client = common::Harness::sidecar(
        &client_yaml,
        None,
        labels("productpage-v1", "productpage"),
        &[("app", "productpage"), ("version", "v1")],
    )
    .await;
    let call = |path: &'static str| {
        let outbound = client.proxy.outbound;
        async move {
            weft_testkit::client::get(outbound, &format!("http://reviews:9080{path}"))
                .await
                .status
                .as_u16()
        }
    };
    let count = |text: &str, metric: &str| text.lines().filter(|l| l.starts_with(metric)).count();
    assert_eq!(call("/one").await, 200);
    let (client_stats, server_stats) = (client.stats().await, server.stats().await);
    assert_eq!(
        count(&client_stats, "istio_requests_total{reporter=\"source\""),
        1
    );
    assert_eq!(
        count(&server_stats, "istio_requests_total{"),
        0,
        "SERVER: the inbound side does not count"
    );
    assert_eq!(
        count(
            &server_stats,
            "istio_request_duration_milliseconds_count{reporter=\"destination\""
        ),
        1,
        "the other metrics remain"
    );

    // Edited in place: now the client side stops counting and the server side counts.
    let version = server.version();
    server.write(&format!("{entry}{}", disable("CLIENT")));
    client.write(&client_yaml.replace("mode: SERVER", "mode: CLIENT"));
    eventually("both edits in force", Duration::from_secs(10), || async {
        let sides = |h: &common::Harness| {
            h.proxy
                .snapshots
                .load()
                .telemetry
                .client
                .metrics
                .enabled(weft_api::telemetry::IstioMetric::RequestCount)
        };
        (server.version() > version && !sides(&server) && !sides(&client)).then_some(())
    })
    .await;
    assert_eq!(call("/two").await, 200);
    let server_stats = server.stats().await;
    let served: Vec<&str> = server_stats
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{reporter=\"destination\""))
        .collect();
    assert_eq!(served.len(), 1, "{served:?}");
    assert!(
        served[0].ends_with(" 1"),
        "only the call made while the count was on: {}",
        served[0]
    );
    assert_eq!(
        count(&client.stats().await, "istio_requests_total{"),
        0,
        "CLIENT: the outbound side's count is left out"
    );
}
