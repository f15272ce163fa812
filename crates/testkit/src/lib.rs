//! Test support for weft: real servers on ephemeral loopback ports, a small HTTP
//! client, and polling instead of sleeps.

pub mod client;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Half-width of a two-sided tolerance for a binomial count: `z` standard deviations of
/// `n` trials with success probability `p`. With z = 5 a correct implementation fails
/// about once in 1.7 million runs.
pub fn binomial_tolerance(n: u32, p: f64, z: f64) -> f64 {
    z * (f64::from(n) * p * (1.0 - p)).sqrt()
}
