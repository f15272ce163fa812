//! One function per fuzz target: each takes any bytes, feeds them to one of weft's own
//! parsers or decoders the way weft's code does, and must return without panicking
//! whatever the bytes are. `fuzz/fuzz_targets/` wraps them for libFuzzer (`cargo fuzz`,
//! nightly); `tests/replay.rs` runs every input of `fuzz/corpus/` and `fuzz/regressions/`
//! through them on stable, so CI keeps every input found interesting or crashing.

use weft_model::ProxyScope;
use weft_model::authz::path::{Normalization, normalize};

/// A fuzz target: its name (its corpus directory) and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("yaml_resources", yaml_resources),
    ("mesh_config", mesh_config),
    ("route_match", route_match),
    ("path_normalization", path_normalization),
    ("protocol_detection", protocol_detection),
    ("client_hello", client_hello),
    ("xds_update", xds_update),
    ("otlp_traces", otlp_traces),
    ("zipkin_spans", zipkin_spans),
    ("jaeger_query", jaeger_query),
    ("authority", authority),
    ("kube_patch", kube_patch),
    ("jwt", jwt),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Istio YAML (or JSON) through loading and validation, then translation into the model
/// for a sidecar and a gateway, as a proxy reads its files.
pub fn yaml_resources(data: &[u8]) {
    let loaded = weft_api::load_str("fuzz.yaml", &text(data));
    let resources: Vec<_> = loaded.resources.into_iter().map(|r| r.resource).collect();
    for scope in [ProxyScope::default(), gateway_scope()] {
        let _ = weft_model::build(&resources, &scope);
    }
}

fn gateway_scope() -> ProxyScope {
    ProxyScope {
        namespace: "istio-system".into(),
        labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
        gateway: true,
    }
}

/// Istio's mesh config YAML (or its ConfigMap).
pub fn mesh_config(data: &[u8]) {
    let _ = weft_api::mesh_config::load_mesh_config("mesh.yaml", &text(data));
}

const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews, "*.example.com"]
  http:
  - match:
    - uri: {regex: "/api/v[0-9]+/.*"}
      headers: {x-user: {exact: alice}, x-team: {prefix: dev}}
      queryParams: {debug: {exact: "1"}}
    - uri: {prefix: /static}
      method: {exact: GET}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{authority: {regex: "shop\\..*"}, ignoreUriCase: true, uri: {exact: /Cart}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

/// A request made of the bytes (authority, path, method and headers, split on newlines)
/// routed through a fixed route table with every kind of match.
pub fn route_match(data: &[u8]) {
    thread_local! {
        static TABLES: Vec<weft_model::RouteTable> = {
            let loaded = weft_api::load_str("routes.yaml", ROUTES);
            let resources: Vec<_> = loaded.resources.into_iter().map(|r| r.resource).collect();
            weft_model::build(&resources, &ProxyScope::default())
                .map(|m| m.http_routes.into_values().collect())
                .unwrap_or_default()
        };
    }
    let text = text(data);
    let mut lines = text.split('\n');
    let authority = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let method = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(':')).collect();
    let req = weft_model::Request {
        authority,
        path,
        method,
        scheme: "http",
        headers: headers.as_slice(),
    };
    TABLES.with(|tables| {
        for table in tables {
            let _ = weft_model::route(table, &req);
        }
    });
}

/// A request path through every normalization; a normalized path normalizes to itself.
pub fn path_normalization(data: &[u8]) {
    let path = text(data);
    for how in [
        Normalization::None,
        Normalization::Base,
        Normalization::MergeSlashes,
        Normalization::DecodeAndMergeSlashes,
    ] {
        if let Ok(once) = normalize(&path, how) {
            let twice = normalize(&once, how);
            assert_eq!(
                twice.as_deref(),
                Ok(once.as_str()),
                "{how:?} is idempotent on {path:?}"
            );
        }
    }
}

