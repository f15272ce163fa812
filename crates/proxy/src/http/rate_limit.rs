//! Local rate limits on the HTTP path (weft's RateLimit resource): each limit that counts a
//! request takes a token from its bucket ([`crate::ratelimit`]); a limited request is
//! answered `429` with flag `RL` and `x-ratelimit-*` and `retry-after` headers.

use http::Request;
use hyper::body::Incoming;
use weft_model::rate_limit::BucketKey;

use super::local_reply::{LocalReply, Reason};
use crate::snapshot::Snapshot;

/// Applies every limit that counts this request; `429 RL` when one refuses it.
pub fn check(
    snapshot: &Snapshot,
    req: &Request<Incoming>,
    principal: Option<&str>,
) -> Result<(), LocalReply> {
    if snapshot.rate_limits.is_empty() {
        return Ok(());
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
            return Err(Reason::RateLimited {
                requests: limit.requests,
                window: limit.interval.as_secs().max(1),
                reset: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into());
        }
    }
    Ok(())
}
