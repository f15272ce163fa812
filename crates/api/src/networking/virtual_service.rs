//! `VirtualService`: how requests to a host are routed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{Destination, Percent, StringMatch};
use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// The gateway name that means "every sidecar in the mesh".
pub const MESH_GATEWAY: &str = "mesh";

/// Retry conditions Envoy understands in `retryOn` (besides numeric status codes).
pub const RETRY_ON_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Largest `directResponse` body accepted.
pub const MAX_DIRECT_RESPONSE_BODY: usize = 1 << 20;

/// VirtualService spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    /// Hosts the rules apply to (short names resolve in the resource's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways and/or `mesh` the rules bind to; absent means `[mesh]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Ordered HTTP rules; the first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Ordered rules for unterminated TLS, matched by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Ordered rules for opaque TCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces that can see this VirtualService.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// One HTTP rule: matches and what to do with matching requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Rule name, used in logs and stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, OR-ed; none means "every request".
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer directly instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand the rest of routing to another VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Rewrite the path or authority before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Overall timeout; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy; absent means Istio's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// A destination to mirror requests to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored to `mirror`; absent means 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer form of `mirrorPercentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Several mirror destinations (not together with `mirror`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// CORS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// The conditions of one match entry, AND-ed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Match name, prefixed to the rule name in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Method match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Authority (Host) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Header matches; `{}` means present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Client workload labels (evaluated when configuring each proxy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Query parameter matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive `exact`/`prefix` URI matching.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_uri_case: bool,
    /// Headers that must not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Client namespace (evaluated when configuring each proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Prefix of per-route statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// A weighted destination of an HTTP rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send the request.
    #[serde(default)]
    pub destination: Destination,
    /// Relative weight; 0 (or absent) drops the destination when there are several.
    #[serde(default)]
    pub weight: i32,
    /// Header manipulation for this destination only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A weighted destination of a TCP or TLS rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where to send the connection.
    #[serde(default)]
    pub destination: Destination,
    /// Relative weight.
    #[serde(default)]
    pub weight: i32,
}

/// Request and response header operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Operations on the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Operations on the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Set, add and remove headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A redirect answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRedirect {
    /// Replace the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replace the authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Replace the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Derive the port instead of setting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replace the scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code; absent means 301.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
}

/// How a redirect derives its port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// A direct answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// Status code.
    #[serde(default)]
    pub status: u32,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// A direct-response body: text or base64 bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBody {
    /// Text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// Base64-encoded body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Delegation to another VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// Delegate name.
    #[serde(default)]
    pub name: String,
    /// Delegate namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Path and authority rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replace the matched prefix (or the whole path for exact/regex matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replace the authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Regex-based path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex and its replacement (`\1` style groups).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(default, rename = "match")]
    pub pattern: String,
    /// Replacement.
    #[serde(default)]
    pub rewrite: String,
}

/// Retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Retries after the first try; 0 disables retries.
    #[serde(default)]
    pub attempts: i32,
    /// Timeout of each try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated retry conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Retry in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Prefer other endpoints on retry (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff interval (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// CORS policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated exact origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers exposed to the browser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a preflight result may be cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Allow credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflights that match no origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// Handling of unmatched CORS preflight requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Same as FORWARD.
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Forward them upstream.
    Forward,
    /// Answer them without CORS headers.
    Ignore,
}

/// Fault injection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Abort requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// Delay fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// Fixed delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported by Istio either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; absent means 0 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer form of `percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// Abort fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    /// HTTP status to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted; absent means 0 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer percent, from releases before `percentage` (the seed scenario's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// One mirror destination.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Where copies go.
    #[serde(default)]
    pub destination: Destination,
    /// Share mirrored; absent means 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A TLS rule (SNI routing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Conditions, OR-ed.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions of a TLS rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI names (required; must fall within the VirtualService hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Client workload labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Client namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// A TCP rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Conditions, OR-ed.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions of a TCP rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Deprecated source subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
    /// Client workload labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Client namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

impl VirtualService {
    /// True when bound to sidecars (`gateways` absent or containing `mesh`).
    pub fn binds_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }
}

impl HttpMatchRequest {
    /// True when this entry matches every request (no conditions, or only `uri: {prefix: /}`).
    pub fn is_catch_all(&self) -> bool {
        let only_root_prefix = match &self.uri {
            None => true,
            Some(m) => m.prefix.as_deref() == Some("/") && m.exact.is_none() && m.regex.is_none(),
        };
        only_root_prefix
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.port.is_none()
            && self.source_labels.is_empty()
            && self.gateways.is_empty()
            && self.query_params.is_empty()
            && self.without_headers.is_empty()
            && self.source_namespace.is_none()
    }
}

