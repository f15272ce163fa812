//! `gateway.networking.k8s.io` `GRPCRoute` (v1): gRPC routing by service and method,
//! attached to Gateways or (GAMMA) to Services like an HTTPRoute. Its parents, headers,
//! filters and backends have HTTPRoute's shapes; validation enforces the CRD's OpenAPI and
//! CEL rules.

use serde::{Deserialize, Serialize};

use super::http_route::{HttpBackendRef, HttpHeaderMatch, HttpRouteFilter, ParentReference};
use super::{check_hostname, check_max};
use crate::validate::{Validate, Validator};

/// GRPCRoute spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    /// What the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names (Gateway parents only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GrpcRouteRule>,
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// The rule's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OR-ed conditions; none matches every call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters (RequestHeaderModifier, ResponseHeaderModifier, RequestMirror).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Session persistence (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<serde_json::Value>,
}

/// One match: the method and every header condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteMatch {
    /// The gRPC service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Header (metadata) conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
}

/// A service and method condition (the request path is `/service/method`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The fully qualified service (`helloworld.Greeter`); absent matches every service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method (`SayHello`); absent matches every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl GrpcMethodMatch {
    /// True for `RegularExpression`.
    pub fn is_regex(&self) -> bool {
        self.kind.as_deref() == Some("RegularExpression")
    }
}

impl Validate for GrpcRoute {
    fn validate(&self, v: &mut Validator) {
        check_max(v, "parentRefs", &self.parent_refs, 32);
        v.each("parentRefs", &self.parent_refs, |v, p| p.validate(v));
        super::http_route::check_parent_sections(v, &self.parent_refs);
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
        v.each("rules", &self.rules, |v, r| r.validate(v));
    }
}

impl Validate for GrpcRouteRule {
    fn validate(&self, v: &mut Validator) {
        check_max(v, "matches", &self.matches, 64);
        v.each("matches", &self.matches, |v, m| {
            if let Some(method) = &m.method {
                v.field("method", |v| method.validate(v));
            }
            check_max(v, "headers", &m.headers, 16);
            v.each("headers", &m.headers, |v, h| {
                if h.name.is_empty() || h.name.len() > 256 {
                    v.error_at("name", format!("Invalid value: {:?}: must be 1 to 256 characters", h.name));
                }
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
        });
        check_max(v, "filters", &self.filters, 16);
        for k in ["RequestHeaderModifier", "ResponseHeaderModifier"] {
            if self.filters.iter().filter(|f| f.kind == k).count() > 1 {
                v.error_at("filters", format!("{k} filter cannot be repeated"));
            }
        }
        v.each("filters", &self.filters, |v, f| {
            if matches!(f.kind.as_str(), "RequestRedirect" | "URLRewrite" | "CORS") {
                v.error_at("type", format!("Unsupported value: {:?}: supported values: \"ResponseHeaderModifier\", \"RequestHeaderModifier\", \"RequestMirror\", \"ExtensionRef\"", f.kind));
            } else {
                f.validate(v);
            }
        });
        check_max(v, "backendRefs", &self.backend_refs, 16);
        v.each("backendRefs", &self.backend_refs, |v, b| b.validate(v));
        if self.session_persistence.is_some() {
            v.error_at(
                "sessionPersistence",
                "sessionPersistence is not supported by weft (an experimental-channel field)",
            );
        }
    }
}

impl Validate for GrpcMethodMatch {
    fn validate(&self, v: &mut Validator) {
        if self.service.is_none() && self.method.is_none() {
            v.error("One or both of 'service' or 'method' must be specified");
        }
        match self.kind.as_deref().unwrap_or("Exact") {
            "Exact" => {
                let ident = |s: &str| {
                    let mut chars = s.chars();
                    chars
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                };
                if let Some(s) = &self.service {
                    let dotted = s.strip_prefix('.').unwrap_or(s);
                    if s.len() > 1024 || !dotted.split('.').all(ident) {
                        v.error_at("service", format!("Invalid value: {s:?}: must be a fully qualified gRPC service name (package.Service)"));
                    }
                }
                if let Some(m) = &self.method {
                    if m.len() > 1024 || !ident(m) {
                        v.error_at("method", format!("Invalid value: {m:?}: must be a gRPC method name"));
                    }
                }
            }
            "RegularExpression" => {
                for (field, value) in [("service", &self.service), ("method", &self.method)] {
                    if let Some(value) = value {
                        if regex::Regex::new(value).is_err() {
                            v.error_at(field, format!("Invalid value: {value:?}: not a regular expression (RE2)"));
                        }
                    }
                }
            }
            other => v.error_at("type", format!("Unsupported value: {other:?}: supported values: \"Exact\", \"RegularExpression\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_errors;

    #[test]
    fn grpc_routes_are_validated_as_the_crd_does() {
        assert_errors::<GrpcRoute>(
            r#"
parentRefs: [{group: "", kind: Service, name: greeter, port: 50051}]
rules:
- matches: [{method: {service: helloworld.Greeter, method: SayHello}}, {method: {type: RegularExpression, method: "Say.*"}}]
  backendRefs: [{name: greeter-v2, port: 50051}]
"#,
            &[],
        );
        assert_errors::<GrpcRoute>(
            r#"
rules:
- matches:
  - method: {}
  - method: {service: "bad service", method: "1x"}
  - method: {type: RegularExpression, service: "("}
  filters:
  - {type: URLRewrite, urlRewrite: {}}
  sessionPersistence: {}
"#,
            &[
                "spec.rules[0].matches[0].method: One or both of 'service' or 'method' must be specified",
                "spec.rules[0].matches[1].method.service: Invalid value: \"bad service\"",
                "spec.rules[0].matches[1].method.method: Invalid value: \"1x\"",
                "spec.rules[0].matches[2].method.service: Invalid value: \"(\": not a regular expression",
                "spec.rules[0].filters[0].type: Unsupported value: \"URLRewrite\"",
                "spec.rules[0].sessionPersistence: sessionPersistence is not supported by weft",
            ],
        );
    }
}
