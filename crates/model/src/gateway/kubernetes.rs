//! Gateway API Gateways (`gateway.networking.k8s.io`): which proxy serves a Gateway, which
//! routes attach to its listeners, and the servers and route tables that makes.
//!
//! - A Gateway is weft's when its `gatewayClassName` names a GatewayClass whose
//!   `controllerName` is weft's or Istio's, or one of the built-in classes `weft` and
//!   `istio` (as Istio installs `istio`). The proxy serving it is the gateway proxy in the
//!   Gateway's namespace labelled `gateway.networking.k8s.io/gateway-name: <name>` (the
//!   label Istio's automated deployment puts on the Deployment it creates).
//! - A route attaches to a listener when one of its `parentRefs` names the Gateway (and
//!   the listener, by `sectionName` and `port`, when given), the listener's
//!   `allowedRoutes` admit the route's kind and namespace, and the route's `hostnames`
//!   intersect the listener's `hostname` (a route without hostnames takes the
//!   listener's). The intersection is the host the route is served under: the narrower of
//!   the two names.
//! - HTTP listeners serve plain text; HTTPS listeners terminate TLS with the Secrets of
//!   `certificateRefs` (see [`super::secrets`]) and the certificate files of
//!   `tls.options` (`weft.dev/server-certificate`, `weft.dev/private-key`); TCP
//!   listeners send connections to their TCPRoutes, TLS listeners in Passthrough mode by
//!   SNI to their TLSRoutes. UDP is not served (UnsupportedProtocol).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_api::gateway_api::gateway::{
    BUILT_IN_CLASSES, CERTIFICATE_OPTION, Listener, PRIVATE_KEY_OPTION,
};
use weft_api::gateway_api::http_route::ParentReference;
use weft_api::gateway_api::{GROUP, Gateway, HttpRoute};
use weft_api::{Object, Resource};

use super::servers::{
    ClientCertificates, GatewayPort, GatewayServer, ServerCertificate, Serves, TerminateTls,
};
use super::virtual_host;
use crate::host;
use crate::l4::{L4Match, L4Route};
use crate::route::RouteTable;
use crate::translate::gateway_api::{Backends, all_routes, routes, weighted_backends};
use crate::translate::scope::{ProxyScope, age};

/// Why a listener is not served or a route not attached: the spec's condition reason and
/// a message.
pub type Refusal = (&'static str, String);

/// The listeners (by index) a route attaches to, with the host names served on each.
pub type Attached = Vec<(usize, Vec<String>)>;

/// The label naming the Gateway a gateway proxy serves.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// Why a Gateway is not weft's, or `Ok` when weft serves its class.
pub fn class_served(resources: &[Resource], class: &str) -> Result<(), String> {
    let object = resources.iter().find_map(|r| match r {
        Resource::GatewayClass(c) if c.metadata.name == class => Some(c),
        _ => None,
    });
    match object {
        Some(c) if c.spec.served() => Ok(()),
        Some(c) => Err(format!(
            "GatewayClass {class} belongs to controller {:?}, not weft's",
            c.spec.controller_name
        )),
        None if BUILT_IN_CLASSES.iter().any(|(n, _)| *n == class) => Ok(()),
        None => Err(format!("GatewayClass {class} does not exist")),
    }
}

/// Every Gateway API Gateway of a class weft serves, oldest first.
pub fn served_gateways(resources: &[Resource]) -> Vec<&Object<Gateway>> {
    let mut out: Vec<&Object<Gateway>> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::KubernetesGateway(g) => Some(g),
            _ => None,
        })
        .filter(|g| class_served(resources, &g.spec.gateway_class_name).is_ok())
        .collect();
    out.sort_by_key(|g| age(g));
    out
}

