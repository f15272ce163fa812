//! Clusters from services and DestinationRules: a default cluster per service port and
//! one per subset (`outbound|port|subset|host`), each with its merged traffic policy,
//! its endpoints (filtered by the subset's labels) and the identities allowed to serve it.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::networking::destination_rule::DestinationRule;
use weft_api::{Object, Resource};

use super::mesh::{Cluster, ClusterEndpoint, ServerIdentity, TLS_MODE_LABEL, cluster_name};
use super::registry_entries::health_check_of;
use super::scope::{ProxyScope, ROOT_NAMESPACE, selects, visible};
use crate::host;
use crate::peer_authn::{PeerAuthn, PeerPolicies};
use crate::policy::{self, ClusterPolicy};
use crate::service::{Service, ServicePort};

/// The clusters of `services` for a proxy in `scope`, by name.
pub(super) fn clusters(
    resources: &[Resource],
    services: &BTreeMap<String, Service>,
    peers: &PeerPolicies<'_>,
    scope: &ProxyScope,
) -> BTreeMap<Arc<str>, Arc<Cluster>> {
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
    let mut clusters = BTreeMap::new();
    for service in services.values() {
        // Resolved once per endpoint with a sidecar (not per port and subset).
        let endpoint_peers: Vec<Option<PeerAuthn>> = service
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
            clusters.insert(default.name.clone(), Arc::new(default));
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
                clusters.insert(c.name.clone(), Arc::new(c));
            }
        }
    }
    clusters
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
    peers: &[Option<PeerAuthn>],
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
