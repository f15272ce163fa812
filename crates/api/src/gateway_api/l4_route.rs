//! `gateway.networking.k8s.io` `TCPRoute` (v1alpha2) and `TLSRoute` (v1alpha2, v1alpha3):
//! the experimental channel's routes for a Gateway's TCP listeners (every connection) and
//! TLS listeners in Passthrough mode (by SNI, the route's `hostnames`), each to weighted
//! backends.

use serde::{Deserialize, Serialize};

use super::http_route::{HttpBackendRef, ParentReference};
use super::{check_hostname, check_len, check_max};
use crate::validate::{Validate, Validator};

/// TCPRoute spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// What the route attaches to (Gateways).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The rules (one or more).
    #[serde(default)]
    pub rules: Vec<L4RouteRule>,
}

/// TLSRoute spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// What the route attaches to (Gateways).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The SNI names served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules (one or more).
    #[serde(default)]
    pub rules: Vec<L4RouteRule>,
}

/// A TCP or TLS rule: where the connections go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L4RouteRule {
    /// The rule's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Weighted backends (one or more).
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}

fn check_rules(v: &mut Validator, rules: &[L4RouteRule]) {
    if rules.is_empty() {
        v.error_at("rules", "Required value: at least 1 rule");
    }
    check_max(v, "rules", rules, 16);
    v.each("rules", rules, |v, r| {
        if let Some(n) = &r.name {
            check_len(v, "name", n, 1, 253);
        }
        if r.backend_refs.is_empty() {
            v.error_at("backendRefs", "Required value: at least 1 backendRef");
        }
        check_max(v, "backendRefs", &r.backend_refs, 16);
        v.each("backendRefs", &r.backend_refs, |v, b| b.validate(v));
    });
}

fn check_parents(v: &mut Validator, parents: &[ParentReference]) {
    check_max(v, "parentRefs", parents, 32);
    super::http_route::check_parent_sections(v, parents);
    v.each("parentRefs", parents, |v, p| {
        p.validate(v);
        if p.is_service() {
            v.error_at(
                "kind",
                "TCPRoute and TLSRoute attach to Gateways in weft (the mesh profile routes HTTP and gRPC)",
            );
        }
    });
}

impl Validate for TcpRoute {
    fn validate(&self, v: &mut Validator) {
        check_parents(v, &self.parent_refs);
        check_rules(v, &self.rules);
    }
}

impl Validate for TlsRoute {
    fn validate(&self, v: &mut Validator) {
        check_parents(v, &self.parent_refs);
        check_max(v, "hostnames", &self.hostnames, 16);
        v.each("hostnames", &self.hostnames, |v, h| check_hostname(v, h));
        check_rules(v, &self.rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_errors;

    #[test]
    fn tcp_and_tls_routes_need_rules_with_backends() {
        assert_errors::<TcpRoute>(
            "parentRefs: [{name: gw, sectionName: tcp}]\nrules: [{backendRefs: [{name: db, port: 5432}]}]\n",
            &[],
        );
        assert_errors::<TcpRoute>(
            "parentRefs: [{group: \"\", kind: Service, name: db}]\nrules: []\n",
            &[
                "spec.parentRefs[0].kind: TCPRoute and TLSRoute attach to Gateways in weft",
                "spec.rules: Required value",
            ],
        );
        assert_errors::<TlsRoute>(
            "parentRefs: [{name: gw}]\nhostnames: [Bad_Name]\nrules: [{backendRefs: []}, {backendRefs: [{name: db}]}]\n",
            &[
                "spec.hostnames[0]: Invalid value: \"Bad_Name\"",
                "spec.rules[0].backendRefs: Required value",
                "spec.rules[1].backendRefs[0]: Must have port for Service reference",
            ],
        );
    }
}