impl HttpRoute {
    /// True when the rule matches every request.
    pub fn is_catch_all(&self) -> bool {
        self.matches.is_empty() || self.matches.iter().any(HttpMatchRequest::is_catch_all)
    }
}

impl Validate for VirtualService {
    fn validate(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at(
                "hosts",
                "at least one host is required (a VirtualService without hosts is a delegate, which weft does not support yet)",
            );
        }
        let mut seen = BTreeSet::new();
        v.each("hosts", &self.hosts, |v, host| {
            checks::wildcard_host(v, host);
            if host == "*" && self.binds_to_mesh() {
                v.error("host \"*\" is only allowed for VirtualServices bound to gateways, not to the mesh");
            }
            if !seen.insert(host.as_str()) {
                v.error(format!("duplicate host {host:?}"));
            }
        });
        v.each("gateways", &self.gateways, |v, gw| gateway_name(v, gw));
        checks::export_to(v, &self.export_to);
        if self.http.is_empty() && self.tls.is_empty() && self.tcp.is_empty() {
            v.error("at least one of http, tls or tcp routes is required");
        }
        let last = self.http.len().saturating_sub(1);
        v.each("http", &self.http, |v, route| {
            route.validate(v);
            if route.matches.is_empty() && !std::ptr::eq(route, &self.http[last]) {
                v.warn("only the last rule can have no match; the rules after it are unreachable");
            }
        });
        v.each("tls", &self.tls, |v, route| {
            if route.matches.is_empty() {
                v.error_at("match", "TLS routes need at least one match with sniHosts");
            }
            v.each("match", &route.matches, |v, m| {
                if m.sni_hosts.is_empty() {
                    v.error_at("sniHosts", "at least one SNI host is required");
                }
                v.each("sniHosts", &m.sni_hosts, |v, sni| {
                    checks::wildcard_host(v, sni);
                    if !self.hosts.iter().any(|h| host_covers(h, sni)) {
                        v.error(format!(
                            "SNI host {sni:?} is not within the VirtualService hosts"
                        ));
                    }
                });
                l4_match(
                    v,
                    &m.destination_subnets,
                    m.port,
                    &m.source_labels,
                    &m.gateways,
                );
            });
            route_destinations(v, &route.route);
        });
        v.each("tcp", &self.tcp, |v, route| {
            v.each("match", &route.matches, |v, m| {
                l4_match(
                    v,
                    &m.destination_subnets,
                    m.port,
                    &m.source_labels,
                    &m.gateways,
                );
                if let Some(subnet) = &m.source_subnet {
                    v.field("sourceSubnet", |v| ip_or_cidr(v, subnet));
                }
            });
            route_destinations(v, &route.route);
        });
    }
}

/// True when `host` (possibly `*.suffix` or `*`) covers `name`.
fn host_covers(host: &str, name: &str) -> bool {
    if host == "*" || host == name {
        return true;
    }
    match host.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix),
        None => false,
    }
}

fn gateway_name(v: &mut Validator, gw: &str) {
    if gw == MESH_GATEWAY {
        return;
    }
    let name = gw.rsplit_once('/').map_or(gw, |(ns, name)| {
        checks::dns_label(v, "gateway namespace", ns);
        name
    });
    if !checks::is_dns1123_subdomain(name) {
        v.error(format!(
            "invalid gateway name {gw:?}: use `mesh`, `name` or `namespace/name`"
        ));
    }
}

fn ip_or_cidr(v: &mut Validator, s: &str) {
    if s.parse::<std::net::IpAddr>().is_err() && s.parse::<ipnet::IpNet>().is_err() {
        v.error(format!("{s:?} is neither an IP address nor a CIDR block"));
    }
}

fn l4_match(
    v: &mut Validator,
    subnets: &[String],
    port: Option<u32>,
    source_labels: &BTreeMap<String, String>,
    gateways: &[String],
) {
    v.each("destinationSubnets", subnets, |v, s| ip_or_cidr(v, s));
    if let Some(p) = port {
        checks::port_number(v, "port", p);
    }
    checks::labels(v, "sourceLabels", source_labels);
    v.each("gateways", gateways, |v, gw| gateway_name(v, gw));
}

fn route_destinations(v: &mut Validator, route: &[RouteDestination]) {
    if route.is_empty() {
        v.error_at("route", "at least one route destination is required");
    }
    v.each("route", route, |v, d| {
        v.field("destination", |v| d.destination.validate(v));
    });
    weights(v, route.iter().map(|d| d.weight));
}

