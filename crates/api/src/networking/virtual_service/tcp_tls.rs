//! TCP rules and TLS (SNI) rules, with the L4 matches and destinations they share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{gateway_name, weights};
use crate::networking::common::Destination;
use crate::validate::{Validate, Validator, checks};

/// A weighted destination of a TCP or TLS rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where to send the connection.
    #[serde(default)]
    pub destination: Destination,
    /// Relative weight.
    #[serde(default)]
    pub weight: i32,
}

/// A TLS rule (SNI routing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Checks one TLS rule; its SNI hosts must fall within the VirtualService `hosts`.
pub(super) fn tls_route(v: &mut Validator, route: &TlsRoute, hosts: &[String]) {
    if route.matches.is_empty() {
        v.error_at("match", "TLS routes need at least one match with sniHosts");
    }
    v.each("match", &route.matches, |v, m| {
        if m.sni_hosts.is_empty() {
            v.error_at("sniHosts", "at least one SNI host is required");
        }
        v.each("sniHosts", &m.sni_hosts, |v, sni| {
            checks::wildcard_host(v, sni);
            if !hosts.iter().any(|h| host_covers(h, sni)) {
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
}

/// Checks one TCP rule.
pub(super) fn tcp_route(v: &mut Validator, route: &TcpRoute) {
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
