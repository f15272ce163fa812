//! The retry policy of an HTTP rule.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// Retry conditions Envoy understands in `retryOn` (besides numeric status codes).
pub const RETRY_ON_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Retries after the first try; 0 disables retries.
    #[serde(default)]
    pub attempts: i32,
    /// Timeout of each try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated retry conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Retry in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Prefer other endpoints on retry (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff interval (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

impl Validate for HttpRetry {
    fn validate(&self, v: &mut Validator) {
        if self.attempts < 0 {
            v.error_at(
                "attempts",
                format!("must not be negative (got {})", self.attempts),
            );
        }
        if self.attempts == 0
            && (self.per_try_timeout.is_some()
                || self.retry_on.is_some()
                || self.retry_remote_localities.is_some())
        {
            v.error("attempts is 0 (retries disabled) but perTryTimeout, retryOn or retryRemoteLocalities is set");
        }
        checks::duration_at_least(v, "perTryTimeout", &self.per_try_timeout, checks::ONE_MS);
        checks::duration_at_least(v, "backoff", &self.backoff, checks::ONE_MS);
        if let Some(on) = &self.retry_on {
            v.field("retryOn", |v| {
                for token in on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let numeric = token.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c));
                    if !numeric && !RETRY_ON_CONDITIONS.contains(&token) {
                        let mut msg = format!("unknown retry condition {token:?}");
                        if let Some(s) = crate::source::suggest(token, RETRY_ON_CONDITIONS) {
                            msg.push_str(&format!(" (did you mean {s:?}?)"));
                        }
                        v.error(msg);
                    }
                }
            });
        }
    }
}
