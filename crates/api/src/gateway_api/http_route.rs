//! `gateway.networking.k8s.io` `HTTPRoute` (v1, v1beta1): HTTP routing rules attached to
//! parents. A parent is a Service (the mesh, GAMMA: the Service's traffic is routed) or a
//! Gateway. Validation enforces the CRD's OpenAPI and CEL rules as the API server does;
//! what weft does not serve yet is refused by name, never ignored.

use serde::{Deserialize, Serialize};

use super::{check_hostname, check_len, check_max};
use crate::validate::{Validate, Validator};

/// HTTPRoute spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// What the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names matched against the request's Host (Gateway parents only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules; none means one rule matching every request with no backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A parent: a Gateway (the default kind) or a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group; absent means `gateway.networking.k8s.io`, `""` the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent means `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace; absent means the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// A Gateway listener name, or a Service port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A port of the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl ParentReference {
    /// The group, defaulted.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }

    /// The kind, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// True for a Service parent (group `""` or `core`, kind `Service`): a mesh route.
    pub fn is_service(&self) -> bool {
        matches!(self.group(), "" | "core") && self.kind() == "Service"
    }
}

pub use super::GROUP;

/// One rule: matches, filters, backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The rule's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OR-ed conditions; none means every path (PathPrefix `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to matched requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retries (experimental channel, GEP-1731).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRouteRetry>,
    /// Session persistence (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<serde_json::Value>,
}

/// One match: every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path condition; absent means PathPrefix `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpHeaderMatch>,
    /// Method condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A GRPCRoute match turned into HTTPRoute's shape: the characters of the service
    /// and of the method it names, which order it among the others as GRPCRoute's
    /// precedence says (service first, then method). Not part of the API: never read
    /// from YAML nor written.
    #[serde(skip)]
    #[schemars(skip)]
    pub grpc_precedence: Option<(usize, usize)>,
}

/// A path condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The path; default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl HttpPathMatch {
    /// The type, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("PathPrefix")
    }

    /// The value, defaulted.
    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("/")
    }
}

/// A header or query parameter condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Header name (case-insensitive) or parameter name (exact).
    #[serde(default)]
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

impl HttpHeaderMatch {
    /// True for `RegularExpression`.
    pub fn is_regex(&self) -> bool {
        self.kind.as_deref() == Some("RegularExpression")
    }
}

/// A filter: its type names the one field set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// The filter type.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// `CORS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<HttpCorsFilter>,
    /// `ExtensionRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<serde_json::Value>,
}

/// Retries of a rule (GEP-1731).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// Status codes retried (400 to 599).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// Retries after the first try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The base backoff between tries (a GEP-2257 duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// The CORS filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCorsFilter {
    /// Origins allowed: `*`, or `scheme://host[:port]` with an optional `*.` host prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Methods allowed (or `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed (or `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed (or `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

/// Header operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Headers set (replacing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Headers added (appended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// A redirect answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// The port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// A rewrite before forwarding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// The Host sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// A copy of requests sent to another backend, its answer ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where copies go.
    #[serde(default)]
    pub backend_ref: HttpBackendRef,
    /// Share of requests mirrored, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Share of requests mirrored, as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

impl RequestMirror {
    /// The share mirrored, per million (all when neither `percent` nor `fraction` is set).
    pub fn per_million(&self) -> u32 {
        match (&self.percent, &self.fraction) {
            (Some(p), _) => p.min(&100) * 10_000,
            (None, Some(f)) => {
                let d = u64::from(f.denominator.unwrap_or(100).max(1));
                u32::try_from(
                    u64::from(f.numerator.min(f.denominator.unwrap_or(100))) * 1_000_000 / d,
                )
                .unwrap_or(1_000_000)
            }
            (None, None) => 1_000_000,
        }
    }
}

/// `numerator / denominator` (default 100).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fraction {
    /// Numerator.
    #[serde(default)]
    pub numerator: u32,
    /// Denominator, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<u32>,
}

/// A path replacement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The new path (`ReplaceFullPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// What replaces the matched prefix (`ReplacePrefixMatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A weighted backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// API group; absent means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent means `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace; absent means the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Weight; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Filters for this backend only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// True for a Service backend (group `""`/`core`, kind `Service`).
    pub fn is_service(&self) -> bool {
        matches!(self.group.as_deref().unwrap_or(""), "" | "core")
            && self.kind.as_deref().unwrap_or("Service") == "Service"
    }

    /// The weight, defaulted.
    pub fn weight(&self) -> u32 {
        self.weight
            .unwrap_or(1)
            .clamp(0, i64::from(u32::MAX))
            .try_into()
            .unwrap_or(0)
    }
}