/// The Gateway the gateway proxy `scope` serves.
pub fn for_proxy<'r>(resources: &'r [Resource], scope: &ProxyScope) -> Option<&'r Object<Gateway>> {
    let name = scope.labels.get(GATEWAY_NAME_LABEL)?;
    served_gateways(resources)
        .into_iter()
        .find(|g| &g.metadata.name == name && g.metadata.namespace() == scope.namespace)
}

/// Why a listener's client certificate validation cannot be served, as the reason of
/// its `ResolvedRefs` condition (its `Accepted` is then `NoValidCACertificate`).
pub const CA_REFUSALS: [&str; 3] = [
    "InvalidCACertificateRef",
    "InvalidCACertificateKind",
    CA_REF_NOT_PERMITTED,
];
/// A CA bundle's ReferenceGrant is missing (`ResolvedRefs` reason `RefNotPermitted`).
pub const CA_REF_NOT_PERMITTED: &str = "CACertificateRefNotPermitted";

/// A listener's client certificate validation, from its Gateway's `spec.tls.frontend`.
pub struct Frontend {
    /// The CA bundle of the references that resolve (none: the listener is not served).
    pub bundle: Option<super::servers::Pem>,
    /// The first reference that does not resolve, with why.
    pub problem: Option<Refusal>,
    /// `AllowInsecureFallback`.
    pub insecure: bool,
}

/// The client certificate validation of `listener` (an HTTPS listener of `gateway`):
/// its port's `perPort` entry, else the default; `None` without one.
pub fn frontend_validation(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    listener: &Listener,
) -> Option<Frontend> {
    let v = gateway
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.frontend.as_ref())
        .and_then(|f| f.validation_for(i64::from(listener.port)))?;
    let (bundle, problem) = super::secrets::ca_bundle(
        resources,
        gateway.metadata.namespace(),
        &v.ca_certificate_refs,
    );
    Some(Frontend {
        bundle,
        problem,
        insecure: v.insecure_fallback(),
    })
}

/// The first of `listener`'s certificateRefs that does not resolve (a listener served
/// with the others reports it as `ResolvedRefs: False`).
pub fn certificate_problem(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    listener: &Listener,
) -> Option<Refusal> {
    let tls = listener.tls.as_ref()?;
    tls.certificate_refs.iter().find_map(|r| {
        super::secrets::certificate_ref(resources, gateway.metadata.namespace(), r).err()
    })
}

