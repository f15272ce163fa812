//! Ingress gateways: the route tables of a proxy in the gateway role.
//!
//! As Istio's Pilot does for a `router` proxy: the Gateways whose `selector` matches the
//! proxy's labels give the servers (a port and the hosts it serves); each VirtualService
//! whose `gateways` names one of those Gateways contributes, for every host it shares
//! with a server, a virtual host on that server's port. Only plain-text HTTP servers are
//! served (validation warns about the others).

use std::collections::{BTreeMap, BTreeSet};

use weft_api::networking::gateway::{Gateway, Server};
use weft_api::networking::virtual_service::VirtualService;
use weft_api::{Object, Resource};

use crate::host;
use crate::route::{RetryPolicy, RouteTable, VirtualHost};
use crate::service::Service;
use crate::translate::http::{BoundVirtualService, domains, http_routes};
use crate::translate::mesh::TranslateError;
use crate::translate::scope::{ProxyScope, age, gateway_reference, selects, visible};

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

/// The port a server is served on, when weft's gateway serves it (plain-text HTTP).
pub fn served_port(server: &Server) -> Option<u16> {
    let port = server.port.as_ref()?;
    let http = port
        .parsed_protocol()
        .is_some_and(|p| p.is_http() && !p.is_tls());
    u16::try_from(port.number).ok().filter(|n| http && *n != 0)
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
    let mut virtual_services: Vec<&Object<VirtualService>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::VirtualService(v) => Some(v),
            _ => None,
        })
        .filter(|v| visible(&v.spec.export_to, v.metadata.namespace(), &scope.namespace))
        .collect();
    virtual_services.sort_by_key(|v| age(v));

    let mut vhosts: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    // As Istio does for gateways, VirtualServices sharing a host on a port are merged:
    // their routes are concatenated, oldest VirtualService first.
    let mut index: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for g in selecting(resources, scope) {
        let gateway = (g.metadata.namespace().to_string(), g.metadata.name.clone());
        for server in &g.spec.servers {
            let Some(port) = served_port(server) else {
                continue;
            };
            for v in &virtual_services {
                let vs_ns = v.metadata.namespace();
                if !v
                    .spec
                    .gateways
                    .iter()
                    .any(|r| gateway_reference(r, vs_ns) == gateway)
                {
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
