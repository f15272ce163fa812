//! Ingress gateways: the route tables of a proxy in the gateway role.
//!
//! As Istio's Pilot does for a `router` proxy: the Gateways whose `selector` matches the
//! proxy's labels give the servers (a port and the hosts it serves); each VirtualService
//! whose `gateways` names one of those Gateways contributes, for every host it shares
//! with a server, a virtual host on that server's port (HTTP and HTTPS servers); the
//! `tcp` and `tls` rules of those VirtualServices serve the TCP and TLS servers
//! ([`servers`]: what each port serves, and how it terminates TLS).

pub mod servers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::networking::gateway::{Gateway, Server};
use weft_api::networking::virtual_service::VirtualService;
use weft_api::{Object, Resource};

use crate::host;
use crate::route::{
    HeaderOps, Redirect, RedirectPort, RetryPolicy, Route, RouteAction, RouteTable, VirtualHost,
};
use crate::service::Service;
use crate::translate::http::{BoundVirtualService, domains, http_routes};
use crate::translate::mesh::TranslateError;
use crate::translate::scope::{ProxyScope, age, gateway_reference, selects, visible};
use servers::{GatewayPort, GatewayServer, Serves};

/// The Gateways selecting a proxy with `labels` (an empty selector selects every gateway
/// proxy), oldest first.
pub fn selecting<'r>(resources: &'r [Resource], scope: &ProxyScope) -> Vec<&'r Object<Gateway>> {
    let mut gateways: Vec<&Object<Gateway>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Gateway(g) => Some(g),
            _ => None,
        })
        .filter(|g| selects(&g.spec.selector, &scope.labels))
        .collect();
    gateways.sort_by_key(|g| age(g));
    gateways
}

/// The port a server is served on and what it serves there, when weft's gateway serves
/// it.
pub fn served_port(server: &Server) -> Option<(u16, Serves)> {
    let port = server.port.as_ref()?;
    let number = u16::try_from(port.number).ok().filter(|n| *n != 0)?;
    servers::serves(server).ok().map(|s| (number, s))
}

/// Whether connections to a server start with TLS.
fn starts_with_tls(serves: &Serves) -> bool {
    !matches!(serves, Serves::Http { .. } | Serves::Tcp)
}

/// The servers a gateway proxy serves: (Gateway, server) pairs with their port and what
/// they serve, oldest Gateway first; a server whose port an earlier server took for the
/// other kind (TLS or plain text, or HTTP and TCP in plain text) is left out, as Istio
/// leaves it.
fn served<'r>(
    resources: &'r [Resource],
    scope: &ProxyScope,
) -> Vec<(&'r Object<Gateway>, &'r Server, u16, Serves)> {
    let mut kind: BTreeMap<u16, (bool, bool)> = BTreeMap::new();
    let mut out = Vec::new();
    for g in selecting(resources, scope) {
        for server in &g.spec.servers {
            let Some((port, serves)) = served_port(server) else {
                continue;
            };
            let this = (
                starts_with_tls(&serves),
                matches!(serves, Serves::Http { .. }),
            );
            let first = *kind.entry(port).or_insert(this);
            // Among TLS servers SNI tells them apart; in plain text the first decides.
            if first.0 != this.0 || (!this.0 && first.1 != this.1) {
                continue;
            }
            out.push((g, server, port, serves));
        }
    }
    out
}

/// Whether `vs` is bound to `gateway` (`namespace`, `name`).
fn binds(vs: &Object<VirtualService>, gateway: &(String, String)) -> bool {
    let vs_ns = vs.metadata.namespace();
    vs.spec
        .gateways
        .iter()
        .any(|r| gateway_reference(r, vs_ns) == *gateway)
}

/// The VirtualServices a gateway proxy in `scope` may apply, oldest first.
fn virtual_services<'r>(
    resources: &'r [Resource],
    scope: &ProxyScope,
) -> Vec<&'r Object<VirtualService>> {
    let mut out: Vec<&Object<VirtualService>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::VirtualService(v) => Some(v),
            _ => None,
        })
        .filter(|v| visible(&v.spec.export_to, v.metadata.namespace(), &scope.namespace))
        .collect();
    out.sort_by_key(|v| age(v));
    out
}

/// What each port of a gateway proxy serves: its servers and the `tcp` and `tls` rules
/// of the VirtualServices bound to them. `default_port` gives a destination host's only
/// port, for rules whose destinations name none.
pub fn ports(
    resources: &[Resource],
    scope: &ProxyScope,
    default_port: impl Fn(&str) -> Option<u16>,
) -> Result<BTreeMap<u16, GatewayPort>, String> {
    let virtual_services = virtual_services(resources, scope);
    let mut ports: BTreeMap<u16, GatewayPort> = BTreeMap::new();
    // Which gateways have a TCP or TLS server on each port, for the L4 rules.
    let mut l4_gateways: BTreeMap<u16, Vec<(String, String)>> = BTreeMap::new();
    for (g, server, port, serves) in served(resources, scope) {
        let gateway = (g.metadata.namespace().to_string(), g.metadata.name.clone());
        let index = g.spec.servers.iter().position(|s| std::ptr::eq(s, server));
        let name = match (&server.name, index) {
            (Some(n), _) => format!("{}/{} {n}", gateway.0, gateway.1),
            (None, i) => format!("{}/{} servers[{}]", gateway.0, gateway.1, i.unwrap_or(0)),
        };
        let entry = ports.entry(port).or_default();
        entry.tls = starts_with_tls(&serves);
        if !matches!(serves, Serves::Http { .. } | Serves::TerminatedHttp(_)) {
            let list = l4_gateways.entry(port).or_default();
            if !list.contains(&gateway) {
                list.push(gateway.clone());
            }
        }
        entry.servers.push(GatewayServer {
            name,
            hosts: server
                .hosts
                .iter()
                .map(|h| servers::server_host(h))
                .collect(),
            serves,
        });
    }
    for (port, gateways) in l4_gateways {
        let bound: Vec<&Object<VirtualService>> = virtual_services
            .iter()
            .copied()
            .filter(|v| gateways.iter().any(|g| binds(v, g)))
            .collect();
        // A match entry's own `gateways` must name one of this port's gateways.
        let fits = |list: &[String], ns: &str| {
            list.is_empty()
                || list
                    .iter()
                    .any(|r| gateways.contains(&gateway_reference(r, ns)))
        };
        let rules = crate::l4::build(&bound, scope, &default_port, fits)?;
        let entry = ports.entry(port).or_default();
        entry.tcp = rules.tcp;
        entry.tls_routes = rules.tls;
    }
    Ok(ports)
}