/// A CA bundle's refusal reason as [`listener_serves`] reports it.
fn ca_reason(reason: &'static str) -> &'static str {
    match reason {
        "RefNotPermitted" => CA_REF_NOT_PERMITTED,
        other => other,
    }
}

/// What a listener of `gateway` serves, or why it does not (the reason of its status);
/// certificates come from the `resources`' Secrets, client certificates are verified
/// by the CA bundles of the Gateway's `spec.tls.frontend` for the listener's port.
pub fn listener_serves(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    listener: &Listener,
) -> Result<Serves, Refusal> {
    let gateway_ns = gateway.metadata.namespace();
    match listener.protocol.as_str() {
        "HTTP" => Ok(Serves::Http {
            https_redirect: false,
        }),
        "TCP" => Ok(Serves::Tcp),
        "TLS" if listener.tls_mode() == Some("Passthrough") => Ok(Serves::Passthrough),
        "TLS" => Err((
            "UnsupportedProtocol",
            "TLS listeners are served in Passthrough mode (routed by TLSRoutes); to terminate TLS use an HTTPS listener".into(),
        )),
        "HTTPS" => {
            let Some(tls) = &listener.tls else {
                return Err((
                    "InvalidCertificateRef",
                    "an HTTPS listener needs tls".into(),
                ));
            };
            // The references that resolve are served; the first that does not is the
            // listener's (ResolvedRefs False), and its reason when none does.
            let mut certificates = Vec::new();
            let mut problem = None;
            for r in &tls.certificate_refs {
                match super::secrets::certificate_ref(resources, gateway_ns, r) {
                    Ok(c) => certificates.push(c),
                    Err(e) => {
                        problem.get_or_insert(e);
                    }
                }
            }
            let files = (
                tls.options.get(CERTIFICATE_OPTION),
                tls.options.get(PRIVATE_KEY_OPTION),
            );
            if let (Some(certificate), Some(key)) = files {
                certificates.push(ServerCertificate::files(certificate.clone(), key.clone()));
            }
            if let (true, Some(problem)) = (certificates.is_empty(), problem) {
                return Err(problem);
            }
            if certificates.is_empty() {
                return Err((
                    "InvalidCertificateRef",
                    format!(
                        "no certificate: name a Secret in certificateRefs, or files in tls.options {CERTIFICATE_OPTION} and {PRIVATE_KEY_OPTION}"
                    ),
                ));
            }
            let (clients, ca_certificates) = match frontend_validation(resources, gateway, listener) {
                None => (ClientCertificates::NotAsked, None),
                Some(Frontend { bundle: None, problem, .. }) => {
                    let (reason, why) = problem.unwrap_or((
                        "InvalidCACertificateRef",
                        "no CA bundle".into(),
                    ));
                    return Err((ca_reason(reason), why));
                }
                Some(Frontend { bundle, insecure, .. }) => (
                    match insecure {
                        true => ClientCertificates::Optional,
                        false => ClientCertificates::Required,
                    },
                    bundle,
                ),
            };
            Ok(Serves::TerminatedHttp(Arc::new(TerminateTls {
                certificates,
                clients,
                ca_certificates,
                ca_crl: None,
                istio_mutual: false,
                subject_alt_names: Vec::new(),
                verify_certificate_spki: Vec::new(),
                verify_certificate_hash: Vec::new(),
                min_version: 2,
                max_version: 3,
                cipher_suites: Vec::new(),
                alpn: ["h2", "http/1.1"].map(String::from).to_vec(),
            })))
        }
        other => Err((
            "UnsupportedProtocol",
            format!("{other} listeners are not served by weft (HTTP, HTTPS, TCP and TLS are)"),
        )),
    }
}

/// True when `parent` names `gateway` (a route in `route_ns`).
pub fn names_gateway(parent: &ParentReference, route_ns: &str, gateway: &Object<Gateway>) -> bool {
    parent.group() == GROUP
        && parent.kind() == "Gateway"
        && parent.name == gateway.metadata.name
        && parent.namespace.as_deref().unwrap_or(route_ns) == gateway.metadata.namespace()
}

/// The labels of namespace `ns` (with Kubernetes' `kubernetes.io/metadata.name`).
fn namespace_labels(resources: &[Resource], ns: &str) -> BTreeMap<String, String> {
    let mut labels = resources
        .iter()
        .find_map(|r| match r {
            Resource::Namespace(n) if n.metadata.name == ns => Some(n.metadata.labels.clone()),
            _ => None,
        })
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), ns.into());
    labels
}

/// Whether `listener` of the Gateway in `gateway_ns` admits a route of `kind` in `route_ns`.
fn admits(
    resources: &[Resource],
    listener: &Listener,
    gateway_ns: &str,
    kind: &str,
    route_ns: &str,
) -> bool {
    let kind_ok = listener
        .supported_kinds()
        .iter()
        .any(|(g, k)| g == GROUP && k == kind);
    let ns_ok = match listener.routes_from() {
        "All" => true,
        "Selector" => listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref())
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| s.matches(&namespace_labels(resources, route_ns))),
        _ => route_ns == gateway_ns,
    };
    kind_ok && ns_ok
}

