//! The translation from Istio resources to the mesh model one proxy executes.
//!
//! Pure: resources and the proxy's scope in, a [`Mesh`] out. Mirrors what Istio's
//! Pilot does for a sidecar: services from ServiceEntries, clusters named
//! `outbound|port|subset|host` from DestinationRules, and per-port route tables
//! from VirtualServices (or a default route when none applies).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use weft_api::networking::destination_rule::DestinationRule;
use weft_api::networking::service_entry::{Location, Resolution as ApiResolution, ServiceEntry};
use weft_api::networking::virtual_service::{self as vs, HttpRoute, VirtualService};
use weft_api::networking::workload_entry::WorkloadEntry;
use weft_api::networking::{Destination, Percent, StringMatch};
use weft_api::validate::checks::GRPC_STATUS_NAMES;
use weft_api::{Object, Resource};

use crate::host;
use crate::matcher::{NamedMatcher, Regex, RequestMatch, StringMatcher};
use crate::policy::{self, ClusterPolicy};
use crate::route::*;
use crate::service::{Endpoint, EndpointAddress, Protocol, Resolution, Service, ServicePort};

/// The namespace whose DestinationRules apply mesh-wide, as in Istio.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Who the configuration is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyScope {
    /// The proxy's namespace (short names and `exportTo` are relative to it).
    pub namespace: String,
    /// The proxy's workload labels (for `sourceLabels` and `workloadSelector`).
    pub labels: BTreeMap<String, String>,
    /// A gateway proxy (Istio's `router`): its routes come from the Gateways selecting
    /// it and the VirtualServices bound to them, not from mesh-bound VirtualServices.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
}

impl Default for ProxyScope {
    fn default() -> Self {
        ProxyScope {
            namespace: weft_api::meta::DEFAULT_NAMESPACE.to_string(),
            labels: BTreeMap::new(),
            gateway: false,
        }
    }
}

/// An upstream cluster: one service port, optionally narrowed to a subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// `outbound|port|subset|host`.
    pub name: Arc<str>,
    /// Service host.
    pub service: String,
    /// Service port.
    pub port: u16,
    /// Subset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Protocol of the port.
    pub protocol: Protocol,
    /// Endpoints (the service's, filtered by the subset's labels), with the port to dial.
    pub endpoints: Vec<ClusterEndpoint>,
    /// Policy.
    pub policy: ClusterPolicy,
    /// Who may serve it over mesh mTLS (secure naming): the ServiceEntry's
    /// `subjectAltNames`, else the service accounts of the service's workloads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<ServerIdentity>,
}

/// A server identity a client sidecar accepts for a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerIdentity {
    /// A service account, in the client's trust domain.
    Account {
        /// Namespace.
        namespace: String,
        /// Service account.
        service_account: String,
    },
    /// An exact URI SAN (`spiffe://...`).
    Uri(String),
}

/// An endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEndpoint {
    /// Address.
    pub address: EndpointAddress,
    /// Port to dial.
    pub port: u16,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Weight.
    pub weight: u32,
    /// Who runs it, when it is a registered workload (telemetry labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Arc<crate::service::WorkloadInfo>>,
    /// It runs a sidecar (label `security.istio.io/tlsMode: istio`) whose PeerAuthentication
    /// does not DISABLE mTLS on this port: auto mTLS sends it mutual TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mesh_tls: bool,
}

/// The label that marks an endpoint with a sidecar that terminates mesh mTLS (Istio's).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Everything one proxy needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Mesh {
    /// Services by host.
    pub services: BTreeMap<String, Service>,
    /// Clusters by name.
    pub clusters: BTreeMap<Arc<str>, Arc<Cluster>>,
    /// HTTP route tables by port.
    pub http_routes: BTreeMap<u16, RouteTable>,
    /// TCP and TLS rules.
    pub l4: crate::l4::L4Routes,
    /// The AuthorizationPolicies that apply to this proxy.
    pub authz: crate::authz::Authz,
    /// The RateLimits this proxy enforces.
    pub rate_limits: Vec<crate::rate_limit::Limit>,
    /// The PeerAuthentication mode of this proxy's own workload.
    pub peer_authn: crate::peer_authn::PeerAuthn,
}

