//! HTTP route tables and the per-request routing decision.
//!
//! A [`RouteTable`] holds, for one listener port, the virtual hosts (one per
//! service or VirtualService host) and their ordered routes. [`route`] is the
//! pure function the proxy calls per request: find the virtual host by
//! authority, then the first route whose match holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::host;
use crate::matcher::{Regex, Request, RequestHeaders, RequestMatch, StringMatcher};

/// Envoy's `FractionalPercent` with denominator one million.
pub const MILLION: u32 = 1_000_000;

/// Routes for one listener port.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RouteTable {
    /// The port (80 for plain `Host: name` requests without a port).
    pub port: u16,
    /// Virtual hosts, in priority order for wildcard lookups.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Exact domain (lower-case, with and without `:port`) → index in `virtual_hosts`.
    #[serde(skip)]
    exact: HashMap<String, usize>,
}

/// The routes for one host and its aliases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualHost {
    /// Name, `host:port`.
    pub name: String,
    /// Domains served: exact names or `*.suffix` wildcards, each also with `:port`.
    pub domains: Vec<String>,
    /// Ordered routes; the first match wins.
    pub routes: Vec<Route>,
}

/// One route: conditions and the action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Rule name (VirtualService `http[].name`) or `default`.
    pub name: String,
    /// The VirtualService it came from (`namespace/name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// OR-ed conditions; empty means every request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RequestMatch>,
    /// What to do.
    pub action: Arc<RouteAction>,
}

/// What a route does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Forward to weighted clusters.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly.
    DirectResponse(DirectResponse),
}

/// Forwarding: destinations and the policies applied on the way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forward {
    /// Weighted clusters.
    pub clusters: WeightedClusters,
    /// Path/authority rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Overall timeout (`None`: disabled, Istio's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Fault injection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Mirror destinations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
    /// Route-level header operations.
    pub headers: HeaderRules,
    /// CORS policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

/// A CORS policy, compiled (Envoy's CORS filter semantics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cors {
    /// Origins allowed.
    pub allow_origins: Vec<StringMatcher>,
    /// `Access-Control-Allow-Methods` value (empty: not sent).
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers` value.
    pub allow_headers: String,
    /// `Access-Control-Expose-Headers` value.
    pub expose_headers: String,
    /// `Access-Control-Max-Age` in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// Preflights from origins not allowed go upstream (FORWARD) or are answered without CORS headers (IGNORE).
    pub forward_unmatched_preflights: bool,
}

impl Cors {
    /// True when `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|m| m.matches(origin, false))
    }
}

/// A weighted choice of clusters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightedClusters {
    /// Entries with positive weight.
    pub entries: Vec<WeightedCluster>,
    /// Sum of the weights.
    pub total: u32,
}

/// One cluster with its weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightedCluster {
    /// Cluster name `outbound|port|subset|host`.
    pub cluster: Arc<str>,
    /// Relative weight.
    pub weight: u32,
    /// Header operations for this destination.
    pub headers: HeaderRules,
    /// Why the destination does not resolve (a Gateway API backendRef naming no Service):
    /// requests picked for it are answered 500, as the Gateway API requires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<Arc<str>>,
}

impl WeightedClusters {
    /// The entry for `sample` in `0..total` (callers draw it uniformly).
    pub fn pick(&self, sample: u32) -> Option<&WeightedCluster> {
        let mut sample = sample % self.total.max(1);
        for entry in &self.entries {
            if sample < entry.weight {
                return Some(entry);
            }
            sample -= entry.weight;
        }
        self.entries.last()
    }
}

/// Request and response header operations.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HeaderRules {
    /// On the request.
    pub request: HeaderOps,
    /// On the response.
    pub response: HeaderOps,
}

/// Set, add, remove (names lower-case).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HeaderOps {
    /// Overwrite.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    /// Append.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    /// Remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOps {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A rewrite of path and/or authority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rewrite {
    /// Path rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// New authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// How the path is rewritten.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRewrite {
    /// Replace the matched prefix (or the whole path when the match was not a prefix).
    Prefix(String),
    /// Regex substitution over the path.
    Regex {
        /// Pattern.
        pattern: Regex,
        /// Replacement, `\1`-style groups.
        substitution: String,
    },
}