/// The host names a route with `hostnames` is served under on `listener`: each
/// intersection, the narrower name (`*` for no names on either side).
pub fn intersect(listener: Option<&str>, hostnames: &[String]) -> Vec<String> {
    let l = listener.filter(|h| !h.is_empty()).unwrap_or("*");
    if hostnames.is_empty() {
        return vec![l.to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    for h in hostnames {
        let name = if host::covers(l, h) {
            h.clone()
        } else if host::covers(h, l) {
            l.to_string()
        } else {
            continue;
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Where one parent reference of a route attaches: the listeners (by index) with the
/// host names served on each, or why it does not (the spec's reason and a message).
pub fn attach(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    parent: &ParentReference,
    kind: &str,
    route_ns: &str,
    hostnames: &[String],
) -> Result<Attached, Refusal> {
    let named: Vec<(usize, &Listener)> = gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == l.port))
        .collect();
    if named.is_empty() {
        return Err((
            "NoMatchingParent",
            format!(
                "Gateway {}/{} has no listener {}",
                gateway.metadata.namespace(),
                gateway.metadata.name,
                match (&parent.section_name, parent.port) {
                    (Some(s), Some(p)) => format!("{s:?} on port {p}"),
                    (Some(s), None) => format!("{s:?}"),
                    (None, Some(p)) => format!("on port {p}"),
                    (None, None) => String::new(),
                }
            ),
        ));
    }
    let gateway_ns = gateway.metadata.namespace();
    let allowed: Vec<&(usize, &Listener)> = named
        .iter()
        .filter(|(_, l)| admits(resources, l, gateway_ns, kind, route_ns))
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!(
                "no listener of the Gateway admits a {kind} from namespace {route_ns} (allowedRoutes)"
            ),
        ));
    }
    let attached: Attached = allowed
        .iter()
        .map(|(i, l)| (*i, intersect(l.hostname.as_deref(), hostnames)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    if attached.is_empty() {
        return Err((
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames".into(),
        ));
    }
    Ok(attached)
}

/// What each listener of `gateway` serves, by index, with its port, or why it does not:
/// its protocol (as [`listener_serves`]), or a conflict with an earlier listener on the
/// same port (one port serves TLS, plain-text HTTP or plain-text TCP, as its first
/// served listener does: `ProtocolConflict`).
pub fn listener_states(
    resources: &[Resource],
    gateway: &Object<Gateway>,
) -> Vec<Result<(u16, Serves), Refusal>> {
    let mut taken: BTreeMap<u16, (bool, bool)> = BTreeMap::new();
    gateway
        .spec
        .listeners
        .iter()
        .map(|l| {
            let serves = listener_serves(resources, gateway, l)?;
            let port = u16::try_from(l.port)
                .map_err(|_| ("PortUnavailable", format!("{} is not a port", l.port)))?;
            let kind = (
                serves.starts_with_tls(),
                matches!(serves, Serves::Http { .. }),
            );
            if *taken.entry(port).or_insert(kind) != kind {
                return Err((
                    "ProtocolConflict",
                    format!(
                        "an earlier listener on port {port} serves another protocol (TLS, HTTP or TCP)"
                    ),
                ));
            }
            Ok((port, serves))
        })
        .collect()
}

/// Every route of `routes` attached to `gateway`, with where, oldest route first (a route
/// attached by several parent references comes once per reference).
pub fn attachments<'a>(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    routes: &[&'a Object<HttpRoute>],
) -> Vec<(&'a Object<HttpRoute>, Attached)> {
    let mut routes = routes.to_vec();
    routes.sort_by_key(|r| age(r));
    let mut out = Vec::new();
    for route in routes {
        let ns = route.metadata.namespace();
        for parent in route
            .spec
            .parent_refs
            .iter()
            .filter(|p| names_gateway(p, ns, gateway))
        {
            let hostnames = &route.spec.hostnames;
            if let Ok(attached) = attach(resources, gateway, parent, &route.kind, ns, hostnames) {
                out.push((route, attached));
            }
        }
    }
    out
}

/// A Gateway API gateway proxy's ports and route tables.
pub(crate) struct KubernetesGatewayMesh {
    pub ports: BTreeMap<u16, GatewayPort>,
    pub http_routes: BTreeMap<u16, RouteTable>,
}