/// Builds the cluster name Istio uses.
pub fn cluster_name(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// Why a set of resources could not be translated (validation should have caught it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{resource}: {field}: {message}")]
pub struct TranslateError {
    /// `Kind namespace/name`.
    pub resource: String,
    /// Field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// True when a resource of `ns` with `export_to` is visible from `scope_ns`.
pub fn visible(export_to: &[String], ns: &str, scope_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || (e == "." && ns == scope_ns) || (e != "~" && e == scope_ns))
}

/// Translates `resources` for a proxy in `scope`.
pub fn build(resources: &[Resource], scope: &ProxyScope) -> Result<Mesh, TranslateError> {
    let mut mesh = Mesh::default();
    let workload_entries: Vec<&Object<WorkloadEntry>> = resources
        .iter()
        .filter_map(|r| {
            if let Resource::WorkloadEntry(w) = r {
                Some(w)
            } else {
                None
            }
        })
        .collect();
    for r in resources {
        if let Resource::ServiceEntry(se) = r {
            if visible(
                &se.spec.export_to,
                se.metadata.namespace(),
                &scope.namespace,
            ) {
                for service in services_of(se, &workload_entries) {
                    mesh.services
                        .entry(service.hostname.clone())
                        .or_insert(service);
                }
            }
        }
    }
    let rules: Vec<&Object<DestinationRule>> = resources
        .iter()
        .filter_map(|r| {
            if let Resource::DestinationRule(d) = r {
                Some(d)
            } else {
                None
            }
        })
        .filter(|d| visible(&d.spec.export_to, d.metadata.namespace(), &scope.namespace))
        .filter(|d| {
            d.spec
                .workload_selector
                .as_ref()
                .is_none_or(|s| selects(&s.match_labels, &scope.labels))
        })
        .collect();
    let peers = crate::peer_authn::PeerPolicies::new(resources);
    for service in mesh.services.values() {
        // Resolved once per endpoint with a sidecar (not per port and subset).
        let endpoint_peers: Vec<Option<crate::peer_authn::PeerAuthn>> = service
            .endpoints
            .iter()
            .map(|e| {
                let sidecar = e.labels.get(TLS_MODE_LABEL).is_some_and(|m| m == "istio");
                let namespace = e
                    .workload
                    .as_ref()
                    .map_or(service.namespace.as_str(), |w| w.namespace.as_str());
                sidecar.then(|| peers.resolve(namespace, &e.labels))
            })
            .collect();
        let identities = server_identities(service);
        let rule = destination_rule_for(&rules, service, scope);
        for port in &service.ports {
            let top = rule.and_then(|r| r.spec.traffic_policy.as_ref());
            // A DestinationRule's health check annotation overrides the ServiceEntry's.
            let check = rule
                .and_then(|r| health_check_of(&r.metadata.annotations))
                .or_else(|| service.health_check.clone());
            let with_check = |mut p: ClusterPolicy| {
                p.health_check = check.clone();
                p
            };
            let default = cluster(
                service,
                port,
                None,
                with_check(policy::merge(top, None, port.number)),
                &endpoint_peers,
                &identities,
            );
            mesh.clusters
                .insert(default.name.clone(), Arc::new(default));
            for subset in rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default() {
                if rule
                    .and_then(|r| r.spec.subset(&subset.name))
                    .is_some_and(|first| !std::ptr::eq(first, subset))
                {
                    continue;
                }
                let merged = with_check(policy::merge(
                    top,
                    subset.traffic_policy.as_ref(),
                    port.number,
                ));
                let c = cluster(
                    service,
                    port,
                    Some((&subset.name, &subset.labels)),
                    merged,
                    &endpoint_peers,
                    &identities,
                );
                mesh.clusters.insert(c.name.clone(), Arc::new(c));
            }
        }
    }
    mesh.peer_authn = peers.resolve(&scope.namespace, &scope.labels);
    mesh.authz = crate::authz::build(resources, scope);
    mesh.rate_limits = crate::rate_limit::build(resources, scope);
    if scope.gateway {
        mesh.http_routes = crate::gateway::route_tables(resources, &mesh.services, scope)?;
        return Ok(mesh);
    }
    let bound = bound_virtual_services(resources, scope);
    mesh.http_routes = route_tables(&bound, &mesh.services, scope)?;
    let objects: Vec<&Object<VirtualService>> = bound.iter().map(|b| b.object).collect();
    let single_port = |h: &str| {
        mesh.services.get(h).and_then(|s| match s.ports.as_slice() {
            [only] => Some(only.number),
            _ => None,
        })
    };
    mesh.l4 = crate::l4::build(&objects, scope, single_port).map_err(|message| TranslateError {
        resource: "VirtualService".into(),
        field: "spec.tcp/tls".into(),
        message,
    })?;
    Ok(mesh)
}

fn health_check_of(
    annotations: &BTreeMap<String, String>,
) -> Option<weft_api::extensions::HealthCheck> {
    annotations
        .get(weft_api::extensions::HEALTH_CHECK_ANNOTATION)
        .and_then(|t| weft_api::extensions::parse_health_check(t).ok())
}

pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn services_of(
    se: &Object<ServiceEntry>,
    workload_entries: &[&Object<WorkloadEntry>],
) -> Vec<Service> {
    let ns = se.metadata.namespace();
    let ports: Vec<ServicePort> = se
        .spec
        .ports
        .iter()
        .map(|p| ServicePort {
            number: u16::try_from(p.number).unwrap_or_default(),
            name: p.name.clone(),
            protocol: Protocol::parse(Some(&p.protocol), Some(&p.name)),
            target_port: u16::try_from(p.target_port).ok().filter(|t| *t != 0),
        })
        .collect();
    let endpoints: Vec<Endpoint> = match &se.spec.workload_selector {
        Some(selector) => workload_entries
            .iter()
            .filter(|w| w.metadata.namespace() == ns && selects(&selector.labels, &w.spec.labels))
            .map(|w| {
                let mut e = endpoint(&w.spec);
                e.workload = Some(Arc::new(crate::service::WorkloadInfo::new(
                    &w.metadata.name,
                    w.metadata.namespace(),
                    w.spec.service_account.as_deref().unwrap_or_default(),
                    &w.spec.labels,
                )));
                e
            })
            .collect(),
        None => se.spec.endpoints.iter().map(endpoint).collect(),
    };
    let resolution = match se.spec.resolution {
        ApiResolution::None => Resolution::None,
        ApiResolution::Static => Resolution::Static,
        ApiResolution::Dns => Resolution::Dns,
        ApiResolution::DnsRoundRobin => Resolution::DnsRoundRobin,
        ApiResolution::DynamicDns => Resolution::DynamicDns,
    };
    // With DNS resolution and no endpoints, Istio resolves the host itself.
    let resolves_host = endpoints.is_empty()
        && se.spec.workload_selector.is_none()
        && matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    se.spec
        .hosts
        .iter()
        .map(|h| Service {
            hostname: h.to_ascii_lowercase(),
            namespace: ns.to_string(),
            ports: ports.clone(),
            endpoints: if resolves_host && !h.starts_with('*') {
                vec![Endpoint {
                    address: EndpointAddress::Dns(h.to_ascii_lowercase()),
                    ports: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    weight: 1,
                    locality: None,
                    service_account: None,
                    workload: None,
                }]
            } else {
                endpoints.clone()
            },
            resolution,
            mesh_internal: se.spec.location == Location::MeshInternal,
            addresses: se.spec.addresses.clone(),
            source: format!("{ns}/{}", se.metadata.name),
            subject_alt_names: se.spec.subject_alt_names.clone(),
            health_check: health_check_of(&se.metadata.annotations),
        })
        .collect()
}

fn endpoint(w: &WorkloadEntry) -> Endpoint {
    let address = if let Some(path) = w.address.strip_prefix("unix://") {
        EndpointAddress::Unix(path.to_string())
    } else if let Ok(ip) = w.address.parse::<IpAddr>() {
        EndpointAddress::Ip(ip)
    } else {
        EndpointAddress::Dns(w.address.clone())
    };
    Endpoint {
        address,
        ports: w
            .ports
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
            .collect(),
        labels: w.labels.clone(),
        weight: if w.weight == 0 { 1 } else { w.weight },
        locality: w.locality.clone().filter(|l| !l.is_empty()),
        service_account: w.service_account.clone().filter(|s| !s.is_empty()),
        workload: None,
    }
}

/// The DestinationRule for `service`: looked up in the proxy's namespace, then the
/// service's, then the root namespace; an exact host beats a wildcard.
fn destination_rule_for<'r>(
    rules: &[&'r Object<DestinationRule>],
    service: &Service,
    scope: &ProxyScope,
) -> Option<&'r Object<DestinationRule>> {
    for ns in [
        scope.namespace.as_str(),
        service.namespace.as_str(),
        ROOT_NAMESPACE,
    ] {
        let in_ns = rules.iter().filter(|r| r.metadata.namespace() == ns);
        let mut best: Option<(&Object<DestinationRule>, usize)> = None;
        for r in in_ns {
            let h = host::resolve(&r.spec.host, ns);
            if !host::covers(&h, &service.hostname) {
                continue;
            }
            let specificity = if h == service.hostname {
                usize::MAX
            } else {
                h.len()
            };
            if best.is_none_or(|(_, s)| specificity > s) {
                best = Some((r, specificity));
            }
        }
        if let Some((r, _)) = best {
            return Some(r);
        }
    }
    None
}

