//! The keys behind RequestAuthentication `jwksUri`s, fetched by the control plane and
//! pushed inline, as istiod does by default: proxies then never reach the issuer.
//!
//! A URI is fetched when a push first needs it (bounded by the rule's `timeout`, at most
//! [`weft_fetch`]'s size limit of [`MAX_JWKS_BYTES`]), then again every refresh interval
//! (Istio's `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, 20 minutes). A failed fetch keeps the
//! last good keys; with none yet, the rule gets [`FAKE_JWKS`], a key nobody holds, so its
//! tokens are refused (401) while requests without a token pass on to authorization —
//! Istio's behaviour. Failed URIs are retried sooner, backing off up to the interval.
//! When a URI's keys change, [`JwksResolver::changes`] ticks and the wire view is rebuilt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use weft_model::authn::Keys;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// istiod's default refresh interval.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(20 * 60);

/// The first retry after a failed fetch; doubled up to the refresh interval.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A P-256 public key whose private key was discarded when it was made: what a rule whose
/// keys could never be fetched verifies against (Istio's `FakeJwks`).
pub const FAKE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"weft-jwks-unavailable","use":"sig","alg":"ES256","x":"12tOitBe8blgOti_Vp3tuMp4cJxVoGAa7_YYD9ffh6w","y":"v7nGm0XD9tQbfsUO0DkGWan9DqQhOnWMrwTeYQLhh-I"}]}"#;

/// What is known of one URI.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UriKeys {
    /// The last good key set, as fetched (it parsed as a key set).
    pub jwks: Option<String>,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<String>,
    /// Fetches that succeeded.
    pub fetches: u64,
    /// Fetches that failed.
    pub failures: u64,
}

/// Every `jwksUri` pushes have needed, with its keys.
#[derive(Debug)]
pub struct JwksResolver {
    uris: Mutex<HashMap<String, UriKeys>>,
    refresh: Duration,
    changed: watch::Sender<u64>,
}

impl JwksResolver {
    /// A resolver refreshing each URI every `refresh`.
    pub fn new(refresh: Duration) -> Arc<JwksResolver> {
        Arc::new(JwksResolver {
            uris: Mutex::new(HashMap::new()),
            refresh,
            changed: watch::channel(0).0,
        })
    }

    /// Ticks whenever the keys of some URI change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// What is known of every URI (for `/debug/jwks`).
    pub fn snapshot(&self) -> HashMap<String, UriKeys> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UriKeys>> {
        self.uris.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key set to push for `uri`: the last good one, fetched now (within `timeout`)
    /// the first time; [`FAKE_JWKS`] while none could be fetched.
    pub async fn resolve(self: &Arc<Self>, uri: &str, timeout: Duration) -> String {
        if let Some(known) = self.lock().get(uri) {
            return known.jwks.clone().unwrap_or_else(|| FAKE_JWKS.to_string());
        }
        let first = fetch(uri, timeout).await;
        let mut uris = self.lock();
        if let Some(known) = uris.get(uri) {
            // Another push fetched it meanwhile; its refresher runs.
            return known.jwks.clone().unwrap_or_else(|| FAKE_JWKS.to_string());
        }
        let mut known = UriKeys::default();
        let failed = record(&mut known, uri, first);
        let jwks = known.jwks.clone();
        uris.insert(uri.to_string(), known);
        drop(uris);
        tokio::spawn(refresher(
            Arc::downgrade(self),
            uri.to_string(),
            timeout,
            failed,
        ));
        jwks.unwrap_or_else(|| FAKE_JWKS.to_string())
    }
}

/// Records a fetch's outcome; true when it failed.
fn record(known: &mut UriKeys, uri: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(jwks) => {
            known.fetches += 1;
            known.last_error = None;
            known.jwks = Some(jwks);
            false
        }
        Err(error) => {
            known.failures += 1;
            tracing::warn!(%uri, %error, kept_last_good = known.jwks.is_some(), "JWKS fetch failed");
            known.last_error = Some(error);
            true
        }
    }
}

/// Fetches `uri` again every refresh interval (sooner after a failure) while the
/// resolver lives, ticking [`JwksResolver::changes`] when the keys differ.
async fn refresher(resolver: Weak<JwksResolver>, uri: String, timeout: Duration, failed: bool) {
    let mut backoff = RETRY_AFTER_FAILURE;
    let mut failed = failed;
    loop {
        let Some(refresh) = resolver.upgrade().map(|r| r.refresh) else {
            return;
        };
        let wait = if failed {
            let wait = backoff.min(refresh);
            backoff = (backoff * 2).min(refresh);
            wait
        } else {
            backoff = RETRY_AFTER_FAILURE;
            refresh
        };
        tokio::time::sleep(wait).await;
        let result = fetch(&uri, timeout).await;
        let Some(resolver) = resolver.upgrade() else {
            return;
        };
        let changed = {
            let mut uris = resolver.lock();
            let known = uris.entry(uri.clone()).or_default();
            let before = known.jwks.clone();
            failed = record(known, &uri, result);
            known.jwks != before
        };
        if changed {
            tracing::info!(%uri, "JWKS changed; pushing the new keys");
            resolver.changed.send_modify(|n| *n += 1);
        }
    }
}

/// One fetch of `uri`, kept only when it reads as a key set (a push must never carry a
/// `jwks` the proxy would refuse).
async fn fetch(uri: &str, timeout: Duration) -> Result<String, String> {
    let body = weft_fetch::get(uri, timeout, MAX_JWKS_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| format!("{uri}: not UTF-8"))?;
    Keys::parse(&text).map_err(|e| format!("{uri}: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_key_set_is_a_usable_key_set() {
        assert_eq!(Keys::parse(FAKE_JWKS).expect("parses").len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_uri_resolves_to_the_fake_keys_and_records_why() {
        let resolver = JwksResolver::new(Duration::from_secs(60));
        // Nothing listens on port 1.
        let uri = "http://127.0.0.1:1/jwks";
        let got = resolver.resolve(uri, Duration::from_secs(1)).await;
        assert_eq!(got, FAKE_JWKS);
        let known = &resolver.snapshot()[uri];
        assert_eq!((known.fetches, known.failures), (0, 1));
        assert!(
            known
                .last_error
                .as_deref()
                .expect("an error")
                .contains("connect")
        );
    }
}
