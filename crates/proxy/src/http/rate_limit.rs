//! Local rate limits on the HTTP path (weft's RateLimit resource): each limit that counts a
//! request takes a token from its bucket ([`crate::ratelimit`]); a limited request is
//! answered `429` with flag `RL` and `x-ratelimit-*` and `retry-after` headers.

use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use weft_model::rate_limit::BucketKey;

use super::body::Body;
use super::local_reply;
use crate::flags::ResponseFlags;
use crate::snapshot::Snapshot;

/// Applies every limit that counts this request; the `429` answer when one refuses it.
pub fn check(
    snapshot: &Snapshot,
    req: &Request<Incoming>,
    grpc: bool,
    principal: Option<&str>,
) -> Option<http::Response<Body>> {
    if snapshot.rate_limits.is_empty() {
        return None;
    }
    let (method, path) = (req.method().as_str(), req.uri().path());
    for limiter in &snapshot.rate_limits {
        let limit = &limiter.limit;
        if !limit.applies_to(method, path) {
            continue;
        }
        let key = match &limit.bucket {
            BucketKey::All => None,
            // The mTLS identity; plaintext callers share one bucket.
            BucketKey::SourcePrincipal => principal,
            BucketKey::Header(h) => req.headers().get(h.as_str()).and_then(|v| v.to_str().ok()),
        };
        if let Err(wait) = limiter.take(key) {
            tracing::debug!(limit = %limit.name, "request rate limited");
            let mut resp = local_reply::reply(
                StatusCode::TOO_MANY_REQUESTS,
                ResponseFlags::RATE_LIMITED,
                "local_rate_limited",
                grpc,
            );
            let reset = wait.as_secs_f64().ceil().max(1.0) as u64;
            let h = resp.headers_mut();
            let mut set = |name: &'static str, value: String| {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            };
            set(
                "x-ratelimit-limit",
                format!(
                    "{}, {};w={}",
                    limit.requests,
                    limit.requests,
                    limit.interval.as_secs().max(1)
                ),
            );
            set("x-ratelimit-remaining", "0".into());
            set("x-ratelimit-reset", reset.to_string());
            set("retry-after", reset.to_string());
            return Some(resp);
        }
    }
    None
}