fn cluster(
    service: &Service,
    port: &ServicePort,
    subset: Option<(&String, &BTreeMap<String, String>)>,
    policy: ClusterPolicy,
    peers: &[Option<crate::peer_authn::PeerAuthn>],
    identities: &[ServerIdentity],
) -> Cluster {
    let endpoints = service
        .endpoints
        .iter()
        .zip(peers)
        .filter(|(e, _)| subset.is_none_or(|(_, labels)| e.has_labels(labels)))
        .map(|(e, peer)| {
            let dial = e.port_for(port);
            let mesh_tls = peer
                .as_ref()
                .is_some_and(|p| p.mode_on(dial) != crate::peer_authn::Mode::Disable);
            ClusterEndpoint {
                address: e.address.clone(),
                port: dial,
                labels: e.labels.clone(),
                weight: e.weight,
                workload: e.workload.clone(),
                mesh_tls,
            }
        })
        .collect();
    Cluster {
        name: cluster_name(
            port.number,
            subset.map(|(n, _)| n.as_str()),
            &service.hostname,
        )
        .into(),
        service: service.hostname.clone(),
        port: port.number,
        subset: subset.map(|(n, _)| n.clone()),
        protocol: port.protocol,
        endpoints,
        policy,
        identities: identities.to_vec(),
    }
}

