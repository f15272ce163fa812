//! Circuit breaking, as Envoy applies a DestinationRule's `connectionPool` per cluster:
//! active requests (`http2MaxRequests`), connections in use (`maxConnections`) with a
//! bounded queue (`http1MaxPendingRequests`), concurrent retries (`maxRetries`) and the
//! retry budget. Over a limit the answer is an immediate `503 UO`, never a wait without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_model::policy::ClusterPolicy;

/// Live counters of a cluster; they survive configuration reloads.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// HTTP requests in flight.
    pub active_requests: AtomicU64,
    /// Requests waiting for a connection slot.
    pub pending_requests: AtomicU64,
    /// Retries in flight.
    pub active_retries: AtomicU64,
    /// Opaque TCP connections open.
    pub tcp_connections: AtomicU64,
    /// Requests and connections refused by a limit (`UO`).
    pub overflows: AtomicU64,
    /// Retries refused by `maxRetries` or the retry budget.
    pub retry_overflows: AtomicU64,
    /// Endpoint ejections by outlier detection.
    pub ejections: AtomicU64,
}

/// The limits of one cluster for one configuration.
#[derive(Debug)]
pub struct Limits {
    /// Connection slots (HTTP/1.1 connections in use and TCP connections); `None`: unlimited.
    pub slots: Option<Arc<Semaphore>>,
    max_connections: Option<u32>,
    max_pending: Option<u32>,
    max_requests: Option<u32>,
    max_retries: Option<u32>,
    budget: Option<(f64, u32)>,
}

impl Limits {
    /// The limits `policy` sets, reusing `previous`'s slots when the size is unchanged
    /// (so requests in flight across a reload stay counted).
    pub fn new(policy: &ClusterPolicy, previous: Option<&Limits>) -> Limits {
        let max_connections = policy.pool.max_connections;
        let slots = match (max_connections, previous) {
            (None, _) => None,
            (Some(n), Some(p)) if p.max_connections == Some(n) => p.slots.clone(),
            (Some(n), _) => Some(Arc::new(Semaphore::new(n as usize))),
        };
        Limits {
            slots,
            max_connections,
            max_pending: policy.pool.max_pending_requests,
            max_requests: policy.pool.max_requests,
            max_retries: policy.pool.max_retries,
            budget: policy
                .retry_budget
                .as_ref()
                .map(|b| (b.percent, b.min_retry_concurrency)),
        }
    }
}

/// A limit was reached: the request or connection is refused (`UO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Holds one unit of a counter until dropped.
#[derive(Debug)]
pub struct Held(Arc<ClusterState>, fn(&ClusterState) -> &AtomicU64);

