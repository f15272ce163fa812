//! Outlier detection (passive health): consecutive 5xx, gateway errors and local-origin
//! failures eject an endpoint for `baseEjectionTime × ejections`; at most
//! `maxEjectionPercent` of a cluster is ejected (always at least one endpoint, as Envoy
//! does). Ejected endpoints return when their time is up. Below `minHealthPercent` healthy
//! endpoints the cluster is in panic and balances over all of them, as Envoy does.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use weft_model::policy::OutlierPolicy;

/// Milliseconds since the proxy started: a cheap monotonic clock for ejection deadlines.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Health of one endpoint.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Ejected until this time (`now_ms`); 0 when never ejected.
    ejected_until: AtomicU64,
    /// Times ejected.
    ejections: AtomicU32,
    /// The current ejection-time multiplier (decays while the endpoint stays in).
    multiplier: AtomicU32,
    /// Failed its active health check.
    pub check_failed: AtomicBool,
    next_check: AtomicU64,
    check_passes: AtomicU32,
    check_failures: AtomicU32,
}

/// How a try ended, as outlier detection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Status(u16),
    /// No response: connect failure, reset or timeout (a local-origin failure).
    LocalFailure,
}

impl EndpointHealth {
    /// True while ejected.
    pub fn ejected(&self) -> bool {
        now_ms() < self.ejected_until.load(Ordering::Relaxed)
    }

    /// True when the balancer may choose the endpoint.
    pub fn available(&self) -> bool {
        !self.ejected() && !self.check_failed.load(Ordering::Relaxed)
    }