/// Who may serve `service` over mesh mTLS (secure naming): its ServiceEntry's
/// `subjectAltNames`, else the service accounts of its workloads.
fn server_identities(service: &Service) -> Vec<ServerIdentity> {
    if service.subject_alt_names.is_empty() {
        let accounts: std::collections::BTreeSet<ServerIdentity> = service
            .endpoints
            .iter()
            .filter_map(|e| {
                let (namespace, account) = match &e.workload {
                    Some(w) if w.service_account != "unknown" => {
                        (w.namespace.clone(), w.service_account.clone())
                    }
                    _ => (service.namespace.clone(), e.service_account.clone()?),
                };
                Some(ServerIdentity::Account {
                    namespace,
                    service_account: account,
                })
            })
            .collect();
        accounts.into_iter().collect()
    } else {
        service
            .subject_alt_names
            .iter()
            .map(|s| ServerIdentity::Uri(s.clone()))
            .collect()
    }
}

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
fn bound_virtual_services<'r>(
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

/// Istio's precedence among resources: oldest first, then namespace and name.
pub(crate) fn age<T>(o: &Object<T>) -> (Option<String>, String, String) {
    (
        o.metadata.creation_timestamp.clone(),
        o.metadata.namespace().to_string(),
        o.metadata.name.clone(),
    )
}

