//! The keys behind RequestAuthentication `jwksUri`s, fetched by the proxy itself (istiod
//! fetches them and pushes them inline; weft's control plane does not yet, so every proxy
//! fetches): each URI is fetched when a request first needs it, then refreshed in the
//! background every [`JwksCache::refresh`]; a failed fetch (timeout, error status, a body
//! over [`MAX_JWKS_BYTES`], no usable key) keeps the last good keys.
//!
//! Requests read the keys without a lock (a copy-on-write map of watch channels); only the
//! first request for a URI takes a mutex, to start its refresher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
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

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URI is not an http(s) URL with a host.
    #[error("jwksUri {0} is not an http or https URL with a host")]
    BadUri(String),
    /// Connecting, TLS or HTTP failed.
    #[error("fetching {uri}: {error}")]
    Transport {
        /// The URI.
        uri: String,
        /// What failed.
        error: String,
    },
    /// The fetch took longer than the rule's `timeout`.
    #[error("fetching {0}: timed out")]
    Timeout(String),
    /// The server answered with another status than 200.
    #[error("fetching {uri}: status {status}")]
    Status {
        /// The URI.
        uri: String,
        /// The status.
        status: u16,
    },
    /// The body is too large or not a usable key set.
    #[error("{uri}: {error}")]
    Body {
        /// The URI.
        uri: String,
        /// What is wrong.
        error: String,
    },
}

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
    match tokio::time::timeout(timeout, fetch_once(uri)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(uri.to_string())),
    }
}

async fn fetch_once(uri: &str) -> Result<Keys, FetchError> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| FetchError::BadUri(uri.to_string()))?;
    let https = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(FetchError::BadUri(uri.to_string())),
    };
    let host = parsed
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| FetchError::BadUri(uri.to_string()))?
        .to_string();
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let transport = |error: String| FetchError::Transport {
        uri: uri.to_string(),
        error,
    };
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| transport(format!("connect: {e}")))?;
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let authority = parsed
        .authority()
        .map_or(host.clone(), |a| a.as_str().to_string());
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| transport(e.to_string()))?;
    let resp = if https {
        let config = crate::tls::web_client_config().map_err(&transport)?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| transport(format!("server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| transport(format!("TLS: {e}")))?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
    .map_err(transport)?;
    if resp.status() != http::StatusCode::OK {
        return Err(FetchError::Status {
            uri: uri.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| FetchError::Body {
            uri: uri.to_string(),
            error: format!("reading the body (at most {MAX_JWKS_BYTES} bytes): {e}"),
        })?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    Keys::parse(&text).map_err(|error| FetchError::Body {
        uri: uri.to_string(),
        error,
    })
}

async fn send<IO>(
    io: IO,
    req: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}