impl Drop for Held {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

fn hold(state: &Arc<ClusterState>, counter: fn(&ClusterState) -> &AtomicU64) -> Held {
    counter(state).fetch_add(1, Ordering::Relaxed);
    Held(state.clone(), counter)
}

/// Admits a new request, or refuses it (`http2MaxRequests` reached).
pub fn admit_request(state: &Arc<ClusterState>, limits: &Limits) -> Option<Held> {
    let held = hold(state, |s| &s.active_requests);
    if limits
        .max_requests
        .is_some_and(|m| state.active_requests.load(Ordering::Relaxed) > u64::from(m))
    {
        state.overflows.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(held)
}

/// A connection slot: acquired at once, or after waiting in the bounded queue, or refused.
pub async fn acquire_slot(
    state: &Arc<ClusterState>,
    limits: &Limits,
) -> Result<Option<OwnedSemaphorePermit>, Overflow> {
    let Some(slots) = &limits.slots else {
        return Ok(None);
    };
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Ok(Some(permit));
    }
    let pending = hold(state, |s| &s.pending_requests);
    if limits
        .max_pending
        .is_some_and(|m| state.pending_requests.load(Ordering::Relaxed) > u64::from(m))
    {
        state.overflows.fetch_add(1, Ordering::Relaxed);
        return Err(Overflow);
    }
    let permit = slots.clone().acquire_owned().await.map_err(|_| Overflow)?;
    drop(pending);
    Ok(Some(permit))
}

/// A slot for an opaque TCP connection: TCP never queues.
pub fn try_tcp_slot(
    state: &Arc<ClusterState>,
    limits: &Limits,
) -> Result<Option<OwnedSemaphorePermit>, Overflow> {
    let Some(slots) = &limits.slots else {
        return Ok(None);
    };
    slots.clone().try_acquire_owned().map(Some).map_err(|_| {
        state.overflows.fetch_add(1, Ordering::Relaxed);
        Overflow
    })
}

/// Admits a retry, or refuses it (`maxRetries`, or the retry budget: retries may be at most
/// `percent` of active requests, but `minRetryConcurrency` are always allowed).
pub fn admit_retry(state: &Arc<ClusterState>, limits: &Limits) -> Option<Held> {
    let retries = state.active_retries.load(Ordering::Relaxed);
    let over_max = limits.max_retries.is_some_and(|m| retries >= u64::from(m));
    let over_budget = limits.budget.is_some_and(|(percent, min)| {
        let active = state.active_requests.load(Ordering::Relaxed) as f64;
        let allowed = ((active * percent / 100.0) as u64).max(u64::from(min));
        retries >= allowed
    });
    if over_max || over_budget {
        state.retry_overflows.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(hold(state, |s| &s.active_retries))
}

/// Counts an open TCP connection while held.
pub fn hold_tcp(state: &Arc<ClusterState>) -> Held {
    hold(state, |s| &s.tcp_connections)
}

/// What `/clusters` shows of a cluster's pool and limits.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// HTTP requests in flight.
    pub active_requests: u64,
    /// Requests waiting for a connection.
    pub pending_requests: u64,
    /// Retries in flight.
    pub active_retries: u64,
    /// TCP connections open.
    pub tcp_connections: u64,
    /// Connection slots in use, when limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_in_use: Option<u64>,
    /// `maxConnections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests refused with `UO`.
    pub overflows: u64,
    /// Retries refused.
    pub retry_overflows: u64,
    /// Ejections so far.
    pub ejections: u64,
}

/// The admin view of a cluster.
pub fn view(state: &ClusterState, limits: &Limits) -> ClusterView {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    ClusterView {
        active_requests: load(&state.active_requests),
        pending_requests: load(&state.pending_requests),
        active_retries: load(&state.active_retries),
        tcp_connections: load(&state.tcp_connections),
        connections_in_use: match (&limits.slots, limits.max_connections) {
            (Some(s), Some(m)) => Some(u64::from(m).saturating_sub(s.available_permits() as u64)),
            _ => None,
        },
        max_connections: limits.max_connections,
        overflows: load(&state.overflows),
        retry_overflows: load(&state.retry_overflows),
        ejections: load(&state.ejections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::policy::RetryBudget;

    fn limits(f: impl FnOnce(&mut ClusterPolicy)) -> Limits {
        let mut p = ClusterPolicy::default();
        f(&mut p);
        Limits::new(&p, None)
    }

    #[test]
    fn max_requests_refuses_the_extra_request() {
        let state = Arc::new(ClusterState::default());
        let l = limits(|p| p.pool.max_requests = Some(2));
        let a = admit_request(&state, &l).expect("first");
        let _b = admit_request(&state, &l).expect("second");
        assert!(admit_request(&state, &l).is_none());
        assert_eq!(state.overflows.load(Ordering::Relaxed), 1);
        drop(a);
        assert!(
            admit_request(&state, &l).is_some(),
            "a finished request frees its place"
        );
    }

    #[tokio::test]
    async fn one_connection_one_queued_the_rest_overflow() {
        let state = Arc::new(ClusterState::default());
        let l = limits(|p| {
            p.pool.max_connections = Some(1);
            p.pool.max_pending_requests = Some(1);
        });
        let first = acquire_slot(&state, &l).await.expect("slot");
        let (state2, slots) = (state.clone(), l.slots.clone());
        let queued = tokio::spawn(async move {
            let l2 = Limits {
                slots,
                max_connections: Some(1),
                max_pending: Some(1),
                max_requests: None,
                max_retries: None,
                budget: None,
            };
            acquire_slot(&state2, &l2).await.is_ok()
        });
        while state.pending_requests.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            acquire_slot(&state, &l).await.is_err(),
            "the queue holds one"
        );
        drop(first);
        assert!(
            queued.await.expect("task"),
            "the queued request gets the freed slot"
        );
    }

    #[test]
    fn retry_budget_caps_retries_to_a_share_of_requests() {
        let state = Arc::new(ClusterState::default());
        let l = limits(|p| {
            p.retry_budget = Some(RetryBudget {
                percent: 20.0,
                min_retry_concurrency: 3,
            })
        });
        state.active_requests.store(100, Ordering::Relaxed);
        let held: Vec<_> = (0..20).map_while(|_| admit_retry(&state, &l)).collect();
        assert_eq!(held.len(), 20, "20 % of 100 active requests");
        state.active_requests.store(1, Ordering::Relaxed);
        drop(held);
        let few: Vec<_> = (0..10).map_while(|_| admit_retry(&state, &l)).collect();
        assert_eq!(few.len(), 3, "minRetryConcurrency is always allowed");
    }
}
