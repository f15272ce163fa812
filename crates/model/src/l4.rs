//! Layer-4 routes: VirtualService `tcp` rules (opaque TCP, by destination port and
//! subnet) and `tls` rules (unterminated TLS, by SNI), plus weft's TCP fault extension.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use weft_api::Object;
use weft_api::extensions::{TCP_FAULT_ANNOTATION, parse_tcp_fault};
use weft_api::networking::Destination;
use weft_api::networking::virtual_service::{MESH_GATEWAY, RouteDestination, VirtualService};

use crate::host;
use crate::route::{HeaderRules, WeightedCluster, WeightedClusters};
use crate::translate::mesh::cluster_name;
use crate::translate::scope::ProxyScope;

/// Conditions of an L4 rule entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L4Match {
    /// SNI names (TLS rules), lower-case, `*.` wildcards allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Destination subnets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<IpNet>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl L4Match {
    fn holds(&self, sni: Option<&str>, dst: Option<IpAddr>, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && (self.destination_subnets.is_empty()
                || dst.is_some_and(|ip| self.destination_subnets.iter().any(|n| n.contains(&ip))))
            && (self.sni_hosts.is_empty()
                || sni.is_some_and(|s| self.sni_hosts.iter().any(|h| host::covers(h, s))))
    }
}

/// One TCP or TLS rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct L4Route {
    /// The VirtualService (`namespace/name`) and rule index.
    pub source: String,
    /// Hosts of the VirtualService (resolved).
    pub hosts: Vec<String>,
    /// OR-ed conditions; empty matches everything.
    pub matches: Vec<L4Match>,
    /// Weighted destinations.
    pub clusters: WeightedClusters,
    /// weft's TCP fault extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<TcpFault>,
}

/// weft's TCP fault extension (annotation `fault.weft.io/tcp`): reset a share of
/// connections, and/or delay a share before the upstream connection is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpFault {
    /// Connections reset, per million.
    pub abort_per_million: u32,
    /// Delay and connections delayed, per million.
    pub delay: Option<(Duration, u32)>,
}

impl From<weft_api::extensions::TcpFault> for TcpFault {
    fn from(f: weft_api::extensions::TcpFault) -> Self {
        TcpFault {
            abort_per_million: f.abort_per_million,
            delay: f.delay,
        }
    }
}

/// Every L4 rule visible to the proxy, in VirtualService order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct L4Routes {
    /// `tcp` rules.
    pub tcp: Vec<Arc<L4Route>>,
    /// `tls` rules.
    pub tls: Vec<Arc<L4Route>>,
}

impl L4Routes {
    /// The first `tcp` rule for a connection to `hostname` (the service it was sent to) on `port`.
    pub fn tcp(&self, hostname: &str, dst: Option<IpAddr>, port: u16) -> Option<&Arc<L4Route>> {
        self.tcp.iter().find(|r| {
            r.hosts.iter().any(|h| host::covers(h, hostname))
                && (r.matches.is_empty() || r.matches.iter().any(|m| m.holds(None, dst, port)))
        })
    }

    /// The first `tls` rule whose SNI condition holds for `sni`.
    pub fn tls(&self, sni: &str, dst: Option<IpAddr>, port: u16) -> Option<&Arc<L4Route>> {
        self.tls
            .iter()
            .find(|r| r.matches.iter().any(|m| m.holds(Some(sni), dst, port)))
    }
}

fn weighted(route: &[RouteDestination], ns: &str, port: u16) -> WeightedClusters {
    let single = route.len() == 1;
    let entries: Vec<WeightedCluster> = route
        .iter()
        .filter(|d| single || d.weight > 0)
        .map(|d| WeightedCluster {
            cluster: l4_cluster(&d.destination, ns, port).into(),
            weight: if single { 100 } else { d.weight.unsigned_abs() },
            headers: HeaderRules::default(),
            unresolved: None,
        })
        .collect();
    let total = entries.iter().map(|e| e.weight).sum();
    WeightedClusters { entries, total }
}

/// The cluster of `d`; port 0 stands for "the listener's port", filled in per connection.
fn l4_cluster(d: &Destination, ns: &str, port: u16) -> String {
    let port = d
        .port
        .and_then(|p| u16::try_from(p.number).ok())
        .unwrap_or(port);
    cluster_name(port, d.subset.as_deref(), &host::resolve(&d.host, ns))
}