/// Timeouts of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole request, `0s` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Each try to the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// A Gateway API duration (GEP-2257: `1h`, `30s`, `500ms`, `1m30s`; at most four parts).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration like 10s, 500ms or 1m30s (GEP-2257)");
    let mut rest = text;
    let mut total = std::time::Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(n), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok(total)
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The CEL rule on Exact and PathPrefix values.
fn check_path_value(v: &mut Validator, value: &str) {
    if !value.starts_with('/') {
        v.error_at("value", "must be an absolute path (start with /)");
        return;
    }
    let bad = ["//", "/./", "/../", "%2f", "%2F", "#"];
    if bad.iter().any(|b| value.contains(b)) || value.ends_with("/..") || value.ends_with("/.") {
        v.error_at(
            "value",
            "must not contain '//', '/./', '/../', '%2f', '%2F' or '#', nor end with '/..' or '/.'",
        );
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-/._~!$&'()*+,;=:@%".contains(c);
    if !value.chars().all(allowed) {
        v.error_at(
            "value",
            format!("Invalid value: {value:?}: not a valid path"),
        );
    }
}

fn check_header_name(v: &mut Validator, name: &str) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 256 || !name.chars().all(token) {
        v.error_at(
            "name",
            format!("Invalid value: {name:?}: must be an HTTP header name"),
        );
    }
}