impl Rewrite {
    /// The new path for `path` (query included) given the match entry that selected the route.
    pub fn apply_path(&self, path: &str, matched: Option<&RequestMatch>) -> Option<String> {
        let rule = self.path.as_ref()?;
        let (p, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let new = match rule {
            // Istio emits `prefix_rewrite` over the matched prefix; an exact match is a
            // prefix of the whole path, a regex match rewrites the whole path, and a rule
            // without a uri match is a `prefix: /` route.
            PathRewrite::Prefix(replacement) => replace_prefix(replacement, p, matched),
            PathRewrite::Regex {
                pattern,
                substitution,
            } => pattern
                .regex()
                .replace_all(p, envoy_substitution(substitution))
                .into_owned(),
        };
        Some(match query {
            Some(q) => format!("{new}?{q}"),
            None => new,
        })
    }
}

/// Envoy's `prefix_rewrite` of `path` (no query) under the match entry that selected the
/// route: it replaces the matched prefix; an exact match is a prefix of the whole path, a
/// regex match rewrites the whole path, and a rule without a uri match is a `prefix: /` route.
fn replace_prefix(replacement: &str, p: &str, matched: Option<&RequestMatch>) -> String {
    match matched.and_then(|m| m.uri.as_ref()) {
        Some(StringMatcher::Prefix(prefix)) if p.len() >= prefix.len() => {
            format!("{replacement}{}", p.get(prefix.len()..).unwrap_or_default())
        }
        // The Gateway API's ReplacePrefixMatch: `/foo` to `/bar` makes `/foo/x` `/bar/x`;
        // to `/`, `/x` (no doubled slash).
        Some(StringMatcher::SegmentPrefix(prefix)) => {
            let rest = p.get(prefix.len()..).unwrap_or_default();
            match (replacement.strip_suffix('/'), rest) {
                (_, "") if replacement.is_empty() => "/".to_string(),
                (_, "") => replacement.to_string(),
                (Some(base), rest) => format!("{base}{rest}"),
                (None, rest) => format!("{replacement}{rest}"),
            }
        }
        Some(StringMatcher::Exact(_) | StringMatcher::Regex(_)) => replacement.to_string(),
        _ => format!("{replacement}{}", p.strip_prefix('/').unwrap_or(p)),
    }
}

/// Envoy writes groups as `\1`; the regex crate as `${1}`.
fn envoy_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str("${");
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    out.push(*d);
                    chars.next();
                }
                out.push('}');
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// Retry policy, normalized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none).
    pub attempts: u32,
    /// Timeout of each try (`None`: the route timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Conditions.
    pub retry_on: Vec<RetryOn>,
    /// Status codes retried by `retriable-status-codes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// Base backoff (25ms default), with jitter.
    pub backoff: Duration,
    /// Prefer other endpoints on retry.
    pub retry_ignore_previous_hosts: bool,
    /// Written in the VirtualService (not Istio's implicit default). Only an explicit
    /// policy retries a non-idempotent request the upstream may already have seen.
    pub explicit: bool,
}

/// Retry conditions (Envoy's `retry_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// Any 5xx or reset/connect failure.
    #[serde(rename = "5xx")]
    FiveXx,
    /// 502, 503, 504.
    GatewayError,
    /// Upstream reset after the request was sent.
    Reset,
    /// Reset before any byte was sent.
    ResetBeforeRequest,
    /// Connection failure.
    ConnectFailure,
    /// 409.
    Retriable4xx,
    /// REFUSED_STREAM.
    RefusedStream,
    /// The listed status codes.
    RetriableStatusCodes,
    /// Headers listed in the policy (none configurable in Istio).
    RetriableHeaders,
    /// `x-envoy-ratelimited` answers.
    EnvoyRatelimited,
    /// HTTP/3 post-connect failure.
    Http3PostConnectFailure,
    /// gRPC CANCELLED.
    Cancelled,
    /// gRPC DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// gRPC INTERNAL.
    Internal,
    /// gRPC RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// gRPC UNAVAILABLE.
    Unavailable,
}

impl RetryOn {
    /// The condition named `token` in `retryOn`.
    pub fn parse(token: &str) -> Option<RetryOn> {
        Some(match token {
            "5xx" => RetryOn::FiveXx,
            "gateway-error" => RetryOn::GatewayError,
            "reset" => RetryOn::Reset,
            "reset-before-request" => RetryOn::ResetBeforeRequest,
            "connect-failure" => RetryOn::ConnectFailure,
            "retriable-4xx" => RetryOn::Retriable4xx,
            "refused-stream" => RetryOn::RefusedStream,
            "retriable-status-codes" => RetryOn::RetriableStatusCodes,
            "retriable-headers" => RetryOn::RetriableHeaders,
            "envoy-ratelimited" => RetryOn::EnvoyRatelimited,
            "http3-post-connect-failure" => RetryOn::Http3PostConnectFailure,
            "cancelled" => RetryOn::Cancelled,
            "deadline-exceeded" => RetryOn::DeadlineExceeded,
            "internal" => RetryOn::Internal,
            "resource-exhausted" => RetryOn::ResourceExhausted,
            "unavailable" => RetryOn::Unavailable,
            _ => return None,
        })
    }
}

