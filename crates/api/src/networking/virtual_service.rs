//! `VirtualService`: how requests to a host are routed.
//!
//! This file holds the resource itself, its host and gateway checks, and the
//! helpers its rules share; each kind of rule and each HTTP feature has its own
//! module:
//!
//! - `http`: HTTP rules, their matches, destinations, mirrors and delegation;
//! - `rewrite`: header operations and path/authority rewrites;
//! - `response`: redirects and direct responses;
//! - `retry`, `fault`, `cors`: the per-rule retry, fault-injection and CORS policies;
//! - `tcp_tls`: TCP and TLS (SNI) rules.
//!
//! Everything public is re-exported here, so paths stay `virtual_service::Type`.

mod cors;
mod fault;
mod http;
mod response;
mod retry;
mod rewrite;
mod tcp_tls;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

pub use cors::{CorsPolicy, UnmatchedPreflights};
pub use fault::{Abort, Delay, HttpFaultInjection};
pub use http::{Delegate, HttpMatchRequest, HttpMirrorPolicy, HttpRoute, HttpRouteDestination};
pub use response::{
    HttpBody, HttpDirectResponse, HttpRedirect, MAX_DIRECT_RESPONSE_BODY, RedirectPortSelection,
};
pub use retry::{HttpRetry, RETRY_ON_CONDITIONS};
pub use rewrite::{HeaderOperations, Headers, HttpRewrite, RegexRewrite};
pub use tcp_tls::{L4MatchAttributes, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute};

use tcp_tls::{tcp_route, tls_route};

/// The gateway name that means "every sidecar in the mesh".
pub const MESH_GATEWAY: &str = "mesh";

/// VirtualService spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The claim path of a JWT claim routing key, Istio's `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]` (the bracket form allows dots in names); `None` for other
/// header names and for a malformed key.
pub fn routing_claim(key: &str) -> Option<Vec<&str>> {
    let rest = key.strip_prefix("@request.auth.claims")?;
    let path: Vec<&str> = if let Some(dotted) = rest.strip_prefix('.') {
        dotted.split('.').collect()
    } else {
        let mut path = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            let (name, after) = rest.strip_prefix('[')?.split_once(']')?;
            path.push(name);
            rest = after;
        }
        path
    };
    (!path.is_empty() && path.iter().all(|p| !p.is_empty())).then_some(path)
}

/// True when `key` asks for JWT claim routing (well-formed or not).
pub fn is_routing_claim(key: &str) -> bool {
    key.starts_with("@request.auth.claims")
}

impl VirtualService {
    /// True when bound to sidecars (`gateways` absent or containing `mesh`).
    pub fn binds_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }
}

impl Validate for VirtualService {
    fn validate(&self, v: &mut Validator) {
        // Without hosts it is a delegate: its rules serve the root VirtualServices that
        // delegate to it, so it binds to nothing itself (Istio's checks).
        let delegate = self.hosts.is_empty();
        if delegate {
            if !self.gateways.is_empty() {
                v.error_at(
                    "gateways",
                    "a delegate VirtualService (no hosts) must have no gateways",
                );
            }
            if !self.tls.is_empty() {
                v.error_at(
                    "tls",
                    "a delegate VirtualService (no hosts) must have no tls routes",
                );
            }
            if !self.tcp.is_empty() {
                v.error_at(
                    "tcp",
                    "a delegate VirtualService (no hosts) must have no tcp routes",
                );
            }
            v.each("http", &self.http, |v, route| {
                if route.delegate.is_some() {
                    v.error_at(
                        "delegate",
                        "a delegate VirtualService cannot delegate further (one level only)",
                    );
                }
            });
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
        let gateway_only = !self.gateways.is_empty() && !self.binds_to_mesh();
        v.each("http", &self.http, |v, route| {
            if !gateway_only {
                for key in route
                    .matches
                    .iter()
                    .flat_map(|m| m.headers.keys().chain(m.without_headers.keys()))
                    .filter(|k| is_routing_claim(k))
                {
                    v.error(format!(
                        "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {:?}",
                        self.gateways
                    ));
                }
            }
            route.validate(v);
            if route.matches.is_empty() && !std::ptr::eq(route, &self.http[last]) {
                v.warn("only the last rule can have no match; the rules after it are unreachable");
            }
        });
        v.each("tls", &self.tls, |v, route| {
            tls_route(v, route, &self.hosts)
        });
        v.each("tcp", &self.tcp, tcp_route);
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

#[cfg(test)]
mod tests;
