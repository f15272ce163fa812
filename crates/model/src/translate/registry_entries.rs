//! What both registries (Kubernetes Services, ServiceEntries) build their services from: a
//! WorkloadEntry as an endpoint, and the health check an annotation asks for.

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_api::networking::workload_entry::WorkloadEntry;

use crate::policy::HealthCheck;
use crate::service::{Endpoint, EndpointAddress};

/// The active health check a resource's annotation asks for.
pub(super) fn health_check_of(annotations: &BTreeMap<String, String>) -> Option<HealthCheck> {
    annotations
        .get(weft_api::extensions::HEALTH_CHECK_ANNOTATION)
        .and_then(|t| weft_api::extensions::parse_health_check(t).ok())
        .map(HealthCheck::from)
}

pub(super) fn endpoint(w: &WorkloadEntry) -> Endpoint {
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
