//! HTTP route tables from VirtualServices: per port, a virtual host for each service
//! (the routes of the VirtualService owning its host, else a default route) and for each
//! VirtualService host no service declares. Match entries are filtered for the proxy and
//! port here, at configuration time, as Istio does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::gateway_api::HttpRoute;
use weft_api::networking::StringMatch;
use weft_api::networking::virtual_service::{self as vs, VirtualService};
use weft_api::{Object, Resource};

use super::action::action;
use super::gateway_api;
use super::mesh::{TranslateError, cluster_name};
use super::scope::{ProxyScope, age, gateway_reference, selects, visible};
use crate::host;
use crate::matcher::{NamedMatcher, RequestMatch, StringMatcher};
use crate::route::{
    Forward, HeaderRules, RetryPolicy, Route, RouteAction, RouteTable, VirtualHost,
    WeightedCluster, WeightedClusters,
};
use crate::service::Service;

/// A VirtualService with its hosts resolved, bound to the mesh or to one gateway.
pub(crate) struct BoundVirtualService<'r> {
    pub(crate) object: &'r Object<VirtualService>,
    pub(crate) hosts: Vec<String>,
    /// The gateway (namespace, name) whose routes these are; `None` for the mesh.
    pub(crate) gateway: Option<(String, String)>,
}

impl BoundVirtualService<'_> {
    fn id(&self) -> String {
        format!(
            "{}/{}",
            self.object.metadata.namespace(),
            self.object.metadata.name
        )
    }

    fn error(&self, field: String, message: String) -> TranslateError {
        TranslateError {
            resource: format!("VirtualService {}", self.id()),
            field,
            message,
        }
    }
}

/// Mesh-bound VirtualServices visible to the proxy, oldest first (Istio gives a host to
/// the oldest; namespace and name break ties).
pub(super) fn bound_virtual_services<'r>(
    resources: &'r [Resource],
    scope: &ProxyScope,
) -> Vec<BoundVirtualService<'r>> {
    let mut bound: Vec<BoundVirtualService<'r>> = resources
        .iter()
        .filter_map(|r| {
            if let Resource::VirtualService(v) = r {
                Some(v)
            } else {
                None
            }
        })
        .filter(|v| {
            v.spec.binds_to_mesh()
                && visible(&v.spec.export_to, v.metadata.namespace(), &scope.namespace)
        })
        .map(|v| BoundVirtualService {
            object: v,
            hosts: v
                .spec
                .hosts
                .iter()
                .map(|h| host::resolve(h, v.metadata.namespace()))
                .collect(),
            gateway: None,
        })
        .collect();
    bound.sort_by_key(|b| age(b.object));
    bound
}