/// The route answering every request of a server with `httpsRedirect`: a 301 to the
/// same host and path over `https` (Envoy's `require_tls: ALL`).
fn https_redirect_route() -> Route {
    Route {
        name: "https-redirect".into(),
        source: None,
        matches: Vec::new(),
        action: Arc::new(RouteAction::Redirect(Redirect {
            path: None,
            prefix_rewrite: None,
            authority: None,
            port: Some(RedirectPort::UnlessHttpDefault),
            scheme: Some("https".into()),
            status: 301,
            headers: HeaderOps::default(),
        })),
    }
}

/// The name a VirtualService host is served under by a server host
/// (`[namespace/]host`, `*/` or `./` for the namespace): the narrower of the two.
fn served_name(server_host: &str, gateway_ns: &str, vs_ns: &str, vs_host: &str) -> Option<String> {
    let (ns, pattern) = server_host.split_once('/').unwrap_or(("*", server_host));
    let ns_fits = match ns {
        "*" => true,
        "." => vs_ns == gateway_ns,
        other => vs_ns == other,
    };
    let pattern = pattern.to_ascii_lowercase();
    if !ns_fits {
        None
    } else if host::covers(&pattern, vs_host) {
        Some(vs_host.to_string())
    } else if host::covers(vs_host, &pattern) {
        Some(pattern)
    } else {
        None
    }
}

/// The route tables (by server port) of a gateway proxy.
pub(crate) fn route_tables(
    resources: &[Resource],
    services: &BTreeMap<String, Service>,
    scope: &ProxyScope,
    default_retry: &RetryPolicy,
) -> Result<BTreeMap<u16, RouteTable>, TranslateError> {
    let virtual_services = virtual_services(resources, scope);
    let mut vhosts: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    // As Istio does for gateways, VirtualServices sharing a host on a port are merged:
    // their routes are concatenated, oldest VirtualService first.
    let mut index: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for (g, server, port, serves) in served(resources, scope) {
        let gateway = (g.metadata.namespace().to_string(), g.metadata.name.clone());
        match serves {
            Serves::Http {
                https_redirect: true,
            } => {
                // Every host of the server answers with the redirect, routes or not.
                let table = vhosts.entry(port).or_default();
                for name in server.hosts.iter().map(|h| servers::server_host(h)) {
                    if index.contains_key(&(port, name.clone())) {
                        continue;
                    }
                    index.insert((port, name.clone()), table.len());
                    table.push(VirtualHost {
                        name: format!("{name}:{port}"),
                        domains: if name == "*" {
                            vec![name.clone()]
                        } else {
                            domains(std::slice::from_ref(&name), port)
                        },
                        routes: vec![https_redirect_route()],
                    });
                }
                continue;
            }
            Serves::Http { .. } | Serves::TerminatedHttp(_) => {}
            _ => continue,
        }
        {
            for v in &virtual_services {
                let vs_ns = v.metadata.namespace();
                if !binds(v, &gateway) {
                    continue;
                }
                let hosts: Vec<String> = v
                    .spec
                    .hosts
                    .iter()
                    .map(|h| host::resolve(h, vs_ns))
                    .collect();
                let bound = BoundVirtualService {
                    object: v,
                    hosts: hosts.clone(),
                    gateway: Some(gateway.clone()),
                };
                let names: BTreeSet<String> = hosts
                    .iter()
                    .flat_map(|h| {
                        server
                            .hosts
                            .iter()
                            .filter_map(|sh| served_name(sh, &gateway.0, vs_ns, h))
                    })
                    .collect();
                if names.is_empty() {
                    continue;
                }
                let routes = http_routes(&bound, port, services, scope, default_retry)?;
                let table = vhosts.entry(port).or_default();
                for name in names {
                    match index.get(&(port, name.clone())) {
                        Some(&i) => table[i].routes.extend(routes.iter().cloned()),
                        None => {
                            index.insert((port, name.clone()), table.len());
                            let domains = if name == "*" {
                                vec![name.clone()]
                            } else {
                                domains(std::slice::from_ref(&name), port)
                            };
                            table.push(VirtualHost {
                                name: format!("{name}:{port}"),
                                domains,
                                routes: routes.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(vhosts
        .into_iter()
        .map(|(port, vhs)| (port, RouteTable::new(port, vhs)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts_narrow_virtual_service_hosts() {
        assert_eq!(
            served_name("*", "gw", "default", "bff.example.com").as_deref(),
            Some("bff.example.com")
        );
        assert_eq!(
            served_name("*.example.com", "gw", "default", "*").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(served_name("shop/*", "gw", "default", "a.b"), None);
        assert_eq!(
            served_name("./*", "default", "default", "a.b").as_deref(),
            Some("a.b")
        );
        assert_eq!(
            served_name("a.example.com", "gw", "default", "b.example.com"),
            None
        );
    }
}
