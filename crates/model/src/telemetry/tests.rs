//! Istio's precedence among Telemetry resources, section by section and side by side.

use std::collections::BTreeMap;

use super::*;

fn resources(yaml: &str) -> Vec<Resource> {
    let loaded = weft_api::load_str("test.yaml", yaml);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded.resources.into_iter().map(|l| l.resource).collect()
}

fn scope(ns: &str, labels: &[(&str, &str)]) -> ProxyScope {
    ProxyScope {
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..ProxyScope::default()
    }
}

fn telemetry(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n---\n"
    )
}

#[test]
fn workload_overrides_namespace_overrides_root_field_by_field() {
    let all = resources(&[
        telemetry(
            "istio-system",
            "mesh-default",
            "{tracing: [{randomSamplingPercentage: 10, customTags: {mesh: {literal: {value: m}}}}]}",
        ),
        telemetry(
            "shop",
            "ns",
            "{tracing: [{randomSamplingPercentage: 50, customTags: {team: {literal: {value: shop}}}}]}",
        ),
        telemetry(
            "shop",
            "cart",
            "{selector: {matchLabels: {app: cart}}, tracing: [{disableSpanReporting: true, customTags: {team: {header: {name: X-Team, defaultValue: none}}}}]}",
        ),
        telemetry("other", "ns", "{tracing: [{randomSamplingPercentage: 99}]}"),
    ]
    .concat());
    let mesh = MeshConfig::default();
    let cart = resolve(&all, &scope("shop", &[("app", "cart")]), &mesh);
    assert_eq!(
        cart.applied,
        ["istio-system/mesh-default", "shop/ns", "shop/cart"]
    );
    let t = &cart.client.tracing;
    assert_eq!(
        t.sampling,
        Some(50.0),
        "the namespace's, the workload sets none"
    );
    assert!(t.disable_span_reporting);
    assert_eq!(t.custom_tags["mesh"], TagSource::Literal("m".into()));
    assert_eq!(
        t.custom_tags["team"],
        TagSource::Header {
            name: "x-team".into(),
            default: "none".into()
        },
        "the workload's tag replaces the namespace's of the same name"
    );
    let web = resolve(&all, &scope("shop", &[("app", "web")]), &mesh);
    assert_eq!(web.server.tracing.sampling, Some(50.0));
    assert!(!web.server.tracing.disable_span_reporting);
    let elsewhere = resolve(&all, &scope("bank", &[]), &mesh);
    assert_eq!(elsewhere.applied, ["istio-system/mesh-default"]);
    assert_eq!(elsewhere.client.tracing.sampling, Some(10.0));
    assert_eq!(
        resolve(&[], &scope("bank", &[]), &mesh),
        ProxyTelemetry {
            client: SideTelemetry {
                access_log: AccessLogPolicy {
                    legacy: Some(LogRule::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
            server: SideTelemetry {
                access_log: AccessLogPolicy {
                    legacy: Some(LogRule::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
            applied: vec![],
        },
        "no Telemetry: the mesh config alone"
    );
}

#[test]
fn modes_pick_the_side() {
    let all = resources(&telemetry(
        "shop",
        "ns",
        "{tracing: [{match: {mode: CLIENT}, randomSamplingPercentage: 0}, {match: {mode: SERVER}, randomSamplingPercentage: 100}], accessLogging: [{match: {mode: CLIENT}, disabled: true}], metrics: [{overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, disabled: true}]}]}",
    ));
    let t = resolve(&all, &scope("shop", &[]), &MeshConfig::default());
    assert_eq!(t.client.tracing.sampling, Some(0.0));
    assert_eq!(t.server.tracing.sampling, Some(100.0));
    assert!(t.client.access_log.is_off());
    assert_eq!(t.server.access_log.legacy, Some(LogRule::default()));
    assert!(t.client.metrics.enabled(IstioMetric::RequestCount));
    assert!(!t.server.metrics.enabled(IstioMetric::RequestCount));
    assert!(t.server.metrics.enabled(IstioMetric::RequestDuration));
}

#[test]
fn providers_default_to_the_mesh_config() {
    let mesh = weft_api::mesh_config::load_mesh_config(
        "mesh.yaml",
        "extensionProviders:\n- {name: file, envoyFileAccessLog: {path: /tmp/a.log}}\n- {name: prom, prometheus: {}}\ndefaultProviders: {accessLogging: [file], metrics: [prom]}\n",
    )
    .config
    .expect("valid");
    let none = resolve(&[], &scope("shop", &[]), &mesh);
    let unfiltered = |names: &[&str]| -> BTreeMap<String, LogRule> {
        names
            .iter()
            .map(|n| (n.to_string(), LogRule::default()))
            .collect()
    };
    assert_eq!(none.client.access_log.providers, unfiltered(&["file"]));
    assert!(none.client.access_log.legacy.is_some());
    let all = resources(&[
        telemetry(
            "istio-system",
            "mesh",
            "{accessLogging: [{filter: {expression: 'response.code >= 400'}}]}",
        ),
        telemetry(
            "shop",
            "ns",
            "{accessLogging: [{providers: [{name: envoy}]}], metrics: [{providers: [{name: stackdriver}]}]}",
        ),
    ]
    .concat());
    let bank = resolve(&all, &scope("bank", &[]), &mesh);
    let log = &bank.server.access_log;
    let filtered = LogRule {
        filter: Some("response.code >= 400".into()),
    };
    assert_eq!(
        log.providers,
        [("file".to_string(), filtered.clone())].into(),
        "defaultProviders.accessLogging, with the root's filter"
    );
    assert_eq!(log.legacy, None);
    assert!(!bank.server.metrics.disabled_all);
    let shop = resolve(&all, &scope("shop", &[]), &mesh);
    assert_eq!(
        shop.server.access_log.providers,
        unfiltered(&["envoy"]),
        "the root's filter was for the providers in scope then (file), not envoy"
    );
    assert!(
        shop.server.metrics.disabled_all,
        "no Prometheus provider: no metrics"
    );
}

#[test]
fn metric_overrides_accumulate_and_the_more_specific_wins() {
    let all = resources(&[
        telemetry(
            "istio-system",
            "mesh",
            "{metrics: [{overrides: [{tagOverrides: {response_flags: {operation: REMOVE}, team: {value: \"'mesh'\"}}}]}]}",
        ),
        telemetry(
            "shop",
            "cart",
            "{selector: {matchLabels: {app: cart}}, metrics: [{overrides: [{match: {metric: REQUEST_COUNT}, tagOverrides: {team: {value: request.host}}}, {match: {metric: TCP_OPENED_CONNECTIONS}, disabled: true}]}]}",
        ),
    ]
    .concat());
    let t = resolve(
        &all,
        &scope("shop", &[("app", "cart")]),
        &MeshConfig::default(),
    );
    let m = &t.client.metrics;
    let count = &m.overrides[&IstioMetric::RequestCount];
    assert_eq!(count.tags["response_flags"], TagChange::Remove);
    assert_eq!(count.tags["team"], TagChange::Upsert("request.host".into()));
    let duration = &m.overrides[&IstioMetric::RequestDuration];
    assert_eq!(duration.tags["team"], TagChange::Upsert("'mesh'".into()));
    assert!(!m.enabled(IstioMetric::TcpOpenedConnections));
    assert!(m.enabled(IstioMetric::TcpClosedConnections));
    assert!(!m.requests_off());
}

#[test]
fn of_two_at_one_level_the_oldest_applies_and_target_refs_apply_to_no_sidecar() {
    let mut older = telemetry(
        "shop",
        "b-older",
        "{tracing: [{randomSamplingPercentage: 1}]}",
    );
    older = older.replace(
        "namespace: shop}",
        "namespace: shop, creationTimestamp: '2020-01-01T00:00:00Z'}",
    );
    let newer = telemetry(
        "shop",
        "a-newer",
        "{tracing: [{randomSamplingPercentage: 2}]}",
    )
    .replace(
        "namespace: shop}",
        "namespace: shop, creationTimestamp: '2024-01-01T00:00:00Z'}",
    );
    let gateway = telemetry(
        "shop",
        "gw",
        "{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], tracing: [{randomSamplingPercentage: 3}]}",
    );
    let all = resources(&[newer, older, gateway].concat());
    let t = resolve(&all, &scope("shop", &[]), &MeshConfig::default());
    assert_eq!(t.applied, ["shop/b-older"]);
    assert_eq!(t.client.tracing.sampling, Some(1.0));
    let root_selector = resources(&telemetry(
        "istio-system",
        "sel",
        "{selector: {matchLabels: {app: cart}}, tracing: [{randomSamplingPercentage: 7}]}",
    ));
    assert!(
        resolve(
            &root_selector,
            &scope("shop", &[("app", "cart")]),
            &MeshConfig::default()
        )
        .applied
        .is_empty(),
        "a selector in the root namespace selects the root namespace's workloads only"
    );
}

#[test]
fn access_log_rules_are_per_provider_as_istio_merges_them() {
    let mesh = weft_api::mesh_config::load_mesh_config(
        "mesh.yaml",
        "extensionProviders:\n- {name: a, envoyFileAccessLog: {path: /tmp/a.log}}\n- {name: b, envoyFileAccessLog: {path: /tmp/b.log}}\n",
    )
    .config
    .expect("valid");
    let all = resources(&[
        telemetry(
            "istio-system",
            "mesh",
            "{accessLogging: [{providers: [{name: a}, {name: b}], filter: {expression: 'response.code >= 500'}}]}",
        ),
        telemetry(
            "shop",
            "ns",
            "{accessLogging: [{filter: {expression: 'response.code >= 400'}}, {match: {mode: SERVER}, providers: [{name: b}], disabled: true}]}",
        ),
    ]
    .concat());
    let t = resolve(&all, &scope("shop", &[]), &mesh);
    let rule = |f: &str| LogRule {
        filter: Some(f.into()),
    };
    assert_eq!(
        t.client.access_log.providers,
        [
            ("a".to_string(), rule("response.code >= 400")),
            ("b".to_string(), rule("response.code >= 400")),
        ]
        .into(),
        "the namespace's filter applies to the providers the root named"
    );
    assert_eq!(
        t.server.access_log.providers,
        BTreeMap::new(),
        "SERVER: the namespace names b alone, and disables it"
    );
    assert!(t.server.access_log.is_off());
    assert_eq!(t.client.access_log.legacy, None);
}