fn route_tables(
    bound: &[BoundVirtualService<'_>],
    services: &BTreeMap<String, Service>,
    scope: &ProxyScope,
) -> Result<BTreeMap<u16, RouteTable>, TranslateError> {
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
            let routes = match owner(&service.hostname) {
                Some(i) => http_routes(&bound[i], port.number, services, scope)?,
                None => vec![default_route(&service.hostname, port.number)],
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
                let routes = http_routes(v, *port, services, scope)?;
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

pub(crate) fn domains(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::with_capacity(names.len() * 2);
    for n in names {
        out.push(n.clone());
        out.push(format!("{n}:{port}"));
    }
    out
}

fn default_route(hostname: &str, port: u16) -> Route {
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
                }],
                total: 100,
            },
            rewrite: None,
            timeout: None,
            retry: RetryPolicy::istio_default(),
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
        let action = action(rule, ns, port, services).map_err(|e| v.error(path.clone(), e))?;
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
                .any(|g| crate::gateway::reference(g, v.object.metadata.namespace()) == *bound),
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
                        name: if lower {
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

fn per_million(p: Option<&Percent>, deprecated: Option<i64>, absent: u32) -> u32 {
    match (p, deprecated) {
        (Some(p), _) => (p.value * 10_000.0).round().clamp(0.0, f64::from(MILLION)) as u32,
        (None, Some(n)) => u32::try_from(n.clamp(0, 100) * 10_000).unwrap_or(MILLION),
        (None, None) => absent,
    }
}

/// The cluster a destination names, as seen from a rule in namespace `ns` on `port`.
fn destination_cluster(
    d: &Destination,
    ns: &str,
    port: u16,
    services: &BTreeMap<String, Service>,
) -> Arc<str> {
    let hostname = host::resolve(&d.host, ns);
    let port = match d.port {
        Some(p) => u16::try_from(p.number).unwrap_or(port),
        None => match services.get(&hostname).map(|s| s.ports.as_slice()) {
            Some([only]) => only.number,
            _ => port,
        },
    };
    cluster_name(port, d.subset.as_deref(), &hostname).into()
}

fn header_ops(ops: Option<&vs::HeaderOperations>) -> HeaderOps {
    let Some(ops) = ops else {
        return HeaderOps::default();
    };
    let pairs = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    HeaderOps {
        set: pairs(&ops.set),
        add: pairs(&ops.add),
        remove: ops.remove.iter().map(|h| h.to_ascii_lowercase()).collect(),
    }
}

fn header_rules(h: Option<&vs::Headers>) -> HeaderRules {
    HeaderRules {
        request: header_ops(h.and_then(|h| h.request.as_ref())),
        response: header_ops(h.and_then(|h| h.response.as_ref())),
    }
}

fn action(
    rule: &HttpRoute,
    ns: &str,
    port: u16,
    services: &BTreeMap<String, Service>,
) -> Result<RouteAction, String> {
    let headers = header_rules(rule.headers.as_ref());
    if let Some(r) = &rule.redirect {
        return Ok(RouteAction::Redirect(Redirect {
            path: r.uri.clone(),
            authority: r.authority.clone(),
            port: match (r.port, r.derive_port) {
                (Some(p), _) => Some(RedirectPort::Fixed(
                    u16::try_from(p).map_err(|_| format!("redirect port {p} out of range"))?,
                )),
                (None, Some(vs::RedirectPortSelection::FromProtocolDefault)) => {
                    Some(RedirectPort::FromProtocolDefault)
                }
                (None, Some(vs::RedirectPortSelection::FromRequestPort)) => {
                    Some(RedirectPort::FromRequestPort)
                }
                (None, None) => None,
            },
            scheme: r.scheme.clone(),
            status: r
                .redirect_code
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(301),
            headers: headers.response,
        }));
    }
    if let Some(d) = &rule.direct_response {
        let body = match d.body.as_ref() {
            Some(b) => match (&b.string, &b.bytes) {
                (Some(s), _) => s.clone().into_bytes(),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| format!("directResponse.body.bytes is not valid base64: {e}"))?,
                (None, None) => Vec::new(),
            },
            None => Vec::new(),
        };
        return Ok(RouteAction::DirectResponse(DirectResponse {
            status: u16::try_from(d.status)
                .map_err(|_| "directResponse.status out of range".to_string())?,
            body,
            headers: headers.response,
        }));
    }
    if rule.route.is_empty() {
        return Err("the rule has no route, redirect or directResponse".into());
    }
    let single = rule.route.len() == 1;
    let entries: Vec<WeightedCluster> = rule
        .route
        .iter()
        .filter(|d| single || d.weight > 0)
        .map(|d| WeightedCluster {
            cluster: destination_cluster(&d.destination, ns, port, services),
            weight: if single { 100 } else { d.weight.unsigned_abs() },
            headers: header_rules(d.headers.as_ref()),
        })
        .collect();
    let total = entries.iter().map(|e| e.weight).sum();
    let mut mirrors = Vec::new();
    if let Some(m) = &rule.mirror {
        let share = per_million(
            rule.mirror_percentage.as_ref(),
            rule.mirror_percent.map(i64::from),
            MILLION,
        );
        mirrors.push(Mirror {
            cluster: destination_cluster(m, ns, port, services),
            per_million: share,
        });
    }
    for m in &rule.mirrors {
        let share = per_million(m.percentage.as_ref(), None, MILLION);
        mirrors.push(Mirror {
            cluster: destination_cluster(&m.destination, ns, port, services),
            per_million: share,
        });
    }
    mirrors.retain(|m| m.per_million > 0);
    Ok(RouteAction::Forward(Forward {
        clusters: WeightedClusters { entries, total },
        rewrite: rule.rewrite.as_ref().map(rewrite).transpose()?,
        timeout: rule
            .timeout
            .map(weft_api::Duration::get)
            .filter(|d| !d.is_zero()),
        retry: retry(rule.retries.as_ref()),
        fault: rule.fault.as_ref().map(fault),
        mirrors,
        headers,
        cors: rule.cors_policy.as_ref().map(cors).transpose()?,
    }))
}

fn rewrite(r: &vs::HttpRewrite) -> Result<Rewrite, String> {
    let path = match (&r.uri, &r.uri_regex_rewrite) {
        (Some(uri), _) => Some(PathRewrite::Prefix(uri.clone())),
        // Envoy's regex rewrite substitutes every match within the path, so the pattern is not anchored.
        (None, Some(re)) => Some(PathRewrite::Regex {
            pattern: Regex::unanchored(&re.pattern)?,
            substitution: re.rewrite.clone(),
        }),
        (None, None) => None,
    };
    Ok(Rewrite {
        path,
        authority: r.authority.clone(),
    })
}

fn retry(r: Option<&vs::HttpRetry>) -> RetryPolicy {
    let Some(r) = r else {
        return RetryPolicy::istio_default();
    };
    if r.attempts <= 0 {
        return RetryPolicy::disabled();
    }
    let mut retry_on = Vec::new();
    let mut codes = Vec::new();
    for token in r
        .retry_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if let Ok(code) = token.parse::<u16>() {
            codes.push(code);
        } else if let Some(cond) = RetryOn::parse(token) {
            retry_on.push(cond);
        }
    }
    if retry_on.is_empty() && codes.is_empty() {
        retry_on = DEFAULT_RETRY_ON.to_vec();
    }
    if !codes.is_empty() && !retry_on.contains(&RetryOn::RetriableStatusCodes) {
        retry_on.push(RetryOn::RetriableStatusCodes);
    }
    RetryPolicy {
        attempts: r.attempts.unsigned_abs(),
        per_try_timeout: r.per_try_timeout.map(weft_api::Duration::get),
        retry_on,
        retriable_status_codes: codes,
        backoff: r.backoff.map_or(
            std::time::Duration::from_millis(25),
            weft_api::Duration::get,
        ),
        retry_ignore_previous_hosts: r.retry_ignore_previous_hosts.unwrap_or(true),
        explicit: true,
    }
}