impl RetryPolicy {
    /// Istio's default outbound policy (1.24+): 2 retries on connect-failure,
    /// refused-stream, unavailable, cancelled and retriable-status-codes with no codes.
    pub fn istio_default() -> Self {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: DEFAULT_RETRY_ON.to_vec(),
            retriable_status_codes: Vec::new(),
            backoff: Duration::from_millis(25),
            retry_ignore_previous_hosts: true,
            explicit: false,
        }
    }

    /// No retries.
    pub fn disabled() -> Self {
        RetryPolicy {
            attempts: 0,
            retry_on: Vec::new(),
            ..RetryPolicy::istio_default()
        }
    }
}

/// Istio's default `retryOn`.
pub const DEFAULT_RETRY_ON: &[RetryOn] = &[
    RetryOn::ConnectFailure,
    RetryOn::RefusedStream,
    RetryOn::Unavailable,
    RetryOn::Cancelled,
    RetryOn::RetriableStatusCodes,
];

/// Fault injection, percentages per million.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// Delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelayFault>,
    /// Abort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortFault>,
}

/// Delay a share of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DelayFault {
    /// How long.
    pub delay: Duration,
    /// Share, per million.
    pub per_million: u32,
}

/// Abort a share of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbortFault {
    /// The answer.
    pub status: AbortStatus,
    /// Share, per million.
    pub per_million: u32,
}

/// What an abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortStatus {
    /// An HTTP status.
    Http(u16),
    /// A gRPC status code.
    Grpc(u32),
}

/// A mirror destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mirror {
    /// Cluster copies go to.
    pub cluster: Arc<str>,
    /// Share mirrored, per million.
    pub per_million: u32,
}

/// A redirect answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redirect {
    /// New path (replaces the whole path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replaces the matched prefix of the path (`redirect.prefixRewrite`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// New authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// New port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<RedirectPort>,
    /// New scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Status code (301 default).
    pub status: u16,
    /// Response header operations.
    pub headers: HeaderOps,
}

impl Redirect {
    /// The path (query included) of the `Location` for a request to `path` selected by
    /// `matched`: `uri` replaces the whole path (the query kept unless it has its own),
    /// `prefixRewrite` the matched prefix (the query kept); otherwise the path is kept.
    pub fn location_path(&self, path: &str, matched: Option<&RequestMatch>) -> String {
        let (p, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let with_query = |new: String| match query {
            Some(q) => format!("{new}?{q}"),
            None => new,
        };
        match (&self.path, &self.prefix_rewrite) {
            (Some(new), _) if new.contains('?') => new.clone(),
            (Some(new), _) => with_query(new.clone()),
            (None, Some(replacement)) => with_query(replace_prefix(replacement, p, matched)),
            (None, None) => path.to_string(),
        }
    }
}

/// The port of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPort {
    /// A fixed port.
    Fixed(u16),
    /// 80 or 443 by scheme.
    FromProtocolDefault,
    /// The request's port.
    FromRequestPort,
    /// The port the request's authority names, unless it is 80 (Envoy's
    /// `https_redirect`: `http://h:80/` goes to `https://h/`, `http://h:8000/` to
    /// `https://h:8000/`).
    UnlessHttpDefault,
}

/// A direct answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectResponse {
    /// Status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Response header operations.
    pub headers: HeaderOps,
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision<'t> {
    /// A route was selected.
    Route {
        /// The virtual host.
        virtual_host: &'t VirtualHost,
        /// The route.
        route: &'t Route,
        /// The match entry that held (`None` for a rule without matches).
        matched: Option<&'t RequestMatch>,
    },
    /// No virtual host serves the authority: 404 NR.
    NoVirtualHost,
    /// The virtual host has no matching route: 404 NR.
    NoRoute,
}

impl RouteTable {
    /// A table for `port` with `virtual_hosts`; builds the exact-domain index.
    pub fn new(port: u16, virtual_hosts: Vec<VirtualHost>) -> Self {
        let mut exact = HashMap::new();
        for (i, vh) in virtual_hosts.iter().enumerate() {
            for d in vh.domains.iter().filter(|d| !d.starts_with('*')) {
                exact.entry(d.clone()).or_insert(i);
            }
        }
        RouteTable {
            port,
            virtual_hosts,
            exact,
        }
    }

