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

/// Status codes Go's `http.StatusText` names: Istio accepts exactly these as `retryOn` codes.
pub const KNOWN_STATUS_CODES: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
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
        // An empty retryOn is unset, as in Istio.
        let retry_on = self.retry_on.as_deref().filter(|on| !on.is_empty());
        if self.attempts == 0
            && (self.per_try_timeout.is_some()
                || retry_on.is_some()
                || self.retry_remote_localities.is_some())
        {
            v.error("attempts is 0 (retries disabled) but perTryTimeout, retryOn or retryRemoteLocalities is set");
        }
        checks::duration_at_least(v, "perTryTimeout", &self.per_try_timeout, checks::ONE_MS);
        checks::duration_at_least(v, "backoff", &self.backoff, checks::ONE_MS);
        if let Some(on) = retry_on {
            v.field("retryOn", |v| {
                // Istio splits on commas without trimming: an empty or padded token is an error.
                for token in on.split(',') {
                    let code = token.parse::<u16>().ok();
                    if code.is_some_and(|c| KNOWN_STATUS_CODES.contains(&c)) {
                        continue;
                    }
                    if RETRY_ON_CONDITIONS.contains(&token) {
                        continue;
                    }
                    let mut msg = match code {
                        Some(c) => {
                            format!("{c} is not an HTTP status code Istio accepts in retryOn")
                        }
                        None => format!("{token:?} is not a valid retryOn policy"),
                    };
                    let trimmed = token.trim();
                    if trimmed.is_empty() {
                        msg.push_str(" (remove the empty entry between commas)");
                    } else if trimmed != token {
                        msg.push_str(" (remove the spaces around it)");
                    } else if code.is_none() {
                        if let Some(s) = crate::source::suggest(token, RETRY_ON_CONDITIONS) {
                            msg.push_str(&format!(" (did you mean {s:?}?)"));
                        }
                    }
                    v.error(msg);
                }
            });
        }
    }
}