/// The servers and HTTP route tables of `gateway` (the one this proxy serves).
pub(crate) fn translate(
    resources: &[Resource],
    gateway: &Object<Gateway>,
    backends: &Backends<'_>,
) -> KubernetesGatewayMesh {
    let id = format!("{}/{}", gateway.metadata.namespace(), gateway.metadata.name);
    let mut ports: BTreeMap<u16, GatewayPort> = BTreeMap::new();
    // The routes served under each (port, host name), oldest first.
    let mut by_host: BTreeMap<(u16, String), Vec<&Object<HttpRoute>>> = BTreeMap::new();
    // The listeners each (port, host name) came from.
    let mut listeners_of: BTreeMap<(u16, String), BTreeSet<usize>> = BTreeMap::new();
    // The listeners served, by index, with their port.
    let mut served: BTreeMap<usize, u16> = BTreeMap::new();
    let states = listener_states(resources, gateway);
    for ((i, l), state) in gateway.spec.listeners.iter().enumerate().zip(states) {
        let Ok((port, serves)) = state else {
            continue;
        };
        let hostname = l
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "*".into());
        ports.entry(port).or_default().servers.push(GatewayServer {
            name: format!("{id} {}", l.name),
            hosts: vec![hostname.clone()],
            serves,
        });
        served.insert(i, port);
        // A request for the listener's hostname is the listener's, routes or not (404
        // without): a less specific listener's routes do not answer it.
        if matches!(l.protocol.as_str(), "HTTP" | "HTTPS") {
            by_host.entry((port, hostname.clone())).or_default();
            listeners_of.entry((port, hostname)).or_default().insert(i);
        }
    }
    let all = all_routes(resources);
    let refs: Vec<&Object<HttpRoute>> = all.iter().map(|r| r.as_ref()).collect();
    for (route, attached) in attachments(resources, gateway, &refs) {
        for (listener, names) in attached {
            let Some(port) = served.get(&listener) else {
                continue;
            };
            match route.kind.as_str() {
                "TCPRoute" | "TLSRoute" => l4_routes(
                    route,
                    names,
                    *port,
                    backends,
                    ports.entry(*port).or_default(),
                ),
                _ => {
                    for name in names {
                        listeners_of
                            .entry((*port, name.clone()))
                            .or_default()
                            .insert(listener);
                        let list = by_host.entry((*port, name)).or_default();
                        if !list.iter().any(|r| std::ptr::eq(*r, route)) {
                            list.push(route);
                        }
                    }
                }
            }
        }
    }
    // The most specific SNI name first (exact before wildcard, longer before shorter),
    // then age, as the spec orders TLSRoute hostnames.
    for p in ports.values_mut() {
        p.tls_routes.sort_by_key(|r| {
            r.matches
                .iter()
                .flat_map(|m| &m.sni_hosts)
                .map(|h| (h.starts_with('*'), std::cmp::Reverse(h.len())))
                .min()
        });
    }
    let mut vhosts: BTreeMap<u16, Vec<crate::route::VirtualHost>> = BTreeMap::new();
    for ((port, name), attached) in &by_host {
        // The rules of the routes served under this name first, then (the spec's
        // hostname precedence) those of the routes the same listener serves under
        // wildcards covering it, the most specific wildcard first.
        let mut table = routes(attached, backends);
        if let Some(listener) = listener_for(gateway, &served, *port, name) {
            let mut wider: Vec<&String> = by_host
                .keys()
                .filter(|(p, wide)| {
                    p == port
                        && covers(wide, name)
                        && listeners_of
                            .get(&(*p, wide.clone()))
                            .is_some_and(|ls| ls.contains(&listener))
                })
                .map(|(_, wide)| wide)
                .collect();
            wider.sort_by_key(|w| std::cmp::Reverse(specificity(w)));
            let mut taken: Vec<&Object<HttpRoute>> = attached.clone();
            for wide in wider {
                let more: Vec<&Object<HttpRoute>> = by_host[&(*port, wide.clone())]
                    .iter()
                    .copied()
                    .filter(|r| !taken.iter().any(|t| std::ptr::eq(*t, *r)))
                    .collect();
                table.extend(routes(&more, backends));
                taken.extend(more);
            }
        }
        vhosts
            .entry(*port)
            .or_default()
            .push(virtual_host(name, *port, table));
    }
    KubernetesGatewayMesh {
        // Every HTTP listener's port has its (possibly empty) host; TCP and TLS ports none.
        http_routes: vhosts
            .into_iter()
            .map(|(port, table)| (port, RouteTable::new(port, table)))
            .collect(),
        ports,
    }
}