impl Validate for HttpRoute {
    fn validate(&self, v: &mut Validator) {
        check_max(v, "parentRefs", &self.parent_refs, 32);
        v.each("parentRefs", &self.parent_refs, |v, p| p.validate(v));
        check_parent_sections(v, &self.parent_refs);
        check_max(v, "hostnames", &self.hostnames, 16);
        v.each("hostnames", &self.hostnames, |v, h| check_hostname(v, h));
        check_max(v, "rules", &self.rules, 16);
        let matches: usize = self.rules.iter().map(|r| r.matches.len()).sum();
        if matches > 128 {
            v.error_at(
                "rules",
                format!("{matches} matches across rules: at most 128 are allowed"),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(name) = &rule.name {
                if !names.insert(name) {
                    v.field("rules", |v| {
                        v.index(i, |v| {
                            v.error_at(
                                "name",
                                format!("Duplicate value: {name:?}: rule names must be unique"),
                            )
                        })
                    });
                }
            }
        }
        v.each("rules", &self.rules, |v, r| r.validate(v));
    }
}

/// Two references to one parent need distinct `sectionName`s (the routes' CEL rule).
pub(crate) fn check_parent_sections(v: &mut Validator, parents: &[ParentReference]) {
    {
        for (i, a) in parents.iter().enumerate() {
            for b in &parents[..i] {
                let same = a.group() == b.group()
                    && a.kind() == b.kind()
                    && a.namespace == b.namespace
                    && a.name == b.name;
                if !same {
                    continue;
                }
                let message = match (&a.section_name, &b.section_name) {
                    (Some(x), Some(y)) if x == y => {
                        "sectionName must be unique when parentRefs includes 2 or more references to the same parent"
                    }
                    (Some(_), Some(_)) => continue,
                    _ => {
                        "sectionName must be specified when parentRefs includes 2 or more references to the same parent"
                    }
                };
                v.field("parentRefs", |v| v.index(i, |v| v.error(message)));
            }
        }
    }
}

impl Validate for ParentReference {
    fn validate(&self, v: &mut Validator) {
        check_len(v, "name", &self.name, 1, 253);
        if let Some(kind) = &self.kind {
            check_len(v, "kind", kind, 1, 63);
        }
        if let Some(ns) = &self.namespace {
            check_len(v, "namespace", ns, 1, 63);
        }
        if let Some(port) = self.port {
            if !(1..=65535).contains(&port) {
                v.error_at("port", format!("Invalid value: {port}: must be 1 to 65535"));
            }
        }
        let known = self.is_service() || (self.group() == GROUP && self.kind() == "Gateway");
        if !known {
            v.error_at(
                "kind",
                format!(
                    "weft attaches routes to a Service (group \"\") or a Gateway ({GROUP}), not {} of group {:?}",
                    self.kind(),
                    self.group()
                ),
            );
        }
    }
}

impl Validate for HttpRouteRule {
    fn validate(&self, v: &mut Validator) {
        if let Some(name) = &self.name {
            check_len(v, "name", name, 1, 253);
        }
        check_max(v, "matches", &self.matches, 64);
        v.each("matches", &self.matches, |v, m| m.validate(v));
        check_max(v, "filters", &self.filters, 16);
        check_filters(v, "filters", &self.filters);
        let redirect = self.filters.iter().any(|f| f.kind == "RequestRedirect");
        if redirect && !self.backend_refs.is_empty() {
            v.error("RequestRedirect filter must not be used together with backendRefs");
        }
        let prefix_rewrite = |filters: &[HttpRouteFilter]| {
            filters.iter().any(|f| {
                let path = f
                    .request_redirect
                    .as_ref()
                    .and_then(|r| r.path.as_ref())
                    .or(f.url_rewrite.as_ref().and_then(|r| r.path.as_ref()));
                path.is_some_and(|p| p.kind == "ReplacePrefixMatch")
            })
        };
        let one_prefix = self.matches.len() == 1
            && self.matches[0]
                .path
                .as_ref()
                .is_none_or(|p| p.kind() == "PathPrefix");
        if (prefix_rewrite(&self.filters)
            || self.backend_refs.iter().any(|b| prefix_rewrite(&b.filters)))
            && !one_prefix
        {
            v.error("When using RequestRedirect or URLRewrite filter with path.type ReplacePrefixMatch, exactly one PathPrefix match must be specified");
        }
        check_max(v, "backendRefs", &self.backend_refs, 16);
        v.each("backendRefs", &self.backend_refs, |v, b| b.validate(v));
        if let Some(t) = &self.timeouts {
            v.field("timeouts", |v| t.validate(v));
        }
        if let Some(r) = &self.retry {
            v.field("retry", |v| {
                v.each("codes", &r.codes, |v, c| {
                    if !(400..=599).contains(c) {
                        v.error(format!("Invalid value: {c}: must be 400 to 599"));
                    }
                });
                if let Some(Err(e)) = r.backoff.as_deref().map(parse_duration) {
                    v.error_at("backoff", e);
                }
            });
        }
        if self.session_persistence.is_some() {
            v.error_at(
                "sessionPersistence",
                "sessionPersistence is not supported by weft (an experimental-channel field)",
            );
        }
    }
}

fn check_filters(v: &mut Validator, name: &str, filters: &[HttpRouteFilter]) {
    let count = |k: &str| filters.iter().filter(|f| f.kind == k).count();
    if count("RequestRedirect") > 0 && count("URLRewrite") > 0 {
        v.error_at(
            name,
            "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
        );
    }
    for k in [
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "CORS",
    ] {
        if count(k) > 1 {
            v.error_at(name, format!("{k} filter cannot be repeated"));
        }
    }
    v.each(name, filters, |v, f| f.validate(v));
}

impl Validate for HttpRouteMatch {
    fn validate(&self, v: &mut Validator) {
        if let Some(p) = &self.path {
            v.field("path", |v| {
                match p.kind() {
                    "Exact" | "PathPrefix" => check_path_value(v, p.value()),
                    "RegularExpression" => {
                        if regex::Regex::new(p.value()).is_err() {
                            v.error_at("value", format!("Invalid value: {:?}: not a regular expression (RE2)", p.value()));
                        }
                    }
                    other => v.error_at("type", format!("Unsupported value: {other:?}: supported values: \"Exact\", \"PathPrefix\", \"RegularExpression\"")),
                }
                if p.value().len() > 1024 {
                    v.error_at("value", "must be at most 1024 characters");
                }
            });
        }
        for (field, list, max_value) in [
            ("headers", &self.headers, 4096),
            ("queryParams", &self.query_params, 1024),
        ] {
            check_max(v, field, list, 16);
            v.each(field, list, |v, h| {
                if field == "headers" {
                    check_header_name(v, &h.name);
                } else {
                    check_len(v, "name", &h.name, 1, 256);
                }
                check_len(v, "value", &h.value, 1, max_value);
                match h.kind.as_deref().unwrap_or("Exact") {
                    "Exact" => {}
                    "RegularExpression" => {
                        if regex::Regex::new(&h.value).is_err() {
                            v.error_at("value", format!("Invalid value: {:?}: not a regular expression (RE2)", h.value));
                        }
                    }
                    other => v.error_at("type", format!("Unsupported value: {other:?}: supported values: \"Exact\", \"RegularExpression\"")),
                }
            });
        }
        if let Some(m) = &self.method {
            if !METHODS.contains(&m.as_str()) {
                v.error_at(
                    "method",
                    format!(
                        "Unsupported value: {m:?}: supported values: {}",
                        METHODS.join(", ")
                    ),
                );
            }
        }
    }
}

impl Validate for HttpRouteFilter {
    fn validate(&self, v: &mut Validator) {
        let set = [
            (
                "RequestHeaderModifier",
                "requestHeaderModifier",
                self.request_header_modifier.is_some(),
            ),
            (
                "ResponseHeaderModifier",
                "responseHeaderModifier",
                self.response_header_modifier.is_some(),
            ),
            (
                "RequestRedirect",
                "requestRedirect",
                self.request_redirect.is_some(),
            ),
            ("URLRewrite", "urlRewrite", self.url_rewrite.is_some()),
            (
                "RequestMirror",
                "requestMirror",
                self.request_mirror.is_some(),
            ),
            ("CORS", "cors", self.cors.is_some()),
            ("ExtensionRef", "extensionRef", self.extension_ref.is_some()),
        ];
        if !set.iter().any(|(k, _, _)| *k == self.kind) {
            v.error_at(
                "type",
                format!(
                    "Unsupported value: {:?}: supported values: {}",
                    self.kind,
                    set.map(|s| s.0).join(", ")
                ),
            );
            return;
        }
        for (kind, field, present) in set {
            if present && kind != self.kind {
                v.error(format!(
                    "filter.{field} must be nil if the filter.type is not {kind}"
                ));
            }
            if !present && kind == self.kind {
                v.error(format!(
                    "filter.{field} must be specified for {kind} filter.type"
                ));
            }
        }
        if self.kind == "ExtensionRef" {
            v.error_at(
                "type",
                "ExtensionRef filters are not supported by weft (it has no extension kinds)",
            );
        }
        if let Some(c) = &self.cors {
            v.field("cors", |v| {
                check_max(v, "allowOrigins", &c.allow_origins, 64);
                v.each("allowOrigins", &c.allow_origins, |v, o| {
                    let ok = o == "*"
                        || o.split_once("://").is_some_and(|(scheme, rest)| {
                            !scheme.is_empty()
                                && scheme.chars().all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
                                && !rest.is_empty()
                                && !rest.contains('/')
                        });
                    if !ok {
                        v.error(format!("Invalid value: {o:?}: must be * or scheme://host[:port] (host may start with *.)"));
                    }
                });
                for (field, list) in [
                    ("allowMethods", &c.allow_methods),
                    ("allowHeaders", &c.allow_headers),
                    ("exposeHeaders", &c.expose_headers),
                ] {
                    check_max(v, field, list, 64);
                    if list.len() > 1 && list.iter().any(|x| x == "*") {
                        v.error_at(field, "* must be the only entry when it is used");
                    }
                }
                v.each("allowMethods", &c.allow_methods, |v, m| {
                    if m != "*" && !METHODS.contains(&m.as_str()) {
                        v.error(format!("Unsupported value: {m:?}: supported values: *, {}", METHODS.join(", ")));
                    }
                });
                if c.max_age == Some(0) {
                    v.error_at("maxAge", "Invalid value: 0: must be at least 1");
                }
            });
        }
        for (field, m) in [
            ("requestHeaderModifier", &self.request_header_modifier),
            ("responseHeaderModifier", &self.response_header_modifier),
        ] {
            if let Some(m) = m {
                v.field(field, |v| {
                    for (list, items) in [("set", &m.set), ("add", &m.add)] {
                        check_max(v, list, items, 16);
                        v.each(list, items, |v, h| {
                            check_header_name(v, &h.name);
                            check_len(v, "value", &h.value, 1, 4096);
                        });
                    }
                    check_max(v, "remove", &m.remove, 16);
                });
            }
        }
        if let Some(r) = &self.request_redirect {
            v.field("requestRedirect", |v| {
                if let Some(s) = &r.scheme {
                    if s != "http" && s != "https" {
                        v.error_at("scheme", format!("Unsupported value: {s:?}: supported values: \"http\", \"https\""));
                    }
                }
                if let Some(code) = r.status_code {
                    if ![301, 302, 303, 307, 308].contains(&code) {
                        v.error_at("statusCode", format!("Unsupported value: {code}: supported values: 301, 302, 303, 307, 308"));
                    }
                }
                if let Some(port) = r.port {
                    if !(1..=65535).contains(&port) {
                        v.error_at("port", format!("Invalid value: {port}: must be 1 to 65535"));
                    }
                }
                if let Some(p) = &r.path {
                    v.field("path", |v| p.validate(v));
                }
            });
        }
        if let Some(m) = &self.request_mirror {
            v.field("requestMirror", |v| {
                if m.percent.is_some() && m.fraction.is_some() {
                    v.error("Only one of percent or fraction may be specified in HTTPRequestMirrorFilter");
                }
                if let Some(p) = m.percent {
                    if p > 100 {
                        v.error_at("percent", format!("Invalid value: {p}: must be 0 to 100"));
                    }
                }
                if let Some(f) = &m.fraction {
                    let d = f.denominator.unwrap_or(100);
                    if d < 1 {
                        v.error_at("fraction.denominator", "must be at least 1");
                    }
                    if f.numerator > d {
                        v.error_at("fraction", "numerator must be less than or equal to denominator");
                    }
                }
                v.field("backendRef", |v| {
                    check_len(v, "name", &m.backend_ref.name, 1, 253);
                    if m.backend_ref.is_service() && m.backend_ref.port.is_none() {
                        v.error("Must have port for Service reference");
                    }
                });
            });
        }
        if let Some(r) = &self.url_rewrite {
            v.field("urlRewrite", |v| {
                if let Some(p) = &r.path {
                    v.field("path", |v| p.validate(v));
                }
            });
        }
    }
}

impl Validate for PathModifier {
    fn validate(&self, v: &mut Validator) {
        match self.kind.as_str() {
            "ReplaceFullPath" => {
                if self.replace_full_path.is_none() {
                    v.error("replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
                }
                if self.replace_prefix_match.is_some() {
                    v.error("type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
                }
            }
            "ReplacePrefixMatch" => {
                if self.replace_prefix_match.is_none() {
                    v.error("replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'");
                }
                if self.replace_full_path.is_some() {
                    v.error("type must be 'ReplaceFullPath' when replaceFullPath is set");
                }
            }
            other => v.error_at("type", format!("Unsupported value: {other:?}: supported values: \"ReplaceFullPath\", \"ReplacePrefixMatch\"")),
        }
        for p in [&self.replace_full_path, &self.replace_prefix_match]
            .into_iter()
            .flatten()
        {
            if p.len() > 1024 {
                v.error("a path must be at most 1024 characters");
            }
        }
    }
}

impl Validate for HttpBackendRef {
    fn validate(&self, v: &mut Validator) {
        check_len(v, "name", &self.name, 1, 253);
        if let Some(w) = self.weight {
            if !(0..=1_000_000).contains(&w) {
                v.error_at(
                    "weight",
                    format!("Invalid value: {w}: must be 0 to 1000000"),
                );
            }
        }
        if self.is_service() && self.port.is_none() {
            v.error("Must have port for Service reference");
        }
        if let Some(port) = self.port {
            if !(1..=65535).contains(&port) {
                v.error_at("port", format!("Invalid value: {port}: must be 1 to 65535"));
            }
        }
        check_max(v, "filters", &self.filters, 16);
        check_filters(v, "filters", &self.filters);
        // Istio applies a backend's header modifiers to the requests sent to that backend
        // and to their responses; the other filters belong on the rule.
        v.each("filters", &self.filters, |v, f| {
            if !matches!(
                f.kind.as_str(),
                "RequestHeaderModifier" | "ResponseHeaderModifier"
            ) {
                v.error_at(
                    "type",
                    format!(
                        "{} on a backendRef is not supported by weft (RequestHeaderModifier and ResponseHeaderModifier are); put it on the rule",
                        f.kind
                    ),
                );
            }
        });
    }
}

impl Validate for HttpRouteTimeouts {
    fn validate(&self, v: &mut Validator) {
        let request = self.request.as_ref().map(|t| (t, parse_duration(t)));
        let backend = self
            .backend_request
            .as_ref()
            .map(|t| (t, parse_duration(t)));
        if let Some((_, Err(e))) = &request {
            v.error_at("request", e.clone());
        }
        if let Some((_, Err(e))) = &backend {
            v.error_at("backendRequest", e.clone());
        }
        if let (Some((_, Ok(r))), Some((_, Ok(b)))) = (&request, &backend) {
            if !r.is_zero() && b > r {
                v.error("backendRequest timeout cannot be longer than request timeout");
            }
        }
    }
}

#[cfg(test)]
mod tests;
