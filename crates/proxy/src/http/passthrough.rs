//! Istio's PassthroughCluster: requests for destinations outside the registry (ALLOW_ANY),
//! and to PASSTHROUGH-balanced or `resolution: NONE` services, go where the app sent
//! them. Each destination keeps an endpoint (and its connection pool) in a copy-on-write
//! map: requests read it without a lock; only a destination seen for the first time
//! copies the map.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use weft_model::policy::LoadBalancer;

use crate::snapshot::{ClusterRuntime, Endpoint, Snapshot};
use crate::target::Target;

/// How many passthrough destinations keep their connection pools.
const MAX_DESTINATIONS: usize = 1024;

/// The endpoints of the destinations requests passed through to.
#[derive(Debug, Default)]
pub struct Passthrough(ArcSwap<HashMap<Target, Arc<Endpoint>>>);

impl Passthrough {
    /// A one-endpoint cluster for `target`, reusing its pooled connections.
    pub fn cluster(&self, target: Target) -> ClusterRuntime {
        crate::snapshot::single_endpoint_cluster("PassthroughCluster", self.endpoint(target))
    }

    /// The endpoint for `target`, created on first use.
    pub fn endpoint(&self, target: Target) -> Arc<Endpoint> {
        if let Some(known) = self.0.load().get(&target) {
            return known.clone();
        }
        let fresh = Arc::new(Endpoint::new(target.clone()));
        let previous = self.0.rcu(|map| {
            let mut next = HashMap::clone(map);
            // Bounded: past the limit, destinations with no request in flight (held only
            // by the current map and this copy) and their pooled connections are dropped.
            if next.len() >= MAX_DESTINATIONS && !next.contains_key(&target) {
                next.retain(|_, e| Arc::strong_count(e) > 2);
            }
            next.entry(target.clone()).or_insert_with(|| fresh.clone());
            next
        });
        // Another request may have added it first: use the one the map holds.
        match previous.get(&target) {
            Some(raced) => raced.clone(),
            None => fresh,
        }
    }

    /// Destinations with an endpoint.
    pub fn len(&self) -> usize {
        self.0.load().len()
    }

    /// True when no request passed through yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// True when requests to `cluster` go to their original destination rather than an endpoint.
pub fn forwards_to_original(snapshot: &Snapshot, cluster: &ClusterRuntime) -> bool {
    matches!(
        cluster.model.policy.load_balancer,
        LoadBalancer::Passthrough
    ) || (cluster.endpoints.is_empty()
        && snapshot
            .mesh
            .services
            .get(&cluster.model.service)
            .is_some_and(|s| s.resolution == weft_model::service::Resolution::None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> Target {
        Target::Socket(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn one_endpoint_per_destination_kept_across_requests() {
        let p = Passthrough::default();
        let a = p.endpoint(at(1));
        let again = p.endpoint(at(1));
        assert!(Arc::ptr_eq(&a, &again), "the pool is reused");
        let b = p.endpoint(at(2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn past_the_bound_only_idle_destinations_are_dropped() {
        let p = Passthrough::default();
        let busy = p.endpoint(at(1));
        for port in 2..=MAX_DESTINATIONS as u16 {
            p.endpoint(at(port));
        }
        assert_eq!(p.len(), MAX_DESTINATIONS);
        p.endpoint(at(60000));
        assert_eq!(p.len(), 2, "the busy destination and the new one stay");
        assert!(Arc::ptr_eq(&busy, &p.endpoint(at(1))));
    }
}
