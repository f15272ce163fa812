//! Large pushes (an initial sync, a resync after a NACK) run a few at a time. A push
//! of many parts is buffered by the stream (h2 takes up to 400 KB per stream before the
//! socket drains it), so a thousand proxies connecting together would each hold their
//! whole sync in memory at once, and the allocator keeps that peak. A push keeps its
//! place until the proxy answers its last part (then the stream has drained), or until
//! [`HOLD_AT_MOST`] passes, so a proxy that never answers does not stall the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Large pushes in progress at once.
const AT_ONCE: usize = 32;
/// Longest a push keeps its place waiting for the proxy's answer.
const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// The places for large pushes, shared by every session.
#[derive(Debug, Clone)]
pub(super) struct LargePushes(Arc<Semaphore>);

impl Default for LargePushes {
    fn default() -> Self {
        LargePushes(Arc::new(Semaphore::new(AT_ONCE)))
    }
}

impl LargePushes {
    /// Waits for a place.
    pub(super) async fn admit(&self) -> Place {
        let permit = self.0.clone().acquire_owned().await.ok();
        Place {
            nonce: None,
            until: Instant::now() + HOLD_AT_MOST,
            _permit: permit,
        }
    }
}

/// One large push's place, given back when dropped.
#[derive(Debug)]
pub(super) struct Place {
    /// The nonce of the push's last part, once sent.
    nonce: Option<String>,
    /// When the place is given back whatever the proxy does.
    pub(super) until: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Place {
    /// The push went out whole; its last part has `nonce`.
    pub(super) fn sent(&mut self, nonce: &str) {
        self.nonce = Some(nonce.to_string());
    }

    /// True when `nonce` answers the push: its place can go.
    pub(super) fn answered_by(&self, nonce: &str) -> bool {
        self.nonce.as_deref() == Some(nonce)
    }
}
