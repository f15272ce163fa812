//! MeshConfig's external authorization providers (`envoyExtAuthzHttp`,
//! `envoyExtAuthzGrpc`), which AuthorizationPolicies with `action: CUSTOM` name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::{Validator, checks};

/// Istio's `EnvoyExternalAuthorizationHttpProvider`, the part weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtAuthzHttp {
    /// The authorization service's host.
    #[serde(default)]
    pub service: String,
    /// Its port.
    #[serde(default)]
    pub port: u32,
    /// How long a check may take (default 600s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Put before the request's path in the check.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_prefix: String,
    /// On an error, let the request through.
    #[serde(default)]
    pub fail_open: bool,
    /// On an error, the status answered (default 403).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_on_error: String,
    /// Request headers sent in the check (exact, `prefix*`, `*suffix`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers_in_check: Vec<String>,
    /// Headers added to the check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    /// Headers of an allowing answer set on the request sent upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    /// Headers of a denying answer passed to the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
    /// Headers of an allowing answer added to the response to the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_allow: Vec<String>,
    /// Whether, and how much of, the request body goes into the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<BodyInCheck>,
}

/// Istio's `EnvoyExternalAuthorizationRequestBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BodyInCheck {
    /// Most body bytes held for the check; a longer body is answered 413 unless
    /// `allowPartialMessage`.
    #[serde(default)]
    pub max_request_bytes: u32,
    /// Send the first `maxRequestBytes` of a longer body instead of refusing it.
    #[serde(default)]
    pub allow_partial_message: bool,
    /// gRPC: the body goes as bytes (`raw_body`), not as UTF-8 text (`body`). HTTP sends
    /// the bytes as they are either way.
    #[serde(default)]
    pub pack_as_bytes: bool,
}

impl BodyInCheck {
    fn check(&self, v: &mut Validator) {
        if self.max_request_bytes == 0 {
            v.error_at(
                "includeRequestBodyInCheck.maxRequestBytes",
                "must be at least 1 (Envoy refuses 0): the most body bytes held for the check",
            );
        }
    }
}

/// Istio's `EnvoyExternalAuthorizationGrpcProvider`, the part weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtAuthzGrpc {
    /// The authorization service's host.
    #[serde(default)]
    pub service: String,
    /// Its port.
    #[serde(default)]
    pub port: u32,
    /// How long a check may take (default 600s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// On an error, let the request through.
    #[serde(default)]
    pub fail_open: bool,
    /// On an error, the status answered (default 403).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_on_error: String,
    /// Whether, and how much of, the request body goes into the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<BodyInCheck>,
    /// Recompute the route after the check changed headers. weft always routes after the
    /// check, so a route sees the headers the service set either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_route_cache: bool,
}

/// The fields of both provider kinds weft refuses.
pub(super) const REFUSED: &[(&str, &str)] = &[(
    "includeHeadersInCheck",
    "deprecated in Istio: use includeRequestHeadersInCheck",
)];

fn service_and_port(v: &mut Validator, service: &str, port: u32) {
    if service.trim().is_empty() {
        v.error_at(
            "service",
            "the authorization service's host is required (e.g. ext-authz.foo.svc.cluster.local)",
        );
    } else if service.contains(['/', ' ']) {
        v.error_at(
            "service",
            format!("must be a host name or IP address, not a URL (got {service:?})"),
        );
    }
    checks::port_number(v, "port", port);
}

/// `statusOnError`: an HTTP status code, as text.
pub fn status_on_error(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Ok(403);
    }
    text.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| format!("must be an HTTP status code such as 403 (got {text:?})"))
}

fn check_status(v: &mut Validator, text: &str) {
    if let Err(e) = status_on_error(text) {
        v.error_at("statusOnError", e);
    }
}

impl ExtAuthzHttp {
    pub(super) fn check(&self, v: &mut Validator) {
        service_and_port(v, &self.service, self.port);
        check_status(v, &self.status_on_error);
        if !self.path_prefix.is_empty() && !self.path_prefix.starts_with('/') {
            v.error_at(
                "pathPrefix",
                format!("must start with / (got {:?})", self.path_prefix),
            );
        }
        for name in self.include_additional_headers_in_check.keys() {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                v.error_at(
                    "includeAdditionalHeadersInCheck",
                    format!("{name:?} is not a header name"),
                );
            }
        }
        if let Some(b) = &self.include_request_body_in_check {
            b.check(v);
        }
    }
}

impl ExtAuthzGrpc {
    pub(super) fn check(&self, v: &mut Validator) {
        service_and_port(v, &self.service, self.port);
        check_status(v, &self.status_on_error);
        if let Some(b) = &self.include_request_body_in_check {
            b.check(v);
        }
    }
}
