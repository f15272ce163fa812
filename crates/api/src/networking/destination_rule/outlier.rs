//! Outlier detection: ejecting endpoints that keep failing (passive health checking).

use serde::{Deserialize, Serialize};

use super::non_negative;
use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// Outlier detection (passive health checking).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Deprecated: consecutive gateway errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Split local-origin failures from upstream errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Consecutive 502/503/504 before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive 5xx before ejection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive5xx_errors: Option<u32>,
    /// Time between analyses (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Base ejection time (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints ejected, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Below this healthy percentage, ejection stops (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
}

impl Validate for OutlierDetection {
    fn validate(&self, v: &mut Validator) {
        if self.consecutive_errors.is_some() {
            v.warn_at("consecutiveErrors", "consecutiveErrors is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors");
        }
        non_negative(v, "consecutiveErrors", self.consecutive_errors);
        checks::duration_at_least(v, "interval", &self.interval, checks::ONE_MS);
        checks::duration_at_least(
            v,
            "baseEjectionTime",
            &self.base_ejection_time,
            checks::ONE_MS,
        );
        percent_field(v, "maxEjectionPercent", self.max_ejection_percent);
        percent_field(v, "minHealthPercent", self.min_health_percent);
        if self.consecutive_local_origin_failures.is_some()
            && self.split_external_local_origin_errors != Some(true)
        {
            v.error_at(
                "consecutiveLocalOriginFailures",
                "only takes effect with splitExternalLocalOriginErrors: true",
            );
        }
    }
}

fn percent_field(v: &mut Validator, name: &str, value: Option<i32>) {
    if let Some(n) = value {
        if !(0..=100).contains(&n) {
            v.error_at(name, format!("must be in 0..100 (got {n})"));
        }
    }
}
