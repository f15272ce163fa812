//! Token buckets for weft's RateLimit resource: one per limit, or one per bucket key (a
//! header value, the source identity), refilled continuously. Buckets live with the
//! configuration and carry over a reload while the limit is unchanged. The HTTP path
//! applies them in [`crate::http::rate_limit`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use weft_model::rate_limit::Limit;

/// Most separate buckets one limit keeps; past it, full (idle) buckets are forgotten, and
/// if none is, new keys share one overflow bucket.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct Buckets {
    shared: Bucket,
    /// By a hash of the key: a long header value costs no memory.
    keyed: HashMap<u64, Bucket>,
    /// When the full map was last swept for refilled buckets (at most once a second).
    swept: Option<Instant>,
}

/// One limit and its buckets.
#[derive(Debug)]
pub struct Limiter {
    /// The limit.
    pub limit: Limit,
    buckets: Mutex<Buckets>,
    /// Keyed per limiter with a random seed, so keys cannot be chosen to collide.
    hasher: std::collections::hash_map::RandomState,
}

impl Limiter {
    /// A limiter with full buckets.
    pub fn new(limit: Limit) -> Limiter {
        let full = Bucket {
            tokens: f64::from(limit.requests) + f64::from(limit.burst),
            last: Instant::now(),
        };
        Limiter {
            limit,
            hasher: std::collections::hash_map::RandomState::new(),
            buckets: Mutex::new(Buckets {
                shared: full,
                keyed: HashMap::new(),
                swept: None,
            }),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limit.requests) + f64::from(self.limit.burst)
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.limit.requests) / self.limit.interval.as_secs_f64().max(1e-9)
    }

    /// Takes a token from the bucket of `key`; `Err(wait)` when it is empty.
    pub fn take(&self, key: Option<&str>) -> Result<u64, Duration> {
        let now = Instant::now();
        let (capacity, rate) = (self.capacity(), self.rate_per_sec());
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let full = Bucket {
            tokens: capacity,
            last: now,
        };
        let bucket = match key {
            None => &mut b.shared,
            Some(k) => {
                use std::hash::{BuildHasher, Hasher};
                let mut h = self.hasher.build_hasher();
                h.write(k.as_bytes());
                let k = h.finish();
                let recently = b
                    .swept
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
                if !b.keyed.contains_key(&k) && b.keyed.len() >= MAX_KEYS && !recently {
                    // Forget buckets that have refilled: they hold no state worth keeping.
                    b.keyed.retain(|_, v| {
                        v.tokens + now.duration_since(v.last).as_secs_f64() * rate < capacity
                    });
                    b.swept = Some(now);
                }
                if b.keyed.len() >= MAX_KEYS && !b.keyed.contains_key(&k) {
                    &mut b.shared
                } else {
                    b.keyed.entry(k).or_insert(full)
                }
            }
        };
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(bucket.tokens as u64)
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// Builds the limiters of `snapshot`'s limits, keeping `previous` buckets of unchanged limits.
pub fn limiters(
    limits: &[Limit],
    previous: Option<&[std::sync::Arc<Limiter>]>,
) -> Vec<std::sync::Arc<Limiter>> {
    limits
        .iter()
        .map(|l| {
            previous
                .and_then(|p| p.iter().find(|old| old.limit.key == l.key).cloned())
                .unwrap_or_else(|| std::sync::Arc::new(Limiter::new(l.clone())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::rate_limit::BucketKey;

    fn limit(requests: u32, burst: u32) -> Limit {
        Limit {
            name: "default/l".into(),
            key: "k".into(),
            requests,
            interval: Duration::from_secs(1),
            burst,
            bucket: BucketKey::All,
            matches: Vec::new(),
        }
    }

    #[test]
    fn a_bucket_admits_its_size_then_refills() {
        let l = Limiter::new(limit(5, 2));
        let admitted = (0..20).filter(|_| l.take(None).is_ok()).count();
        assert_eq!(admitted, 7, "requests + burst at once");
        let wait = l.take(None).expect_err("empty");
        assert!(
            wait <= Duration::from_millis(200),
            "a token comes back within 1/5 s: {wait:?}"
        );
        std::thread::sleep(Duration::from_millis(450));
        // 5 per second for about 0.45 s: two tokens (three on a slow machine).
        let refilled = (0..20).filter(|_| l.take(None).is_ok()).count();
        assert!((2..=3).contains(&refilled), "{refilled}");
        assert!(l.take(Some("alice")).is_ok(), "keys have their own buckets");
    }
}
