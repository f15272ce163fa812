//! Load balancing toward the endpoints of a service: simple algorithms, consistent
//! hashing, locality-aware distribution and failover, and slow start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// Load balancer settings: `simple` or `consistentHash`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// A simple algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Consistent hashing (session affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated slow-start window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start for new endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
    /// Zone-aware routing (Istio 1.31); kept as written, refused by validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_aware_lb_setting: Option<serde_json::Value>,
}

/// Simple load balancing algorithms.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio's default (LEAST_REQUEST).
    #[default]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    LeastConn,
    /// Random choice.
    Random,
    /// Forward to the original destination.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Fewest outstanding requests (power of two choices).
    LeastRequest,
}

/// Consistent hashing settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on this cookie (generated when absent and a TTL is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
    /// Deprecated ring size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// A hash cookie.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default)]
    pub name: String,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra cookie attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// One cookie attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Attribute value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Ring hash settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum ring size (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Maglev settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maglev {
    /// Table size, a prime (default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// Locality-aware load balancing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Weighted distribution between localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Failover between regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered labels for failover priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Enable locality balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Traffic distribution from one locality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Origin locality.
    #[serde(default)]
    pub from: String,
    /// Destination localities and weights (summing to 100).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// Failover from one region to another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Origin region.
    #[serde(default)]
    pub from: String,
    /// Failover region.
    #[serde(default)]
    pub to: String,
}

/// Slow start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// Warmup window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Starting percentage of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Curve of the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

impl Validate for LoadBalancerSettings {
    fn validate(&self, v: &mut Validator) {
        if self.simple.is_some() && self.consistent_hash.is_some() {
            v.error("only one of simple or consistentHash may be set");
        }
        if let Some(ch) = &self.consistent_hash {
            v.field("consistentHash", |v| ch.validate(v));
        }
        if let Some(l) = &self.locality_lb_setting {
            v.field("localityLbSetting", |v| l.validate(v));
        }
        // What the proxy cannot do is refused by name rather than silently ignored.
        // `enabled: false` turns Envoy's zone-aware routing off, which is what weft does.
        let zone_aware_off = self.zone_aware_lb_setting.as_ref().is_some_and(|z| {
            z.as_object().is_some_and(|o| {
                o.len() == 1 && o.get("enabled") == Some(&serde_json::Value::Bool(false))
            })
        });
        if self.zone_aware_lb_setting.is_some() && !zone_aware_off {
            v.error_at(
                "zoneAwareLbSetting",
                "not supported: weft proxies have no zone, so zone-aware routing cannot be done; remove zoneAwareLbSetting or set only enabled: false",
            );
        }
        if self.warmup_duration_secs.is_some() {
            v.warn_at(
                "warmupDurationSecs",
                "warmupDurationSecs is deprecated; use warmup.duration",
            );
            v.error_at(
                "warmupDurationSecs",
                "not supported: weft's balancer has no slow start; remove warmupDurationSecs",
            );
        }
        if self.warmup.is_some() {
            v.error_at(
                "warmup",
                "not supported: weft's balancer has no slow start (new endpoints get their full share at once); remove warmup",
            );
        }
        if let Some(w) = &self.warmup {
            v.field("warmup", |v| {
                if w.duration.is_none() {
                    v.error_at("duration", "warmup duration is required");
                }
                checks::duration_at_least(v, "duration", &w.duration, checks::ONE_MS);
                if let Some(p) = w.minimum_percent {
                    if !(0.0..=100.0).contains(&p) {
                        v.error_at("minimumPercent", format!("must be in [0, 100] (got {p})"));
                    }
                }
                // Istio 1.31 accepts aggression below 1 (istio/api#3395); Envoy needs it positive.
                if let Some(a) = w.aggression {
                    if a <= 0.0 {
                        v.error_at("aggression", format!("must be greater than 0 (got {a})"));
                    }
                }
            });
        }
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, v: &mut Validator) {
        let keys = [
            self.http_header_name.is_some(),
            self.http_cookie.is_some(),
            self.use_source_ip == Some(true),
            self.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|k| **k).count() {
            0 => v.error("consistent hashing needs one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"),
            1 => {}
            _ => v.error("only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set"),
        }
        if let Some(h) = &self.http_header_name {
            v.field("httpHeaderName", |v| checks::header_name(v, h));
        }
        if let Some(c) = &self.http_cookie {
            v.field("httpCookie", |v| {
                if c.name.is_empty() {
                    v.error_at("name", "cookie name is required");
                }
            });
        }
        if self.ring_hash.is_some() && self.maglev.is_some() {
            v.error("only one of ringHash or maglev may be set");
        }
        if self.minimum_ring_size.is_some() {
            v.warn_at(
                "minimumRingSize",
                "minimumRingSize is deprecated; use ringHash.minimumRingSize",
            );
            if self.ring_hash.is_some() || self.maglev.is_some() {
                v.error_at(
                    "minimumRingSize",
                    "cannot be combined with ringHash or maglev",
                );
            }
        }
        if let Some(size) = self.maglev.as_ref().and_then(|m| m.table_size) {
            if !is_prime(size) {
                v.field("maglev", |v| {
                    v.error_at("tableSize", format!("must be a prime number (got {size})"))
                });
            }
        }
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

impl Validate for LocalityLbSetting {
    fn validate(&self, v: &mut Validator) {
        // Turning it off is what weft does; anything else asks for locality-aware balancing.
        let off_only = self.enabled == Some(false)
            && self.distribute.is_empty()
            && self.failover.is_empty()
            && self.failover_priority.is_empty();
        if !off_only {
            v.error("not supported: weft proxies have no locality, so locality-aware balancing (distribute, failover, failoverPriority) cannot be done; remove localityLbSetting or set only enabled: false");
        }
        let used = [!self.distribute.is_empty(), !self.failover.is_empty()];
        if used.iter().all(|u| *u) {
            v.error("only one of distribute or failover may be set");
        }
        v.each("distribute", &self.distribute, |v, d| {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                v.error_at("to", format!("weights must sum to 100 (got {total})"));
            }
        });
        v.each("failover", &self.failover, |v, f| {
            if f.from == f.to {
                v.error(format!(
                    "failover from and to must differ (both {:?})",
                    f.from
                ));
            }
            if f.from.contains('/') || f.to.contains('/') {
                v.error("failover is between regions; a region must not contain '/'");
            }
        });
    }
}
