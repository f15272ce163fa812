//! Retry decisions, as Envoy's router makes them for Istio's retry policies.

use std::time::Duration;

use http::Method;
use weft_model::route::{RetryOn, RetryPolicy};

use crate::pool::SendError;

/// How one try ended.
#[derive(Debug, Clone, Copy)]
pub enum TryOutcome<'a> {
    /// The upstream answered (status, and `grpc-status` from the headers if any).
    Response {
        /// HTTP status.
        status: u16,
        /// gRPC status in a trailers-only response.
        grpc_status: Option<u32>,
        /// `x-envoy-ratelimited` was present.
        rate_limited: bool,
    },
    /// No response.
    Failed(&'a SendError),
    /// The per-try timeout fired.
    TimedOut,
}

/// True for methods that may be sent twice without harm (RFC 9110 §9.2.2).
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `outcome` calls for another try under `policy`. A request the upstream may
/// have seen is retried only when it is idempotent or the route asked for retries explicitly.
pub fn should_retry(policy: &RetryPolicy, outcome: TryOutcome<'_>, method: &Method) -> bool {
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    let (matched, upstream_saw_it) = match outcome {
        // The client's body broke off: nothing is left to send again.
        TryOutcome::Failed(SendError::RequestBody(_)) => (false, true),
        TryOutcome::Failed(e) => {
            // Envoy counts connection failures and resets under 5xx, gateway-error and reset too.
            let any_failure =
                on(RetryOn::FiveXx) || on(RetryOn::GatewayError) || on(RetryOn::Reset);
            let matched = any_failure
                || match e {
                    SendError::Connect(_) | SendError::ConnectTimeout(_) => {
                        on(RetryOn::ConnectFailure) || on(RetryOn::ResetBeforeRequest)
                    }
                    SendError::RefusedStream => {
                        on(RetryOn::RefusedStream) || on(RetryOn::ResetBeforeRequest)
                    }
                    SendError::ResetBeforeRequest(_) => on(RetryOn::ResetBeforeRequest),
                    SendError::Reset(_) | SendError::Stale(_) | SendError::RequestBody(_) => false,
                };
            (matched, !e.never_reached_upstream())
        }
        TryOutcome::TimedOut => (
            on(RetryOn::FiveXx) || on(RetryOn::GatewayError) || on(RetryOn::Reset),
            true,
        ),
        TryOutcome::Response {
            status,
            grpc_status,
            rate_limited,
        } => {
            let matched = (on(RetryOn::FiveXx) && status >= 500)
                || (on(RetryOn::GatewayError) && matches!(status, 502..=504))
                || (on(RetryOn::Retriable4xx) && status == 409)
                || (on(RetryOn::RetriableStatusCodes)
                    && policy.retriable_status_codes.contains(&status))
                || (on(RetryOn::EnvoyRatelimited) && rate_limited)
                || grpc_status.is_some_and(|g| {
                    (on(RetryOn::Cancelled) && g == 1)
                        || (on(RetryOn::DeadlineExceeded) && g == 4)
                        || (on(RetryOn::ResourceExhausted) && g == 8)
                        || (on(RetryOn::Internal) && g == 13)
                        || (on(RetryOn::Unavailable) && g == 14)
                });
            (matched, true)
        }
    };
    matched && (!upstream_saw_it || policy.explicit || idempotent(method))
}

/// Envoy's backoff: exponential from the base interval, capped at ten times it,
/// with full jitter (a uniform wait between 0 and the current interval).
pub fn backoff(policy: &RetryPolicy, retry: u32, jitter: impl FnOnce(u64) -> u64) -> Duration {
    let base = policy.backoff.as_millis().max(1) as u64;
    let interval = base.saturating_mul(1u64 << retry.min(16)).min(base * 10);
    Duration::from_millis(jitter(interval + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: &[RetryOn], explicit: bool) -> RetryPolicy {
        RetryPolicy {
            retry_on: on.to_vec(),
            explicit,
            ..RetryPolicy::istio_default()
        }
    }

    #[test]
    fn default_policy_never_repeats_a_post_the_upstream_may_have_seen() {
        let p = RetryPolicy::istio_default();
        let grpc_unavailable = TryOutcome::Response {
            status: 200,
            grpc_status: Some(14),
            rate_limited: false,
        };
        assert!(should_retry(&p, grpc_unavailable, &Method::GET));
        assert!(!should_retry(&p, grpc_unavailable, &Method::POST));
        let refused = SendError::Connect("refused".into());
        assert!(
            should_retry(&p, TryOutcome::Failed(&refused), &Method::POST),
            "never reached the upstream"
        );
        let r503 = TryOutcome::Response {
            status: 503,
            grpc_status: None,
            rate_limited: false,
        };
        assert!(
            !should_retry(&p, r503, &Method::GET),
            "503 is not retried by default since Istio 1.24"
        );
    }

    #[test]
    fn explicit_policies_follow_retry_on() {
        let p = policy(&[RetryOn::GatewayError], true);
        let r503 = TryOutcome::Response {
            status: 503,
            grpc_status: None,
            rate_limited: false,
        };
        let r500 = TryOutcome::Response {
            status: 500,
            grpc_status: None,
            rate_limited: false,
        };
        assert!(should_retry(&p, r503, &Method::POST));
        assert!(!should_retry(&p, r500, &Method::POST));
        let codes = RetryPolicy {
            retriable_status_codes: vec![500],
            ..policy(&[RetryOn::RetriableStatusCodes], true)
        };
        assert!(should_retry(&codes, r500, &Method::GET));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            backoff: Duration::from_millis(25),
            ..RetryPolicy::istio_default()
        };
        let top = |r| backoff(&p, r, |n| n - 1);
        assert_eq!(top(0), Duration::from_millis(25));
        assert_eq!(top(1), Duration::from_millis(50));
        assert_eq!(top(10), Duration::from_millis(250));
    }
}
