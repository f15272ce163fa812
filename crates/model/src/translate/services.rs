//! Services from ServiceEntries (and, through `kube_services`, Kubernetes Services): one per host, with the entry's ports and its endpoints
//! (inline, or the WorkloadEntries its `workloadSelector` picks), as Istio's registry has them.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::networking::service_entry::{Location, Resolution as ApiResolution, ServiceEntry};
use weft_api::networking::workload_entry::WorkloadEntry;
use weft_api::{Object, Resource};

use super::registry_entries::{endpoint, health_check_of};
use super::scope::{ProxyScope, selects, visible};
use crate::service::{Endpoint, EndpointAddress, Protocol, Resolution, Service, ServicePort};

/// The services of the ServiceEntries visible to the proxy, by host (the first entry
/// declaring a host wins).
pub(crate) fn visible_services(
    resources: &[Resource],
    scope: &ProxyScope,
) -> BTreeMap<String, Service> {
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
    let mut services = BTreeMap::new();
    // Kubernetes' registry comes first, as in istiod's aggregate registry.
    for service in super::kube_services::visible_services(resources, scope) {
        services.entry(service.hostname.clone()).or_insert(service);
    }
    for r in resources {
        if let Resource::ServiceEntry(se) = r {
            if visible(
                &se.spec.export_to,
                se.metadata.namespace(),
                &scope.namespace,
            ) {
                for service in services_of(se, &workload_entries) {
                    services.entry(service.hostname.clone()).or_insert(service);
                }
            }
        }
    }
    services
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
