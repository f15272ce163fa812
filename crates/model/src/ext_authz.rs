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

fn body(b: &Option<weft_api::mesh_config::ext_authz::BodyInCheck>) -> Option<BodyInCheck> {
    b.as_ref().map(|b| BodyInCheck {
        max_request_bytes: b.max_request_bytes,
        allow_partial_message: b.allow_partial_message,
        pack_as_bytes: b.pack_as_bytes,
    })
}

/// The external authorization providers `mesh` defines.
pub fn providers(mesh: &weft_api::mesh_config::MeshConfig) -> Vec<ExtAuthzProvider> {
    use weft_api::mesh_config::ext_authz::status_on_error;
    let timeout = |t: &Option<weft_api::Duration>| t.map_or(DEFAULT_TIMEOUT, |d| d.get());
    let patterns = |list: &[String]| list.iter().map(|p| HeaderPattern::parse(p)).collect();
    mesh.extension_providers
        .iter()
        .filter_map(|p| {
            if let Some(h) = &p.envoy_ext_authz_http {
                return Some(ExtAuthzProvider {
                    name: p.name.clone(),
                    service: h.service.clone(),
                    port: u16::try_from(h.port).ok()?,
                    timeout: timeout(&h.timeout),
                    fail_open: h.fail_open,
                    status_on_error: status_on_error(&h.status_on_error).ok()?,
                    body: body(&h.include_request_body_in_check),
                    kind: ExtAuthzKind::Http(HttpProvider {
                        path_prefix: h.path_prefix.clone(),
                        include_request_headers: patterns(&h.include_request_headers_in_check),
                        include_additional_headers: h.include_additional_headers_in_check.clone(),
                        headers_to_upstream_on_allow: patterns(&h.headers_to_upstream_on_allow),
                        headers_to_downstream_on_deny: patterns(&h.headers_to_downstream_on_deny),
                        headers_to_downstream_on_allow: patterns(&h.headers_to_downstream_on_allow),
                    }),
                });
            }
            let g = p.envoy_ext_authz_grpc.as_ref()?;
            Some(ExtAuthzProvider {
                name: p.name.clone(),
                service: g.service.clone(),
                port: u16::try_from(g.port).ok()?,
                timeout: timeout(&g.timeout),
                fail_open: g.fail_open,
                status_on_error: status_on_error(&g.status_on_error).ok()?,
                body: body(&g.include_request_body_in_check),
                kind: ExtAuthzKind::Grpc,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_configs_ext_authz_providers_with_istios_defaults() {
        let loaded = weft_api::mesh_config::load_mesh_config(
            "mesh.yaml",
            "extensionProviders:
- name: opa
  envoyExtAuthzGrpc: {service: opa, port: 9191}
- name: web
  envoyExtAuthzHttp: {service: authz, port: 8000, timeout: 250ms, statusOnError: '503', headersToUpstreamOnAllow: [x-user]}
",
        );
        let got = providers(&loaded.config.expect("valid"));
        assert_eq!(got.len(), 2);
        assert_eq!(
            (
                got[0].name.as_str(),
                got[0].timeout,
                got[0].status_on_error,
                &got[0].kind
            ),
            ("opa", DEFAULT_TIMEOUT, 403, &ExtAuthzKind::Grpc)
        );
        assert_eq!(got[1].timeout, Duration::from_millis(250));
        assert_eq!(got[1].status_on_error, 503);
        let ExtAuthzKind::Http(h) = &got[1].kind else {
            panic!("http");
        };
        assert!(any_matches(&h.headers_to_upstream_on_allow, "x-user"));
    }

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
