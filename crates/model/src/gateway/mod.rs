//! Ingress gateways: the route tables of a proxy in the gateway role.
//!
//! As Istio's Pilot does for a `router` proxy: the Gateways whose `selector` matches the
//! proxy's labels give the servers (a port and the hosts it serves); each VirtualService
//! whose `gateways` names one of those Gateways contributes, for every host it shares
//! with a server, a virtual host on that server's port (HTTP and HTTPS servers); the
//! `tcp` and `tls` rules of those VirtualServices serve the TCP and TLS servers
//! ([`servers`]: what each port serves, and how it terminates TLS). A proxy labelled
//! with a Gateway API Gateway's name serves that Gateway's listeners and the routes
//! attached to them ([`kubernetes`]).

pub mod kubernetes;
pub mod secret_scope;
pub mod secrets;
pub mod servers;
pub mod status;

use std::collections::btree_map::Entry;
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
use crate::translate::gateway_api::Backends;
use crate::translate::http::{BoundVirtualService, domains, http_routes};
use crate::translate::mesh::TranslateError;
use crate::translate::scope::{ProxyScope, age, gateway_reference, selects, visible};
use servers::{GatewayPort, GatewayServer, Serves};

/// The Gateways selecting a proxy with `labels` (an empty selector selects every gateway
/// proxy), oldest first.
fn selecting<'r>(resources: &'r [Resource], scope: &ProxyScope) -> Vec<&'r Object<Gateway>> {
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
fn served_port(server: &Server, credentials: &servers::Credentials<'_>) -> Option<(u16, Serves)> {
    let port = server.port.as_ref()?;
    let number = u16::try_from(port.number).ok().filter(|n| *n != 0)?;
    servers::serves(server, credentials)
        .ok()
        .map(|s| (number, s))
}

/// One server a gateway proxy serves.
struct Served<'r> {
    /// The Gateway's (namespace, name).
    gateway: (String, String),
    /// The server, and its index in the Gateway's `servers`.
    server: &'r Server,
    index: usize,
    port: u16,
    serves: Serves,
}