    /// The virtual host serving `authority`: exact names first, then the longest wildcard, then `*`.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let authority = lower(authority);
        if let Some(i) = self.exact.get(authority.as_ref()) {
            return self.virtual_hosts.get(*i);
        }
        let bare = host::authority_host(&authority);
        if let Some(i) = self.exact.get(bare) {
            return self.virtual_hosts.get(*i);
        }
        self.virtual_hosts
            .iter()
            .flat_map(|vh| vh.domains.iter().map(move |d| (d, vh)))
            .filter(|(d, _)| {
                d.starts_with('*') && (host::covers(d, &authority) || host::covers(d, bare))
            })
            .max_by_key(|(d, _)| d.len())
            .map(|(_, vh)| vh)
    }
}

fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Routes one request: the virtual host for its authority, then the first route
/// with a holding match entry (entries are OR-ed, conditions within one AND-ed).
pub fn route<'t, H: RequestHeaders + ?Sized>(
    table: &'t RouteTable,
    req: &Request<'_, H>,
) -> Decision<'t> {
    let Some(virtual_host) = table.virtual_host(req.authority) else {
        return Decision::NoVirtualHost;
    };
    for route in &virtual_host.routes {
        if route.matches.is_empty() {
            return Decision::Route {
                virtual_host,
                route,
                matched: None,
            };
        }
        if let Some(matched) = route.matches.iter().find(|m| m.matches(req)) {
            return Decision::Route {
                virtual_host,
                route,
                matched: Some(matched),
            };
        }
    }
    Decision::NoRoute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_weights() {
        let wc = |name: &str, weight| WeightedCluster {
            cluster: name.into(),
            weight,
            headers: HeaderRules::default(),
            unresolved: None,
        };
        let clusters = WeightedClusters {
            entries: vec![wc("a", 10), wc("b", 90)],
            total: 100,
        };
        let picks: Vec<&str> = (0..100)
            .map(|s| &*clusters.pick(s).expect("entry").cluster)
            .collect();
        assert_eq!(picks.iter().filter(|c| **c == "a").count(), 10);
        assert_eq!(picks.iter().filter(|c| **c == "b").count(), 90);
    }

    #[test]
    fn redirect_prefix_rewrite_replaces_the_matched_prefix_and_keeps_the_query() {
        let redirect = |path: Option<&str>, prefix: Option<&str>| Redirect {
            path: path.map(str::to_string),
            prefix_rewrite: prefix.map(str::to_string),
            authority: None,
            port: None,
            scheme: None,
            status: 301,
            headers: HeaderOps::default(),
        };
        let by_prefix = RequestMatch {
            uri: Some(StringMatcher::Prefix("/old/".into())),
            ..Default::default()
        };
        let r = redirect(None, Some("/new/"));
        assert_eq!(
            r.location_path("/old/a/b?x=1", Some(&by_prefix)),
            "/new/a/b?x=1"
        );
        let exact = RequestMatch {
            uri: Some(StringMatcher::Exact("/old".into())),
            ..Default::default()
        };
        assert_eq!(r.location_path("/old?x=1", Some(&exact)), "/new/?x=1");
        // No uri match: Istio's `prefix: /` route.
        assert_eq!(r.location_path("/a", None), "/new/a");
        // `uri` replaces the whole path; its own query wins.
        let whole = redirect(Some("/here"), None);
        assert_eq!(
            whole.location_path("/old/a?x=1", Some(&by_prefix)),
            "/here?x=1"
        );
        assert_eq!(
            redirect(Some("/here?y=2"), None).location_path("/a?x=1", None),
            "/here?y=2"
        );
        assert_eq!(redirect(None, None).location_path("/a?x=1", None), "/a?x=1");
    }

    #[test]
    fn prefix_rewrite_replaces_only_the_matched_prefix() {
        let rewrite = Rewrite {
            path: Some(PathRewrite::Prefix("/v2/".into())),
            authority: None,
        };
        let m = RequestMatch {
            uri: Some(StringMatcher::Prefix("/api/".into())),
            ..Default::default()
        };
        assert_eq!(
            rewrite.apply_path("/api/users?x=1", Some(&m)).as_deref(),
            Some("/v2/users?x=1")
        );
        let exact = RequestMatch {
            uri: Some(StringMatcher::Exact("/a".into())),
            ..Default::default()
        };
        assert_eq!(
            rewrite.apply_path("/a", Some(&exact)).as_deref(),
            Some("/v2/")
        );
    }

    #[test]
    fn regex_rewrite_uses_envoy_groups() {
        let pattern = Regex::unanchored("/service/([^/]+)(/.*)").expect("compiles");
        let rewrite = Rewrite {
            path: Some(PathRewrite::Regex {
                pattern,
                substitution: r"\2/instance/\1".into(),
            }),
            authority: None,
        };
        assert_eq!(
            rewrite.apply_path("/service/foo/v1/api", None).as_deref(),
            Some("/v1/api/instance/foo")
        );
    }
}