/// Whether a match entry applies to this proxy (`sourceLabels`, `sourceNamespace` and
/// `gateways` are decided when the configuration is built, as for HTTP rules).
fn applies(
    source_labels: &BTreeMap<String, String>,
    source_namespace: Option<&String>,
    scope: &ProxyScope,
) -> bool {
    source_labels
        .iter()
        .all(|(k, v)| scope.labels.get(k) == Some(v))
        && source_namespace.is_none_or(|ns| *ns == scope.namespace)
}

/// A match entry's `gateways` on a sidecar: absent, or naming `mesh`.
pub fn mesh_bound(gateways: &[String], _vs_namespace: &str) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| g == MESH_GATEWAY)
}

/// The L4 rules of mesh-bound VirtualServices (already filtered for visibility) for a
/// proxy in `scope`; `bound` says whether a match entry's `gateways` (of a VirtualService
/// in the given namespace) fit the proxy ([`mesh_bound`] for sidecars).
pub fn build(
    virtual_services: &[&Object<VirtualService>],
    scope: &ProxyScope,
    default_port: impl Fn(&str) -> Option<u16>,
    bound: impl Fn(&[String], &str) -> bool,
) -> Result<L4Routes, String> {
    let mut out = L4Routes::default();
    for vs in virtual_services {
        let ns = vs.metadata.namespace();
        let id = format!("{ns}/{}", vs.metadata.name);
        let hosts: Vec<String> = vs.spec.hosts.iter().map(|h| host::resolve(h, ns)).collect();
        let fault = vs
            .metadata
            .annotations
            .get(TCP_FAULT_ANNOTATION)
            .map(|t| parse_tcp_fault(t).map(TcpFault::from))
            .transpose()?;
        let port_for = |m: Option<u32>| {
            m.and_then(|p| u16::try_from(p).ok())
                .or_else(|| hosts.iter().find_map(|h| default_port(h)))
        };
        for (i, rule) in vs.spec.tcp.iter().enumerate() {
            let applicable: Vec<_> = rule
                .matches
                .iter()
                .filter(|m| {
                    applies(&m.source_labels, m.source_namespace.as_ref(), scope)
                        && bound(&m.gateways, ns)
                })
                .collect();
            if !rule.matches.is_empty() && applicable.is_empty() {
                continue;
            }
            let matches: Vec<L4Match> = applicable
                .iter()
                .map(|m| {
                    Ok(L4Match {
                        sni_hosts: Vec::new(),
                        destination_subnets: subnets(&m.destination_subnets)?,
                        port: m.port.and_then(|p| u16::try_from(p).ok()),
                    })
                })
                .collect::<Result<_, String>>()?;
            let port = port_for(rule.matches.iter().find_map(|m| m.port)).unwrap_or(0);
            out.tcp.push(Arc::new(L4Route {
                source: format!("{id} tcp[{i}]"),
                hosts: hosts.clone(),
                matches,
                clusters: weighted(&rule.route, ns, port),
                fault: fault.clone(),
            }));
        }
        for (i, rule) in vs.spec.tls.iter().enumerate() {
            let applicable: Vec<_> = rule
                .matches
                .iter()
                .filter(|m| {
                    applies(&m.source_labels, m.source_namespace.as_ref(), scope)
                        && bound(&m.gateways, ns)
                })
                .collect();
            if applicable.is_empty() {
                continue;
            }
            let matches: Vec<L4Match> = applicable
                .iter()
                .map(|m| {
                    Ok(L4Match {
                        sni_hosts: m.sni_hosts.iter().map(|s| s.to_ascii_lowercase()).collect(),
                        destination_subnets: subnets(&m.destination_subnets)?,
                        port: m.port.and_then(|p| u16::try_from(p).ok()),
                    })
                })
                .collect::<Result<_, String>>()?;
            let port = port_for(rule.matches.iter().find_map(|m| m.port)).unwrap_or(0);
            out.tls.push(Arc::new(L4Route {
                source: format!("{id} tls[{i}]"),
                hosts: hosts.clone(),
                matches,
                clusters: weighted(&rule.route, ns, port),
                fault: None,
            }));
        }
    }
    Ok(out)
}

fn subnets(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR block"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_port_subnet_and_sni() {
        let m = L4Match {
            sni_hosts: vec!["*.example.com".into()],
            destination_subnets: subnets(&["10.0.0.0/8".into()]).expect("ok"),
            port: Some(443),
        };
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(m.holds(Some("a.example.com"), ip("10.1.2.3"), 443));
        assert!(!m.holds(Some("a.example.org"), ip("10.1.2.3"), 443));
        assert!(!m.holds(Some("a.example.com"), ip("192.168.0.1"), 443));
        assert!(!m.holds(Some("a.example.com"), ip("10.1.2.3"), 8443));
    }
}