/// A connection's first bytes: protocol detection and the request-smuggling check.
pub fn protocol_detection(data: &[u8]) {
    let _ = weft_proxy::detect::classify(data);
    let _ = weft_proxy::detect::head_refusal(data);
}

/// A TLS ClientHello: whether it is complete, its SNI and its ALPN.
pub fn client_hello(data: &[u8]) {
    let _ = weft_proxy::sni::client_hello(data);
    let _ = weft_proxy::sni::server_name(data);
    let _ = weft_proxy::sni::alpn(data);
}

/// A pushed update (protobuf) as a proxy checks it before applying it.
pub fn xds_update(data: &[u8]) {
    let _ = weft_proxy::control_source::check_update(data);
}

/// An OTLP trace export (protobuf) as the trace store takes it.
pub fn otlp_traces(data: &[u8]) {
    if let Ok(request) =
        <weft_proto::otlp::ExportTraceServiceRequest as prost::Message>::decode(data)
    {
        let _ = weft_control::traces::from_otlp(request);
    }
}

/// Zipkin JSON v2 spans as the trace store takes them.
pub fn zipkin_spans(data: &[u8]) {
    let _ = weft_control::traces::zipkin::from_zipkin(data);
}

/// A Jaeger query string, as the query API reads it.
pub fn jaeger_query(data: &[u8]) {
    let text = text(data);
    for (_, value) in weft_control::query::params(Some(&text)) {
        let _ = weft_control::query::decode(&value);
    }
}

/// An authority (`Host`, `:authority`, a CONNECT target): its host and port.
pub fn authority(data: &[u8]) {
    let text = text(data);
    let _ = weft_model::host::authority_host(&text);
    let _ = weft_proxy::http::headers::port_of(&text);
}

/// A Kubernetes API request body: a JSON merge patch applied to a stored VirtualService,
/// a strategic merge patch applied to a stored Deployment, each read back as a resource.
pub fn kube_patch(data: &[u8]) {
    let Ok(patch) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut service = serde_json::json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}
    });
    weft_control::api::apply::merge_patch(&mut service, &patch);
    let mut deployment = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reviews", "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {"selector": {"matchLabels": {"app": "reviews"}}, "template": {
            "metadata": {"labels": {"app": "reviews"}},
            "spec": {"containers": [{"name": "app", "image": "reviews:1", "ports": [{"containerPort": 9080}]}]}}}
    });
    let _ =
        weft_control::api::strategic::apply(weft_api::Kind::Deployment, &mut deployment, &patch);
    for object in [service, deployment] {
        let _ = weft_api::load_str("patched.json", &object.to_string());
    }
}

const JWT_RULES: &str = r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: users, namespace: default}
spec:
  jwtRules:
  - issuer: https://issuer.example
    audiences: [reviews]
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"12tOitBe8blgOti_Vp3tuMp4cJxVoGAa7_YYD9ffh6w","y":"v7nGm0XD9tQbfsUO0DkGWan9DqQhOnWMrwTeYQLhh-I"}]}'
    outputClaimToHeaders: [{header: x-user, claim: sub}]
"#;

struct Bearer(String);

impl weft_model::authn::TokenSource for Bearer {
    fn header(&self, name: &str) -> Option<String> {
        (name == "authorization").then(|| format!("Bearer {}", self.0))
    }

    fn query(&self) -> Option<&str> {
        None
    }
}

/// Any bytes as a bearer token: refused with a reason, never a panic.
pub fn jwt(data: &[u8]) {
    thread_local! {
        static AUTHN: weft_model::authn::Authn = {
            let loaded = weft_api::load_str("jwt.yaml", JWT_RULES);
            let resources: Vec<_> = loaded.resources.into_iter().map(|r| r.resource).collect();
            weft_model::authn::build(&resources, &ProxyScope::default())
        };
    }
    let token = Bearer(text(data).into_owned());
    AUTHN.with(|authn| {
        let _ = authn.authenticate(&token, &|_| None, 1_700_000_000);
    });
}