/// Whether the wildcard `wide` (`*`, `*.example.com`) covers the narrower `name`
/// (`a.example.com`, `*.a.example.com`).
fn covers(wide: &str, name: &str) -> bool {
    wide != name
        && (wide == "*"
            || wide
                .strip_prefix('*')
                .is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix)))
}

/// How specific a host name is: an exact name before any wildcard, a longer before a
/// shorter.
fn specificity(name: &str) -> (bool, usize) {
    (!name.starts_with('*'), name.len())
}

/// The HTTP listener on `port` a request for `name` belongs to: the most specific whose
/// hostname is `name` or covers it.
fn listener_for(
    gateway: &Object<Gateway>,
    served: &BTreeMap<usize, u16>,
    port: u16,
    name: &str,
) -> Option<usize> {
    served
        .iter()
        .filter(|(_, p)| **p == port)
        .filter_map(|(i, _)| {
            let l = &gateway.spec.listeners[*i];
            let host = l
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or("*");
            (matches!(l.protocol.as_str(), "HTTP" | "HTTPS")
                && (host == name || covers(host, name)))
            .then_some((specificity(host), *i))
        })
        .max_by_key(|(s, i)| (*s, std::cmp::Reverse(*i)))
        .map(|(_, i)| i)
}

/// The rules of a TCPRoute (every connection) or TLSRoute (by SNI: one rule per name
/// served, so names sort one by one) attached on `port`.
fn l4_routes(
    route: &Object<HttpRoute>,
    names: Vec<String>,
    port: u16,
    backends: &Backends<'_>,
    entry: &mut GatewayPort,
) {
    let tls = route.kind == "TLSRoute";
    let snis: Vec<Vec<String>> = if tls {
        names.into_iter().map(|n| vec![n]).collect()
    } else {
        vec![Vec::new()]
    };
    let ns = route.metadata.namespace();
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let clusters = weighted_backends(route, rule, backends);
        if clusters.total == 0 {
            continue;
        }
        for sni_hosts in &snis {
            let l4 = Arc::new(L4Route {
                source: format!("{} {ns}/{} rules[{i}]", route.kind, route.metadata.name),
                hosts: Vec::new(),
                matches: vec![L4Match {
                    sni_hosts: sni_hosts.clone(),
                    destination_subnets: Vec::new(),
                    port: Some(port),
                }],
                clusters: clusters.clone(),
                fault: None,
            });
            if tls {
                entry.tls_routes.push(l4);
            } else {
                entry.tcp.push(l4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hostnames_narrow_to_the_listeners() {
        let names = |l: Option<&str>, hs: &[&str]| {
            intersect(l, &hs.iter().map(|h| h.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(names(None, &[]), ["*"]);
        assert_eq!(names(Some("*.example.com"), &[]), ["*.example.com"]);
        assert_eq!(
            names(Some("*.example.com"), &["a.example.com", "b.other.org"]),
            ["a.example.com"]
        );
        assert_eq!(
            names(Some("a.example.com"), &["*.example.com"]),
            ["a.example.com"]
        );
        assert!(names(Some("a.example.com"), &["b.example.com"]).is_empty());
        assert_eq!(names(None, &["x.org"]), ["x.org"]);
    }
}