    /// Times ejected so far.
    pub fn ejection_count(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Counts `outcome`; returns true when the endpoint should now be ejected.
    pub fn record(&self, policy: &OutlierPolicy, outcome: Outcome) -> bool {
        let bump = |c: &AtomicU32, limit: Option<u32>| {
            limit.is_some_and(|l| c.fetch_add(1, Ordering::Relaxed) + 1 >= l)
        };
        match outcome {
            Outcome::Status(s) if s >= 500 => {
                let gateway = matches!(s, 502..=504)
                    && bump(&self.consecutive_gateway, policy.consecutive_gateway_errors);
                let any = bump(&self.consecutive_5xx, policy.consecutive_5xx);
                gateway || any
            }
            Outcome::Status(_) => {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
                self.consecutive_gateway.store(0, Ordering::Relaxed);
                self.consecutive_local.store(0, Ordering::Relaxed);
                false
            }
            // Split: local failures count on their own. Not split: as Envoy, they count as
            // a 503 (both a 5xx and a gateway error).
            Outcome::LocalFailure if policy.split_external_local_origin_errors => bump(
                &self.consecutive_local,
                policy.consecutive_local_origin_failures,
            ),
            Outcome::LocalFailure => {
                let gateway = bump(&self.consecutive_gateway, policy.consecutive_gateway_errors);
                let any = bump(&self.consecutive_5xx, policy.consecutive_5xx);
                gateway || any
            }
        }
    }

    /// Claims the next active check when it is due; false when not due (or claimed).
    pub fn claim_check(&self, interval: Duration) -> bool {
        let now = now_ms();
        let due = self.next_check.load(Ordering::Relaxed);
        due <= now
            && self
                .next_check
                .compare_exchange(
                    due,
                    now + interval.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Counts an active check result against the thresholds.
    pub fn check_result(&self, passed: bool, healthy_threshold: u32, unhealthy_threshold: u32) {
        if passed {
            self.check_failures.store(0, Ordering::Relaxed);
            if self.check_passes.fetch_add(1, Ordering::Relaxed) + 1 >= healthy_threshold {
                self.check_failed.store(false, Ordering::Relaxed);
            }
        } else {
            self.check_passes.store(0, Ordering::Relaxed);
            if self.check_failures.fetch_add(1, Ordering::Relaxed) + 1 >= unhealthy_threshold {
                self.check_failed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Ejects the endpoint for `base × multiplier`, at most [`MAX_EJECTION_TIME`] (or
    /// `base` when longer), as Envoy does. The multiplier grows by one per ejection and
    /// shrinks by one per `interval` the endpoint stayed in since its last ejection ended.
    /// Returns false when the endpoint is ejected already (nothing changes).
    pub fn eject(&self, base: Duration, interval: Duration) -> bool {
        let now = now_ms();
        let previous = self.ejected_until.load(Ordering::Relaxed);
        if now < previous {
            return false;
        }
        let healthy_intervals = (now - previous) / (interval.as_millis() as u64).max(1);
        let decayed = if previous == 0 {
            0
        } else {
            u64::from(self.multiplier.load(Ordering::Relaxed)).saturating_sub(healthy_intervals)
        };
        let multiplier = decayed + 1;
        self.multiplier.store(
            u32::try_from(multiplier).unwrap_or(u32::MAX),
            Ordering::Relaxed,
        );
        self.ejections.fetch_add(1, Ordering::Relaxed);
        let base_ms = base.as_millis() as u64;
        let cap = base_ms.max(MAX_EJECTION_TIME.as_millis() as u64);
        let until = now + base_ms.saturating_mul(multiplier).min(cap);
        // Only one of concurrent ejections of this endpoint wins.
        if self
            .ejected_until
            .compare_exchange(previous, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
        true
    }

    /// A view for `/clusters`.
    pub fn view(&self) -> HealthView {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = now_ms();
        HealthView {
            health: if self.check_failed.load(Ordering::Relaxed) {
                "unhealthy (active check)"
            } else if now < until {
                "ejected"
            } else {
                "healthy"
            },
            ejections: self.ejection_count(),
            ejected_for_ms: until.saturating_sub(now),
        }
    }
}

/// Envoy's default `max_ejection_time` (Istio does not set it).
pub const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// Health as `/clusters` shows it.
#[derive(Debug, Serialize)]
pub struct HealthView {
    /// `healthy`, `ejected` or `unhealthy (active check)`.
    pub health: &'static str,
    /// Times ejected.
    pub ejections: u32,
    /// Remaining ejection time.
    pub ejected_for_ms: u64,
}

/// Whether one more endpoint of `total`, `ejected` of which are out already, may be ejected.
pub fn may_eject(policy: &OutlierPolicy, total: usize, ejected: usize) -> bool {
    let allowed = (total * policy.max_ejection_percent as usize / 100).max(1);
    ejected < allowed
}

/// True when so few endpoints are available that the cluster should ignore health (panic).
pub fn panic(min_health_percent: u32, total: usize, available: usize) -> bool {
    total > 0 && available * 100 < total * min_health_percent as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_5xx: Some(3),
            consecutive_gateway_errors: None,
            consecutive_local_origin_failures: None,
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_millis(50),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }

    #[test]
    fn consecutive_errors_eject_and_a_success_resets() {
        let h = EndpointHealth::default();
        let p = policy();
        assert!(!h.record(&p, Outcome::Status(500)));
        assert!(!h.record(&p, Outcome::Status(503)));
        assert!(
            !h.record(&p, Outcome::Status(200)),
            "a success resets the count"
        );
        assert!(!h.record(&p, Outcome::Status(500)));
        assert!(!h.record(&p, Outcome::LocalFailure));
        assert!(h.record(&p, Outcome::Status(502)), "the third in a row");
        assert!(h.eject(p.base_ejection_time, p.interval));
        assert!(h.ejected() && !h.available());
        assert_eq!(h.ejection_count(), 1);
    }

    #[test]
    fn ejection_time_grows_with_each_ejection_decays_and_is_capped() {
        let (base, interval) = (Duration::from_millis(1000), Duration::from_secs(10));
        let h = EndpointHealth::default();
        assert!(h.eject(base, interval));
        assert!(
            !h.eject(base, interval),
            "already ejected: no second ejection"
        );
        assert_eq!(h.ejection_count(), 1);
        // The ejection ended just now: the next one is twice as long.
        std::thread::sleep(Duration::from_millis(2));
        h.ejected_until.store(now_ms() - 1, Ordering::Relaxed);
        assert!(h.eject(base, interval));
        let remaining = h.view().ejected_for_ms;
        assert!(remaining > 1000 && remaining <= 2000, "{remaining}");
        // Back in for more than two intervals (1 ms each here): the multiplier 2 decays to
        // 0, so the next ejection is 1 × base.
        h.ejected_until
            .store(now_ms().saturating_sub(1).max(1), Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(5));
        assert!(h.eject(base, Duration::from_millis(1)));
        let remaining = h.view().ejected_for_ms;
        assert!(remaining <= 1000, "{remaining}");
        // Never longer than 300 s (Envoy's max_ejection_time) unless the base is longer.
        h.multiplier.store(100, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1001));
        h.ejected_until.store(now_ms() - 1, Ordering::Relaxed);
        assert!(h.eject(Duration::from_secs(30), interval));
        let remaining = h.view().ejected_for_ms;
        assert!(remaining <= 300_000 && remaining > 299_000, "{remaining}");
    }

    #[test]
    fn ejection_percent_and_panic() {
        let p = policy();
        assert!(
            may_eject(&p, 3, 0),
            "at least one endpoint may always be ejected"
        );
        assert!(!may_eject(&p, 3, 1));
        let half = OutlierPolicy {
            max_ejection_percent: 50,
            ..policy()
        };
        assert!(may_eject(&half, 10, 4) && !may_eject(&half, 10, 5));
        assert!(panic(50, 4, 1) && !panic(50, 4, 2) && !panic(0, 4, 0));
    }
}