/// The servers a gateway proxy serves, oldest Gateway first; a server whose port an
/// earlier server took for the other kind (TLS or plain text, or HTTP and TCP in plain
/// text) is left out, as Istio leaves it.
fn served<'r>(resources: &'r [Resource], scope: &ProxyScope) -> Vec<Served<'r>> {
    let mut kind: BTreeMap<u16, (bool, bool)> = BTreeMap::new();
    let mut out = Vec::new();
    // `credentialName`: a Secret in the gateway proxy's namespace, as Istio reads it.
    let credentials = |name: &str| secrets::credential(resources, &scope.namespace, name);
    for g in selecting(resources, scope) {
        for (index, server) in g.spec.servers.iter().enumerate() {
            let Some((port, serves)) = served_port(server, &credentials) else {
                continue;
            };
            let this = (
                serves.starts_with_tls(),
                matches!(serves, Serves::Http { .. }),
            );
            let first = *kind.entry(port).or_insert(this);
            // Among TLS servers SNI tells them apart; in plain text the first decides.
            if first.0 != this.0 || (!this.0 && first.1 != this.1) {
                continue;
            }
            out.push(Served {
                gateway: (g.metadata.namespace().to_string(), g.metadata.name.clone()),
                server,
                index,
                port,
                serves,
            });
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

/// A gateway proxy's part of the mesh.
pub(crate) struct GatewayMesh {
    /// What each port serves: its servers and the `tcp` and `tls` rules of the
    /// VirtualServices bound to them.
    pub ports: BTreeMap<u16, GatewayPort>,
    /// The HTTP route tables by port.
    pub http_routes: BTreeMap<u16, RouteTable>,
}

/// A gateway proxy's part of the mesh, for the `services` it sees; `default_port` gives a
/// destination host's only port, for L4 rules whose destinations name none.
pub(crate) fn translate(
    resources: &[Resource],
    services: &BTreeMap<String, Service>,
    scope: &ProxyScope,
    default_retry: &RetryPolicy,
    default_port: impl Fn(&str) -> Option<u16>,
) -> Result<GatewayMesh, TranslateError> {
    let served = served(resources, scope);
    let virtual_services = virtual_services(resources, scope);
    let mut ports =
        ports(&served, &virtual_services, scope, default_port).map_err(TranslateError::l4)?;
    let mut http_routes = route_tables(&served, &virtual_services, services, scope, default_retry)?;
    if let Some(gateway) = kubernetes::for_proxy(resources, scope) {
        let backends = Backends::new(resources, services, default_retry);
        let mut k = kubernetes::translate(resources, gateway, &backends);
        // A port an Istio Gateway selecting the same proxy took stays Istio's.
        for (port, served) in k.ports {
            if let Entry::Vacant(e) = ports.entry(port) {
                e.insert(served);
                if let Some(table) = k.http_routes.remove(&port) {
                    http_routes.insert(port, table);
                }
            }
        }
    }
    Ok(GatewayMesh { ports, http_routes })
}

fn ports(
    served: &[Served<'_>],
    virtual_services: &[&Object<VirtualService>],
    scope: &ProxyScope,
    default_port: impl Fn(&str) -> Option<u16>,
) -> Result<BTreeMap<u16, GatewayPort>, String> {
    let mut ports: BTreeMap<u16, GatewayPort> = BTreeMap::new();
    // Which gateways have a TCP or TLS server on each port, for the L4 rules.
    let mut l4_gateways: BTreeMap<u16, Vec<&(String, String)>> = BTreeMap::new();
    for s in served {
        let (ns, name) = &s.gateway;
        let name = match &s.server.name {
            Some(n) => format!("{ns}/{name} {n}"),
            None => format!("{ns}/{name} servers[{}]", s.index),
        };
        if !matches!(s.serves, Serves::Http { .. } | Serves::TerminatedHttp(_)) {
            let list = l4_gateways.entry(s.port).or_default();
            if !list.contains(&&s.gateway) {
                list.push(&s.gateway);
            }
        }
        ports
            .entry(s.port)
            .or_default()
            .servers
            .push(GatewayServer {
                name,
                hosts: s
                    .server
                    .hosts
                    .iter()
                    .map(|h| servers::server_host(h))
                    .collect(),
                serves: s.serves.clone(),
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
                    .any(|r| gateways.contains(&&gateway_reference(r, ns)))
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

/// A virtual host on `port` for the served name `name` (`*`: every host).
fn virtual_host(name: &str, port: u16, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: format!("{name}:{port}"),
        domains: if name == "*" {
            vec![name.to_string()]
        } else {
            domains(&[name.to_string()], port)
        },
        routes,
    }
}

/// The route tables (by server port) of a gateway proxy.
fn route_tables(
    served: &[Served<'_>],
    virtual_services: &[&Object<VirtualService>],
    services: &BTreeMap<String, Service>,
    scope: &ProxyScope,
    default_retry: &RetryPolicy,
) -> Result<BTreeMap<u16, RouteTable>, TranslateError> {
    let mut vhosts: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    // As Istio does for gateways, VirtualServices sharing a host on a port are merged:
    // their routes are concatenated, oldest VirtualService first.
    let mut index: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for s in served {
        let (port, gateway) = (s.port, &s.gateway);
        let table = vhosts.entry(port).or_default();
        match s.serves {
            // Every host of the server answers with the redirect, routes or not.
            Serves::Http {
                https_redirect: true,
            } => {
                for name in s.server.hosts.iter().map(|h| servers::server_host(h)) {
                    if let Entry::Vacant(e) = index.entry((port, name)) {
                        table.push(virtual_host(&e.key().1, port, vec![https_redirect_route()]));
                        e.insert(table.len() - 1);
                    }
                }
                continue;
            }
            Serves::Http { .. } | Serves::TerminatedHttp(_) => {}
            _ => continue,
        }
        for v in virtual_services.iter().filter(|v| binds(v, gateway)) {
            let vs_ns = v.metadata.namespace();
            let hosts: Vec<String> = v
                .spec
                .hosts
                .iter()
                .map(|h| host::resolve(h, vs_ns))
                .collect();
            let names: BTreeSet<String> = hosts
                .iter()
                .flat_map(|h| {
                    s.server
                        .hosts
                        .iter()
                        .filter_map(|sh| served_name(sh, &gateway.0, vs_ns, h))
                })
                .collect();
            if names.is_empty() {
                continue;
            }
            let bound = BoundVirtualService {
                object: v,
                hosts,
                gateway: Some(gateway.clone()),
            };
            let routes = http_routes(&bound, port, services, scope, default_retry)?;
            for name in names {
                match index.entry((port, name)) {
                    Entry::Occupied(e) => {
                        table[*e.get()].routes.extend(routes.iter().cloned());
                    }
                    Entry::Vacant(e) => {
                        table.push(virtual_host(&e.key().1, port, routes.clone()));
                        e.insert(table.len() - 1);
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
