//! External authorization providers (Istio's MeshConfig `extensionProviders[]` of kind
//! `envoyExtAuthzHttp` or `envoyExtAuthzGrpc`), as the proxy consults them for
//! AuthorizationPolicies with `action: CUSTOM`.

use std::collections::BTreeMap;
use std::time::Duration;

/// Istio's default `timeout` for an ext_authz provider.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One external authorization provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtAuthzProvider {
    /// Its name in `extensionProviders` (what `provider.name` of a CUSTOM policy names).
    pub name: String,
    /// The authorization service's host (a mesh host, a DNS name or an address).
    pub service: String,
    /// Its port.
    pub port: u16,
    /// How long a check may take before it counts as an error.
    pub timeout: Duration,
    /// On an error (unreachable, timeout, malformed answer): let the request through.
    pub fail_open: bool,
    /// On an error, when not failing open: the status answered (Istio's default 403).
    pub status_on_error: u16,
    /// Whether, and how much of, the request body goes into the check.
    pub body: Option<BodyInCheck>,
    /// HTTP or gRPC, with what only one of them has.
    pub kind: ExtAuthzKind,
}

/// `includeRequestBodyInCheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyInCheck {
    /// Most body bytes buffered for the check.
    pub max_request_bytes: u32,
    /// A longer body is cut to `max_request_bytes` (else it is refused with 413).
    pub allow_partial_message: bool,
    /// gRPC only: the body goes as bytes (`raw_body`) rather than text (`body`).
    pub pack_as_bytes: bool,
}

/// The provider's protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtAuthzKind {
    /// `envoyExtAuthzHttp`: the check is an HTTP request; 200 allows.
    Http(HttpProvider),
    /// `envoyExtAuthzGrpc`: `envoy.service.auth.v3.Authorization/Check`.
    Grpc,
}

/// What only the HTTP provider has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpProvider {
    /// Put before the request's path in the check request.
    pub path_prefix: String,
    /// Request headers sent in the check besides Host, Method, Path and Content-Length.
    pub include_request_headers: Vec<HeaderPattern>,
    /// Headers added to the check request.
    pub include_additional_headers: BTreeMap<String, String>,
    /// Headers of the service's 200 answer copied into the request sent upstream.
    pub headers_to_upstream_on_allow: Vec<HeaderPattern>,
    /// Headers of the service's denial copied into the answer to the client.
    pub headers_to_downstream_on_deny: Vec<HeaderPattern>,
    /// Headers of the service's 200 answer copied into the response to the client.
    pub headers_to_downstream_on_allow: Vec<HeaderPattern>,
}

/// A header name pattern as Istio writes them: exact, `prefix*`, `*suffix` (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    /// The name.
    Exact(String),
    /// Names starting with this.
    Prefix(String),
    /// Names ending with this.
    Suffix(String),
}

impl HeaderPattern {
    /// The pattern `text` stands for.
    pub fn parse(text: &str) -> HeaderPattern {
        let lower = text.to_ascii_lowercase();
        if let Some(p) = lower.strip_suffix('*') {
            HeaderPattern::Prefix(p.to_string())
        } else if let Some(s) = lower.strip_prefix('*') {
            HeaderPattern::Suffix(s.to_string())
        } else {
            HeaderPattern::Exact(lower)
        }
    }

    /// True when the header `name` (lower case, as `http` keeps it) matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HeaderPattern::Exact(e) => name == e,
            HeaderPattern::Prefix(p) => name.starts_with(p.as_str()),
            HeaderPattern::Suffix(s) => name.ends_with(s.as_str()),
        }
    }
}

/// True when any of `patterns` matches `name`.
pub fn any_matches(patterns: &[HeaderPattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_patterns_are_exact_prefix_or_suffix_and_ignore_case() {
        let p: Vec<HeaderPattern> = ["X-Ext-Authz", "x-auth-*", "*-user"]
            .into_iter()
            .map(HeaderPattern::parse)
            .collect();
        assert!(any_matches(&p, "x-ext-authz"));
        assert!(any_matches(&p, "x-auth-token"));
        assert!(any_matches(&p, "x-current-user"));
        assert!(!any_matches(&p, "authorization"));
        assert!(!any_matches(&p, "x-ext-authz-2"));
    }
}
