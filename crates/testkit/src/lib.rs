//! Test support for weft: real servers on ephemeral loopback ports, a small HTTP
//! client, polling instead of sleeps, and an in-process mesh ([`mesh`]: a control plane
//! and proxies).
//!
//! [`mesh`] makes this crate depend on `weft-proxy` and `weft-control`, while
//! `weft-proxy` has this crate as a dev-dependency: a cycle cargo allows for tests. An
//! integration test of `weft-proxy` and this crate link the same `weft-proxy`, so the
//! proxy types [`mesh`] hands out are the test's. The proxy's own unit tests link a
//! second copy of it through this crate; they only take plain data from here (TLS
//! bytes, ports), so nothing of one copy meets the other. A cargo feature gating
//! [`mesh`] would not spare that copy: a package's unit and integration tests share its
//! dev-dependencies and their features.

pub mod client;
pub mod mesh;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// `127.0.0.1:0`: a listener bound to it gets a free loopback port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A loopback port nothing listens on now, for a listener that must be named before it
/// binds (a process's flags, a registration). Another test may take it meanwhile; a
/// caller that cannot bear that retries with another.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(any_port())
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A new empty directory under the system's temporary directory, named for `name`, this
/// process and the call, so tests running at once never share one. The test removes it.
pub fn fresh_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("weft-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a fresh directory");
    dir
}