pub(super) fn route_tables(
    bound: &[BoundVirtualService<'_>],
    gateway_routes: &[&Object<HttpRoute>],
    backends: &gateway_api::Backends<'_>,
    scope: &ProxyScope,
) -> Result<BTreeMap<u16, RouteTable>, TranslateError> {
    let (services, default_retry) = (backends.services, backends.default_retry);
    // Which VirtualService owns each host: exact hosts first, then the most specific wildcard.
    let owner = |hostname: &str| -> Option<usize> {
        bound
            .iter()
            .position(|v| v.hosts.iter().any(|h| h == hostname))
            .or_else(|| {
                bound
                    .iter()
                    .enumerate()
                    .flat_map(|(i, v)| v.hosts.iter().map(move |h| (i, h)))
                    .filter(|(_, h)| h.starts_with('*') && host::covers(h, hostname))
                    .max_by_key(|(_, h)| h.len())
                    .map(|(i, _)| i)
            })
    };

    let mut vhosts: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    let mut claimed: BTreeSet<(u16, String)> = BTreeSet::new();
    for service in services.values() {
        for port in service.ports.iter().filter(|p| p.protocol.is_http()) {
            // Gateway API routes attached to the Service (GAMMA) take its port.
            let attached =
                gateway_api::attached(gateway_routes, service, port.number, &scope.namespace);
            let routes = match owner(&service.hostname) {
                _ if !attached.is_empty() => gateway_api::routes(&attached, backends),
                Some(i) => http_routes(&bound[i], port.number, services, scope, default_retry)?,
                None => vec![default_route(&service.hostname, port.number, default_retry)],
            };
            // Clients may also address a service by its virtual IP, as Istio's domains allow.
            let mut names = host::aliases(&service.hostname, &scope.namespace);
            names.extend(
                service
                    .addresses
                    .iter()
                    .filter(|a| !a.contains('/'))
                    .cloned(),
            );
            let domains = domains(&names, port.number);
            claimed.insert((port.number, service.hostname.clone()));
            vhosts.entry(port.number).or_default().push(VirtualHost {
                name: format!("{}:{}", service.hostname, port.number),
                domains,
                routes,
            });
        }
    }
    // VirtualService hosts that no service declares (external names, wildcards) still
    // get virtual hosts, on every HTTP port in use (port 80 when there is none).
    let mut ports: BTreeSet<u16> = vhosts.keys().copied().collect();
    if ports.is_empty() {
        ports.insert(80);
    }
    for v in bound {
        for h in &v.hosts {
            if services.contains_key(h) {
                continue;
            }
            for port in &ports {
                if !claimed.insert((*port, h.clone())) {
                    continue;
                }
                let routes = http_routes(v, *port, services, scope, default_retry)?;
                vhosts.entry(*port).or_default().push(VirtualHost {
                    name: format!("{h}:{port}"),
                    domains: domains(std::slice::from_ref(h), *port),
                    routes,
                });
            }
        }
    }
    Ok(vhosts
        .into_iter()
        .map(|(port, vhs)| (port, RouteTable::new(port, vhs)))
        .collect())
}

/// Every name of `names` bare and with `:port`, as a virtual host's domains.
pub(crate) fn domains(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in names {
        out.push(n.clone());
        out.push(format!("{n}:{port}"));
    }
    out
}

fn default_route(hostname: &str, port: u16, default_retry: &RetryPolicy) -> Route {
    let cluster: Arc<str> = cluster_name(port, None, hostname).into();
    Route {
        name: "default".into(),
        source: None,
        matches: Vec::new(),
        action: Arc::new(RouteAction::Forward(Forward {
            clusters: WeightedClusters {
                entries: vec![WeightedCluster {
                    cluster,
                    weight: 100,
                    headers: HeaderRules::default(),
                    unresolved: None,
                }],
                total: 100,
            },
            rewrite: None,
            timeout: None,
            retry: default_retry.clone(),
            fault: None,
            mirrors: Vec::new(),
            headers: HeaderRules::default(),
            cors: None,
        })),
    }
}

/// The routes of `v` for a listener on `port`, as Istio emits them: match entries
/// that do not apply to this proxy or port are dropped, and nothing is emitted
/// after the first catch-all.
pub(crate) fn http_routes(
    v: &BoundVirtualService<'_>,
    port: u16,
    services: &BTreeMap<String, Service>,
    scope: &ProxyScope,
    default_retry: &RetryPolicy,
) -> Result<Vec<Route>, TranslateError> {
    let ns = v.object.metadata.namespace();
    let mut routes = Vec::new();
    for (i, rule) in v.object.spec.http.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        let applicable: Vec<&vs::HttpMatchRequest> = rule
            .matches
            .iter()
            .filter(|m| applies(m, port, scope, v))
            .collect();
        if !rule.matches.is_empty() && applicable.is_empty() {
            continue;
        }
        let matches = applicable
            .iter()
            .map(|m| compile_match(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| v.error(format!("{path}.match"), e))?;
        let catch_all = matches.is_empty() || matches.iter().any(RequestMatch::is_catch_all);
        let action = action(rule, ns, port, services, default_retry)
            .map_err(|e| v.error(path.clone(), e))?;
        routes.push(Route {
            name: rule
                .name
                .clone()
                .unwrap_or_else(|| format!("{}.{i}", v.object.metadata.name)),
            source: Some(v.id()),
            matches: if catch_all { Vec::new() } else { matches },
            action: Arc::new(action),
        });
        if catch_all {
            break;
        }
    }
    Ok(routes)
}

/// Whether a match entry applies to this proxy and port (`sourceLabels`,
/// `sourceNamespace`, `gateways` and `port` are decided at configuration time).
fn applies(
    m: &vs::HttpMatchRequest,
    port: u16,
    scope: &ProxyScope,
    v: &BoundVirtualService<'_>,
) -> bool {
    let gateway_fits = m.gateways.is_empty()
        || match &v.gateway {
            None => m.gateways.iter().any(|g| g == vs::MESH_GATEWAY),
            Some(bound) => m
                .gateways
                .iter()
                .any(|g| gateway_reference(g, v.object.metadata.namespace()) == *bound),
        };
    m.port.is_none_or(|p| p == u32::from(port))
        && selects(&m.source_labels, &scope.labels)
        && m.source_namespace
            .as_ref()
            .is_none_or(|ns| *ns == scope.namespace)
        && gateway_fits
}

fn compile_match(m: &vs::HttpMatchRequest) -> Result<RequestMatch, String> {
    let opt = |s: &Option<StringMatch>, ignore_case| {
        s.as_ref()
            .map(|s| StringMatcher::compile(s, ignore_case))
            .transpose()
    };
    let named =
        |map: &BTreeMap<String, StringMatch>, lower: bool| -> Result<Vec<NamedMatcher>, String> {
            map.iter()
                .filter(|(k, _)| {
                    !(lower && matches!(k.as_str(), "uri" | "scheme" | "method" | "authority"))
                })
                .map(|(k, s)| {
                    Ok(NamedMatcher {
                        // Claim names are case-sensitive, header names are not.
                        name: if lower && !vs::is_routing_claim(k) {
                            k.to_ascii_lowercase()
                        } else {
                            k.clone()
                        },
                        matcher: StringMatcher::compile(s, false)?,
                    })
                })
                .collect()
        };
    Ok(RequestMatch {
        name: m.name.clone(),
        uri: opt(&m.uri, m.ignore_uri_case)?,
        ignore_uri_case: m.ignore_uri_case,
        scheme: opt(&m.scheme, false)?,
        method: opt(&m.method, false)?,
        authority: opt(&m.authority, false)?,
        headers: named(&m.headers, true)?,
        without_headers: named(&m.without_headers, true)?,
        query_params: named(&m.query_params, false)?,
    })
}
