//! Table tests of routing semantics, drawn from ISTIO-SEMANTICS §2, and property tests
//! of the decision function. Resources go through the real loader and translation.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use weft_model::route::{AbortStatus, Decision, MILLION, RetryOn, RouteAction};
use weft_model::{Mesh, ProxyScope, Request, build, route};

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
  - {address: 10.0.0.3, labels: {version: v2, canary: "true"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
  - {name: canary, labels: {version: v2, canary: "true"}}
"#;

fn mesh(rules: &str) -> Mesh {
    let loaded = weft_api::load_str("test.yaml", &format!("{SERVICES}---\n{rules}"));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let resources: Vec<_> = loaded.resources.into_iter().map(|r| r.resource).collect();
    build(&resources, &ProxyScope::default()).expect("translates")
}

fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
    )
}

/// The cluster (or answer) chosen for a request, taking the first weighted entry.
fn decide(mesh: &Mesh, path: &str, method: &str, headers: &[(&str, &str)]) -> String {
    let table = &mesh.http_routes[&8080];
    let req = Request {
        authority: "reviews:8080",
        path,
        method,
        scheme: "http",
        headers,
    };
    match route(table, &req) {
        Decision::Route { route, .. } => match &*route.action {
            RouteAction::Forward(f) => f.clusters.entries[0].cluster.to_string(),
            RouteAction::Redirect(r) => format!("redirect {}", r.status),
            RouteAction::DirectResponse(d) => format!("direct {}", d.status),
        },
        Decision::NoRoute | Decision::NoVirtualHost => "404 NR".into(),
    }
}