/// Istio's relative weights: none negative; several destinations must not sum to 0.
fn weights(v: &mut Validator, weights: impl Iterator<Item = i32> + Clone) {
    let count = weights.clone().count();
    let mut total: i64 = 0;
    v.field("route", |v| {
        for (i, w) in weights.enumerate() {
            if w < 0 {
                v.index(i, |v| {
                    v.error_at("weight", format!("must not be negative (got {w})"))
                });
            }
            total += i64::from(w.max(0));
        }
        if count > 1 && total == 0 {
            v.error("total destination weight must not be 0 when there are several destinations");
        }
    });
}

impl Validate for HttpRoute {
    fn validate(&self, v: &mut Validator) {
        let actions = [
            !self.route.is_empty(),
            self.redirect.is_some(),
            self.direct_response.is_some(),
            self.delegate.is_some(),
        ];
        match actions.iter().filter(|a| **a).count() {
            0 => v.error("a rule needs one of route, redirect, directResponse or delegate"),
            1 => {}
            _ => v.error("a rule may have only one of route, redirect, directResponse or delegate"),
        }
        if self.delegate.is_some() {
            v.error_at("delegate", "delegation is not supported by weft yet");
        }
        if self.rewrite.is_some() && self.redirect.is_some() {
            v.error_at("rewrite", "rewrite cannot be combined with redirect");
        }
        v.list("match", &self.matches);
        v.each("route", &self.route, |v, d| {
            v.field("destination", |v| d.destination.validate(v));
            v.optional("headers", &d.headers);
        });
        weights(v, self.route.iter().map(|d| d.weight));
        v.optional("redirect", &self.redirect);
        v.optional("directResponse", &self.direct_response);
        v.optional("rewrite", &self.rewrite);
        checks::duration_at_least(v, "timeout", &self.timeout, checks::ONE_MS);
        v.optional("retries", &self.retries);
        v.optional("fault", &self.fault);
        v.optional("corsPolicy", &self.cors_policy);
        v.optional("headers", &self.headers);
        self.validate_mirrors(v);
        let sets_host = |h: &Option<Headers>| {
            h.as_ref()
                .and_then(|h| h.request.as_ref())
                .is_some_and(|r| r.set.keys().any(|k| k.eq_ignore_ascii_case("host")))
        };
        let rewrites_authority = self.rewrite.as_ref().is_some_and(|r| r.authority.is_some());
        if rewrites_authority && sets_host(&self.headers) {
            v.error("the authority may be set only once: use rewrite.authority or headers.request.set.host, not both");
        }
    }
}

impl HttpRoute {
    fn validate_mirrors(&self, v: &mut Validator) {
        if self.mirror.is_some() && !self.mirrors.is_empty() {
            v.error("mirror and mirrors cannot both be set");
        }
        v.optional("mirror", &self.mirror);
        v.optional("mirrorPercentage", &self.mirror_percentage);
        if let Some(p) = self.mirror_percent {
            v.field("mirrorPercent", |v| {
                v.warn("mirrorPercent is deprecated; use mirrorPercentage: {value: N}");
                if p > 100 {
                    v.error(format!("must be in 0..100 (got {p})"));
                }
            });
            if self.mirror_percentage.is_some() {
                v.error_at(
                    "mirrorPercent",
                    "mirrorPercent and mirrorPercentage cannot both be set",
                );
            }
        }
        if self.mirror.is_none()
            && (self.mirror_percentage.is_some() || self.mirror_percent.is_some())
        {
            v.warn("a mirror percentage without a mirror destination has no effect");
        }
        v.each("mirrors", &self.mirrors, |v, m| {
            v.field("destination", |v| m.destination.validate(v));
            v.optional("percentage", &m.percentage);
        });
    }
}

impl Validate for HttpMatchRequest {
    fn validate(&self, v: &mut Validator) {
        for (name, m) in [
            ("uri", &self.uri),
            ("scheme", &self.scheme),
            ("method", &self.method),
            ("authority", &self.authority),
        ] {
            v.optional(name, m);
        }
        header_matches(v, "headers", &self.headers);
        header_matches(v, "withoutHeaders", &self.without_headers);
        v.field("queryParams", |v| {
            for (name, m) in &self.query_params {
                v.field(name, |v| m.validate(v));
            }
        });
        if let Some(p) = self.port {
            checks::port_number(v, "port", p);
        }
        checks::labels(v, "sourceLabels", &self.source_labels);
        v.each("gateways", &self.gateways, |v, gw| gateway_name(v, gw));
        if let Some(ns) = &self.source_namespace {
            v.field("sourceNamespace", |v| checks::dns_label(v, "namespace", ns));
        }
    }
}