fn fault(f: &vs::HttpFaultInjection) -> Fault {
    Fault {
        delay: f.delay.as_ref().and_then(|d| {
            Some(DelayFault {
                delay: d.fixed_delay?.get(),
                per_million: per_million(d.percentage.as_ref(), d.percent.map(i64::from), 0),
            })
        }),
        abort: f.abort.as_ref().and_then(|a| {
            let status = match (a.http_status, &a.grpc_status) {
                (Some(code), _) => AbortStatus::Http(u16::try_from(code).ok()?),
                (None, Some(name)) => AbortStatus::Grpc(
                    u32::try_from(GRPC_STATUS_NAMES.iter().position(|n| n == name)?).ok()?,
                ),
                (None, None) => return None,
            };
            Some(AbortFault {
                status,
                per_million: per_million(a.percentage.as_ref(), a.percent.map(i64::from), 0),
            })
        }),
    }
}

fn cors(c: &vs::CorsPolicy) -> Result<Cors, String> {
    let mut allow_origins: Vec<StringMatcher> = c
        .allow_origin
        .iter()
        .map(|o| StringMatcher::Exact(o.clone()))
        .collect();
    for m in &c.allow_origins {
        allow_origins.push(StringMatcher::compile(m, false)?);
    }
    Ok(Cors {
        allow_origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age_secs: c.max_age.map(|d| d.get().as_secs()),
        allow_credentials: c.allow_credentials == Some(true),
        forward_unmatched_preflights: c.unmatched_preflights
            != Some(vs::UnmatchedPreflights::Ignore),
    })
}