fn forward(mesh: &Mesh) -> &weft_model::route::Forward {
    let table = &mesh.http_routes[&8080];
    match &*table.virtual_hosts[0].routes[0].action {
        RouteAction::Forward(f) => f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

const V1: &str = "outbound|8080|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|8080|v2|reviews.default.svc.cluster.local";

#[test]
fn without_a_virtual_service_the_default_route_targets_the_whole_service() {
    let m = mesh("");
    assert_eq!(
        decide(&m, "/", "GET", &[]),
        "outbound|8080||reviews.default.svc.cluster.local"
    );
    let f = forward(&m);
    assert_eq!(f.retry.attempts, 2, "Istio's default retry policy applies");
    assert_eq!(f.timeout, None, "timeouts are off by default (§2.5)");
}

#[test]
fn first_match_wins_or_across_entries_and_within_one() {
    let m = mesh(&vs(r#"
  - match:
    - {uri: {prefix: /api}, method: {exact: POST}}
    - {headers: {x-user: {exact: jason}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v1}}]
"#));
    assert_eq!(
        decide(&m, "/api/x", "POST", &[]),
        V2,
        "both conditions of entry 0 hold"
    );
    assert_eq!(
        decide(&m, "/api/x", "GET", &[]),
        V1,
        "AND within an entry: method fails, next rule"
    );
    assert_eq!(
        decide(&m, "/other", "GET", &[("x-user", "jason")]),
        V2,
        "OR across entries"
    );
    assert_eq!(
        decide(&m, "/other", "GET", &[]),
        "404 NR",
        "no route matches"
    );
}

#[test]
fn rules_after_a_catch_all_are_not_emitted() {
    let m = mesh(&vs(r#"
  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /never}}]
    route: [{destination: {host: reviews, subset: v2}}]
"#));
    assert_eq!(m.http_routes[&8080].virtual_hosts[0].routes.len(), 1);
    assert_eq!(decide(&m, "/never", "GET", &[]), V1);
}

#[test]
fn weights_are_relative_and_zero_weights_are_dropped() {
    let m = mesh(&vs(
        "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 1}\n    - {destination: {host: reviews, subset: v2}, weight: 3}\n    - {destination: {host: reviews, subset: canary}, weight: 0}\n",
    ));
    let f = forward(&m);
    assert_eq!(f.clusters.total, 4);
    assert_eq!(f.clusters.entries.len(), 2);
    let single = mesh(&vs(
        "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 7}\n",
    ));
    assert_eq!(
        forward(&single).clusters.entries[0].weight,
        100,
        "a single destination gets everything"
    );
}

#[test]
fn percentages_follow_istio_defaults() {
    let m = mesh(&vs(r#"
  - route: [{destination: {host: reviews}}]
    fault:
      abort: {httpStatus: 503}
      delay: {fixedDelay: 1s, percent: 30}
    mirror: {host: reviews, subset: v2}
"#));
    let f = forward(&m);
    let fault = f.fault.as_ref().expect("fault");
    assert_eq!(
        fault.abort.as_ref().map(|a| (a.status, a.per_million)),
        Some((AbortStatus::Http(503), 0)),
        "no percentage: 0 %"
    );
    assert_eq!(
        fault.delay.as_ref().map(|d| (d.delay, d.per_million)),
        Some((Duration::from_secs(1), 300_000))
    );
    assert_eq!(
        f.mirrors[0].per_million, MILLION,
        "mirror without percentage: 100 %"
    );
    let off = mesh(&vs(
        "  - route: [{destination: {host: reviews}}]\n    mirror: {host: reviews}\n    mirrorPercentage: {value: 0}\n",
    ));
    assert!(
        forward(&off).mirrors.is_empty(),
        "explicit 0 turns mirroring off"
    );
    let grpc = mesh(&vs(
        "  - route: [{destination: {host: reviews}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.5}}}\n",
    ));
    let abort = forward(&grpc)
        .fault
        .as_ref()
        .and_then(|f| f.abort.clone())
        .expect("abort");
    assert_eq!(
        (abort.status, abort.per_million),
        (AbortStatus::Grpc(14), 5_000)
    );
}

#[test]
fn retry_policies() {
    let m = mesh(&vs(
        "  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,503\"}\n",
    ));
    let r = &forward(&m).retry;
    assert_eq!(r.attempts, 3);
    assert_eq!(r.per_try_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        r.retry_on,
        [RetryOn::GatewayError, RetryOn::RetriableStatusCodes]
    );
    assert_eq!(r.retriable_status_codes, [503]);
    let off = mesh(&vs(
        "  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 0}\n",
    ));
    assert_eq!(forward(&off).retry.attempts, 0);
    let default = mesh(&vs("  - route: [{destination: {host: reviews}}]\n"));
    let d = &forward(&default).retry;
    assert!(
        d.retriable_status_codes.is_empty(),
        "since Istio 1.24, 503 is not retried by default"
    );
    assert!(
        d.retry_on.contains(&RetryOn::ConnectFailure) && !d.retry_on.contains(&RetryOn::FiveXx)
    );
}

#[test]
fn match_details() {
    let m = mesh(&vs(r#"
  - match: [{headers: {X-Version: {exact: v2}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {regex: "/item/[0-9]+"}}]
    route: [{destination: {host: reviews, subset: canary}}]
  - match: [{uri: {exact: /CASE}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{queryParams: {debug: {}}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#));
    assert_eq!(
        decide(&m, "/", "GET", &[("x-version", "v2")]),
        V2,
        "header names are case-insensitive"
    );
    assert_eq!(
        decide(&m, "/", "GET", &[("x-version", "V2")]),
        V1,
        "header values are case-sensitive"
    );
    assert!(decide(&m, "/item/42", "GET", &[]).contains("|canary|"));
    assert_eq!(
        decide(&m, "/item/42/x", "GET", &[]),
        V1,
        "a regex must match the whole path"
    );
    assert_eq!(decide(&m, "/case", "GET", &[]), V2);
    assert_eq!(decide(&m, "/?debug", "GET", &[]), V2, "{{}} means present");
    assert_eq!(
        decide(&m, "/?debug=1", "GET", &[("x-skip", "1")]),
        V1,
        "withoutHeaders excludes"
    );
}

#[test]
fn subsets_select_within_the_service_and_their_policy_applies_only_to_them() {
    let m = mesh("");
    let endpoints = |name: &str| m.clusters[name].endpoints.len();
    assert_eq!(endpoints(V1), 1);
    assert_eq!(endpoints(V2), 2);
    assert_eq!(
        endpoints("outbound|8080|canary|reviews.default.svc.cluster.local"),
        1,
        "labels are AND-ed"
    );
    use weft_model::policy::LoadBalancer;
    assert_eq!(m.clusters[V2].policy.load_balancer, LoadBalancer::Random);
    assert_eq!(
        m.clusters["outbound|8080||reviews.default.svc.cluster.local"]
            .policy
            .load_balancer,
        LoadBalancer::RoundRobin
    );
}

#[test]
fn a_missing_subset_names_a_cluster_that_does_not_exist() {
    let m = mesh(&vs(
        "  - route: [{destination: {host: reviews, subset: v3}}]\n",
    ));
    let chosen = decide(&m, "/", "GET", &[]);
    assert_eq!(chosen, "outbound|8080|v3|reviews.default.svc.cluster.local");
    assert!(
        !m.clusters.contains_key(chosen.as_str()),
        "the proxy answers 503 NC"
    );
}

#[test]
fn authority_aliases_and_unknown_hosts() {
    let m = mesh("");
    let table = &m.http_routes[&8080];
    for authority in [
        "reviews",
        "reviews:8080",
        "reviews.default",
        "reviews.default.svc.cluster.local:8080",
        "REVIEWS",
    ] {
        assert!(table.virtual_host(authority).is_some(), "{authority}");
    }
    assert!(table.virtual_host("ratings").is_none());
}

#[test]
fn redirects_and_direct_responses() {
    let m = mesh(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {prefix: /admin}}]
    directResponse: {status: 503, body: {string: maintenance}}
"#,
    );
    assert_eq!(decide(&m, "/old", "GET", &[]), "redirect 308");
    assert_eq!(decide(&m, "/admin/x", "GET", &[]), "direct 503");
}

// ---- properties ----

/// A request drawn from a small vocabulary, so that matches both hold and fail.
fn request_parts() -> impl Strategy<Value = (String, String, Option<String>)> {
    (
        prop::sample::select(vec!["/", "/a", "/a/b", "/b", "/ab"]).prop_map(String::from),
        prop::sample::select(vec!["GET", "POST"]).prop_map(String::from),
        prop::option::of(prop::sample::select(vec!["x", "y"]).prop_map(String::from)),
    )
}

/// One match entry: optional prefix, optional method, optional header value.
fn entry() -> impl Strategy<
    Value = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ),
> {
    (
        prop::option::of(prop::sample::select(vec!["/a", "/b"])),
        prop::option::of(prop::sample::select(vec!["GET", "POST"])),
        prop::option::of(prop::sample::select(vec!["x", "y"])),
    )
}

fn entry_yaml(e: &(Option<&str>, Option<&str>, Option<&str>)) -> String {
    let mut parts = Vec::new();
    if let Some(p) = e.0 {
        parts.push(format!("uri: {{prefix: {p}}}"));
    }
    if let Some(m) = e.1 {
        parts.push(format!("method: {{exact: {m}}}"));
    }
    if let Some(h) = e.2 {
        parts.push(format!("headers: {{x-h: {{exact: \"{h}\"}}}}"));
    }
    format!("{{{}}}", parts.join(", "))
}

fn entry_holds(
    e: &(Option<&str>, Option<&str>, Option<&str>),
    path: &str,
    method: &str,
    header: Option<&str>,
) -> bool {
    e.0.is_none_or(|p| path.starts_with(p))
        && e.1.is_none_or(|m| m == method)
        && e.2.is_none_or(|h| header == Some(h))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The chosen rule is the first whose entries (OR) have one whose conditions (AND) all hold.
    #[test]
    fn decision_is_first_matching_rule(rules in prop::collection::vec(prop::collection::vec(entry(), 1..3), 1..5), parts in request_parts()) {
        let subsets = ["v1", "v2", "canary"];
        let mut http = String::new();
        for (i, entries) in rules.iter().enumerate() {
            let matches: Vec<String> = entries.iter().map(entry_yaml).collect();
            http.push_str(&format!("  - name: r{i}\n    match: [{}]\n    route: [{{destination: {{host: reviews, subset: {}}}}}]\n", matches.join(", "), subsets[i % 3]));
        }
        let loaded = weft_api::load_str("p.yaml", &format!("{SERVICES}---\n{}", vs(&http)));
        prop_assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let resources: Vec<_> = loaded.resources.into_iter().map(|r| r.resource).collect();
        let m = build(&resources, &ProxyScope::default()).expect("translates");
        let (path, method, header) = parts;
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("x-h", h.as_str())).collect();
        let req = Request { authority: "reviews", path: &path, method: &method, scheme: "http", headers: headers.as_slice() };
        let expected = rules.iter().position(|entries| entries.iter().any(|e| entry_holds(e, &path, &method, header.as_deref())));
        // Rules after the first catch-all entry are never emitted, which cannot change the outcome.
        let got = match route(&m.http_routes[&8080], &req) {
            Decision::Route { route, .. } => Some(route.name.clone()),
            _ => None,
        };
        prop_assert_eq!(got, expected.map(|i| format!("r{i}")));
    }

    /// Picking over uniform samples hits each cluster exactly in proportion to its weight.
    #[test]
    fn picks_are_proportional_to_weights(weights in prop::collection::vec(0u32..50, 2..5)) {
        prop_assume!(weights.iter().sum::<u32>() > 0);
        let names = ["v1", "v2", "canary", "v1", "v2"];
        let mut http = String::from("  - route:\n");
        for (i, w) in weights.iter().enumerate() {
            http.push_str(&format!("    - {{destination: {{host: reviews, subset: {}, port: {{number: 8080}}}}, weight: {w}}}\n", names[i]));
        }
        let m = mesh(&vs(&http));
        let f = forward(&m);
        prop_assert_eq!(f.clusters.total, weights.iter().sum::<u32>());
        let mut counts = vec![0u32; f.clusters.entries.len()];
        for s in 0..f.clusters.total {
            let picked = f.clusters.pick(s).expect("entry");
            let idx = f.clusters.entries.iter().position(|e| std::ptr::eq(e, picked)).expect("member");
            counts[idx] += 1;
        }
        let expected: Vec<u32> = f.clusters.entries.iter().map(|e| e.weight).collect();
        prop_assert_eq!(counts, expected);
        let positive: BTreeSet<usize> = weights.iter().enumerate().filter(|(_, w)| **w > 0).map(|(i, _)| i).collect();
        prop_assert_eq!(f.clusters.entries.len(), positive.len());
    }
}