fn header_matches(v: &mut Validator, field: &str, headers: &BTreeMap<String, StringMatch>) {
    v.field(field, |v| {
        for (name, m) in headers {
            v.field(name, |v| {
                checks::header_name(v, name);
                if matches!(name.as_str(), "uri" | "scheme" | "method" | "authority") {
                    v.warn(format!("the header key {name:?} is ignored by Istio; use the {name} match field instead"));
                }
                m.validate(v);
            });
        }
    });
}

impl Validate for Headers {
    fn validate(&self, v: &mut Validator) {
        v.optional("request", &self.request);
        v.optional("response", &self.response);
    }
}

impl Validate for HeaderOperations {
    fn validate(&self, v: &mut Validator) {
        for (op, map) in [("set", &self.set), ("add", &self.add)] {
            v.field(op, |v| {
                for (name, value) in map {
                    v.field(name, |v| {
                        header_operation_name(v, name);
                        checks::header_value(v, value);
                    });
                }
            });
        }
        v.each("remove", &self.remove, |v, name| {
            header_operation_name(v, name)
        });
    }
}

fn header_operation_name(v: &mut Validator, name: &str) {
    if name.starts_with(':') {
        v.error(format!("pseudo-header {name:?} cannot be changed"));
    } else {
        checks::header_name(v, name);
    }
}

impl Validate for HttpRedirect {
    fn validate(&self, v: &mut Validator) {
        if self.uri.is_none()
            && self.authority.is_none()
            && self.port.is_none()
            && self.scheme.is_none()
            && self.derive_port.is_none()
        {
            v.error(
                "a redirect must set at least one of uri, authority, port, derivePort or scheme",
            );
        }
        if let Some(code) = self.redirect_code {
            if !(300..=399).contains(&code) {
                v.error_at("redirectCode", format!("must be in 300..399 (got {code})"));
            }
        }
        if let Some(scheme) = &self.scheme {
            if scheme != "http" && scheme != "https" {
                v.error_at("scheme", format!("must be http or https (got {scheme:?})"));
            }
        }
        if let Some(p) = self.port {
            checks::port_number(v, "port", p);
            if self.derive_port.is_some() {
                v.error("port and derivePort cannot both be set");
            }
        }
    }
}

impl Validate for HttpDirectResponse {
    fn validate(&self, v: &mut Validator) {
        if !(200..=600).contains(&self.status) {
            v.error_at(
                "status",
                format!("must be in 200..600 (got {})", self.status),
            );
        }
        if let Some(body) = &self.body {
            v.field("body", |v| {
                let len = match (&body.string, &body.bytes) {
                    (Some(_), Some(_)) => {
                        v.error("only one of string or bytes may be set");
                        0
                    }
                    (Some(s), None) => s.len(),
                    (None, Some(b)) => b.len() / 4 * 3,
                    (None, None) => 0,
                };
                if len > MAX_DIRECT_RESPONSE_BODY {
                    v.error(format!(
                        "body is {len} bytes; at most {MAX_DIRECT_RESPONSE_BODY} are allowed"
                    ));
                } else if len > 100 * 1024 {
                    v.warn(format!(
                        "body is {len} bytes; large direct responses use memory in every proxy"
                    ));
                }
                if let Some(b) = &body.bytes {
                    if !is_base64(b) {
                        v.error_at("bytes", "must be base64-encoded");
                    }
                }
            });
        }
    }
}

fn is_base64(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl Validate for HttpRewrite {
    fn validate(&self, v: &mut Validator) {
        if self.uri.is_some() && self.uri_regex_rewrite.is_some() {
            v.error("uri and uriRegexRewrite cannot both be set");
        }
        if self.uri.is_none() && self.uri_regex_rewrite.is_none() && self.authority.is_none() {
            v.error("a rewrite must set at least one of uri, uriRegexRewrite or authority");
        }
        if let Some(r) = &self.uri_regex_rewrite {
            v.field("uriRegexRewrite", |v| {
                v.field("match", |v| checks::regex(v, &r.pattern))
            });
        }
    }
}

impl Validate for HttpRetry {
    fn validate(&self, v: &mut Validator) {
        if self.attempts < 0 {
            v.error_at(
                "attempts",
                format!("must not be negative (got {})", self.attempts),
            );
        }
        if self.attempts == 0
            && (self.per_try_timeout.is_some()
                || self.retry_on.is_some()
                || self.retry_remote_localities.is_some())
        {
            v.error("attempts is 0 (retries disabled) but perTryTimeout, retryOn or retryRemoteLocalities is set");
        }
        checks::duration_at_least(v, "perTryTimeout", &self.per_try_timeout, checks::ONE_MS);
        checks::duration_at_least(v, "backoff", &self.backoff, checks::ONE_MS);
        if let Some(on) = &self.retry_on {
            v.field("retryOn", |v| {
                for token in on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let numeric = token.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c));
                    if !numeric && !RETRY_ON_CONDITIONS.contains(&token) {
                        let mut msg = format!("unknown retry condition {token:?}");
                        if let Some(s) = crate::source::suggest(token, RETRY_ON_CONDITIONS) {
                            msg.push_str(&format!(" (did you mean {s:?}?)"));
                        }
                        v.error(msg);
                    }
                }
            });
        }
    }
}

