//! The keys behind RequestAuthentication `jwksUri`s, fetched by the proxy itself when it
//! runs from files (connected to a control plane, the rules arrive with their keys inline,
//! as istiod pushes them): each URI is fetched when a request first needs it, then
//! refreshed in the background every [`JwksCache::refresh`]; a failed fetch (timeout,
//! error status, a body over [`MAX_JWKS_BYTES`], no usable key) keeps the last good keys.
//!
//! Requests read the keys without a lock (a copy-on-write map of watch channels); only the
//! first request for a URI takes a mutex, to start its refresher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use weft_model::authn::Keys;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How often keys are fetched again by default (Envoy's `cache_duration`: 5 minutes).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// The first retry after a failed fetch; doubled up to the refresh interval.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// What is known of one URI's keys.
#[derive(Debug, Clone, Default)]
struct Fetched {
    /// The last good keys.
    keys: Option<Arc<Keys>>,
    /// Whether a fetch has finished (well or not): requests stop waiting then.
    tried: bool,
}

pub use weft_fetch::FetchError;

/// The keys of every `jwksUri` this proxy has needed.
pub struct JwksCache {
    entries: ArcSwap<HashMap<String, watch::Receiver<Fetched>>>,
    adding: Mutex<()>,
    refresh: Duration,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("uris", &self.entries.load().keys().collect::<Vec<_>>())
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl JwksCache {
    /// A cache refreshing each URI every `refresh`.
    pub fn new(refresh: Duration) -> Arc<JwksCache> {
        Arc::new(JwksCache {
            entries: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            refresh,
        })
    }

    /// How often keys are fetched again.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// The keys of `uri` fetched last, if any fetch succeeded yet.
    pub fn get(&self, uri: &str) -> Option<Arc<Keys>> {
        self.entries
            .load()
            .get(uri)
            .and_then(|rx| rx.borrow().keys.clone())
    }

    /// Waits (at most `timeout`) until the first fetch of `uri` has finished, starting its
    /// refresher if no request needed it before; once a fetch failed, requests do not wait
    /// for the retries.
    pub async fn ready(self: &Arc<Self>, uri: &str, timeout: Duration) {
        let mut rx = match self.entries.load().get(uri) {
            Some(rx) => rx.clone(),
            None => self.start(uri, timeout),
        };
        if rx.borrow().tried {
            return;
        }
        let _ = tokio::time::timeout(timeout, rx.wait_for(|f| f.tried)).await;
    }

    fn start(self: &Arc<Self>, uri: &str, timeout: Duration) -> watch::Receiver<Fetched> {
        let _guard = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = self.entries.load().get(uri) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(Fetched::default());
        let mut next = HashMap::clone(&self.entries.load());
        next.insert(uri.to_string(), rx.clone());
        self.entries.store(Arc::new(next));
        tokio::spawn(refresher(
            Arc::downgrade(self),
            uri.to_string(),
            timeout,
            tx,
        ));
        rx
    }
}

/// Fetches `uri` now and then every refresh interval while the cache lives.
async fn refresher(
    cache: Weak<JwksCache>,
    uri: String,
    timeout: Duration,
    tx: watch::Sender<Fetched>,
) {
    let mut backoff = RETRY_AFTER_FAILURE;
    loop {
        let Some(refresh) = cache.upgrade().map(|c| c.refresh) else {
            return;
        };
        let wait = match fetch(&uri, timeout).await {
            Ok(keys) => {
                tracing::debug!(%uri, keys = keys.len(), "JWKS fetched");
                tx.send_replace(Fetched {
                    keys: Some(Arc::new(keys)),
                    tried: true,
                });
                backoff = RETRY_AFTER_FAILURE;
                refresh
            }
            Err(e) => {
                let kept = tx.borrow().keys.is_some();
                tracing::warn!(%uri, error = %e, kept_last_good = kept, "JWKS fetch failed");
                tx.send_modify(|f| f.tried = true);
                let wait = backoff.min(refresh);
                backoff = (backoff * 2).min(refresh);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One GET of `uri`, read as a key set.
pub async fn fetch(uri: &str, timeout: Duration) -> Result<Keys, FetchError> {
    let body = weft_fetch::get(uri, timeout, MAX_JWKS_BYTES).await?;
    Keys::parse(&String::from_utf8_lossy(&body)).map_err(|error| FetchError::Body {
        uri: uri.to_string(),
        error,
    })
}