impl Validate for CorsPolicy {
    fn validate(&self, v: &mut Validator) {
        if !self.allow_origin.is_empty() {
            v.warn_at("allowOrigin", "allowOrigin is deprecated; use allowOrigins");
        }
        v.list("allowOrigins", &self.allow_origins);
        v.each("allowMethods", &self.allow_methods, |v, m| {
            const METHODS: &[&str] = &[
                "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
            ];
            if !METHODS.contains(&m.as_str()) {
                v.error(format!("unknown HTTP method {m:?}"));
            }
        });
        v.each("allowHeaders", &self.allow_headers, |v, h| {
            if h != "*" {
                checks::header_name(v, h);
            }
        });
        v.each("exposeHeaders", &self.expose_headers, |v, h| {
            if h != "*" {
                checks::header_name(v, h);
            }
        });
        checks::duration_at_least(
            v,
            "maxAge",
            &self.max_age,
            std::time::Duration::from_secs(1),
        );
    }
}

impl Validate for HttpFaultInjection {
    fn validate(&self, v: &mut Validator) {
        if self.delay.is_none() && self.abort.is_none() {
            v.error("a fault needs an abort or a delay");
        }
        v.optional("delay", &self.delay);
        v.optional("abort", &self.abort);
    }
}

fn deprecated_percent(v: &mut Validator, percent: Option<i32>, percentage: &Option<Percent>) {
    let Some(p) = percent else { return };
    v.field("percent", |v| {
        v.warn(format!(
            "the integer percent is deprecated; use percentage: {{value: {p}}}"
        ));
        if !(0..=100).contains(&p) {
            v.error(format!("must be in 0..100 (got {p})"));
        }
        if percentage.is_some() {
            v.error("percent and percentage cannot both be set");
        }
    });
}

impl Validate for Delay {
    fn validate(&self, v: &mut Validator) {
        if self.exponential_delay.is_some() {
            v.error_at(
                "exponentialDelay",
                "exponentialDelay is not supported (as in Istio); use fixedDelay",
            );
        } else if self.fixed_delay.is_none() {
            v.error_at("fixedDelay", "a delay needs fixedDelay");
        }
        checks::duration_at_least(v, "fixedDelay", &self.fixed_delay, checks::ONE_MS);
        v.optional("percentage", &self.percentage);
        deprecated_percent(v, self.percent, &self.percentage);
    }
}

impl Validate for Abort {
    fn validate(&self, v: &mut Validator) {
        let kinds = [
            self.http_status.is_some(),
            self.grpc_status.is_some(),
            self.http2_error.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => v.error("an abort needs httpStatus or grpcStatus"),
            1 => {}
            _ => v.error("only one of httpStatus, grpcStatus or http2Error may be set"),
        }
        if let Some(status) = self.http_status {
            if !(200..=600).contains(&status) {
                v.error_at("httpStatus", format!("must be in 200..600 (got {status})"));
            }
        }
        if let Some(name) = &self.grpc_status {
            if !checks::GRPC_STATUS_NAMES.contains(&name.as_str()) {
                let mut msg = format!("unknown gRPC status {name:?}");
                if let Some(s) = crate::source::suggest(name, checks::GRPC_STATUS_NAMES) {
                    msg.push_str(&format!(" (did you mean {s:?}?)"));
                }
                v.error_at("grpcStatus", msg);
            }
        }
        if self.http2_error.is_some() {
            v.error_at(
                "http2Error",
                "http2Error aborts are not supported (as in Istio); use httpStatus or grpcStatus",
            );
        }
        v.optional("percentage", &self.percentage);
        deprecated_percent(v, self.percent, &self.percentage);
    }
}

#[cfg(test)]
mod tests;
