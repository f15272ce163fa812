//! Collecting the proxies' metrics: every [`INTERVAL`], each connected proxy that told
//! its stats address is asked for `/stats/prometheus`, as Prometheus would scrape it,
//! and the answer goes into the [`History`]. `docs/decisions.md` says why pull, not push.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use tokio::net::TcpStream;

use super::History;
use crate::xds::Proxies;

/// How often every proxy is scraped.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest exposition read (a proxy keeps at most 5,000 series of each kind).
const MAX_EXPOSITION: usize = 32 << 20;
/// Scrapes in flight at once.
const CONCURRENCY: usize = 64;

/// Scrapes every proxy of `proxies` into `history` until `stop` turns true.
pub async fn run(
    history: Arc<History>,
    proxies: Arc<Proxies>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        scrape_all(&history, &proxies).await;
    }
}

/// One round: every proxy once.
pub async fn scrape_all(history: &Arc<History>, proxies: &Proxies) {
    let targets: Vec<(String, String)> = proxies
        .list()
        .into_iter()
        .filter_map(|p| p.stats.map(|s| (p.id, s)))
        .collect();
    // Proxies that left are forgotten, so a returning one starts from zero.
    for gone in history.proxies() {
        if !targets.iter().any(|(id, _)| *id == gone) {
            history.forget(&gone);
        }
    }
    scrape_targets(history, targets, None).await;
}

/// Scrapes each `(proxy id, stats address)` once; each answer counts as of when it came
/// (or as of `at`, for the bench's simulated clock).
pub async fn scrape_targets(
    history: &Arc<History>,
    targets: Vec<(String, String)>,
    at: Option<u64>,
) {
    futures_util::stream::iter(targets)
        .for_each_concurrent(CONCURRENCY, |(id, addr)| async move {
            history
                .scrapes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match fetch(&addr, "/stats/prometheus").await {
                Ok(text) => history.ingest(&id, &text, at.unwrap_or_else(super::now_secs)),
                Err(e) => {
                    history
                        .failed_scrapes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(proxy = %id, %addr, error = %e, "scrape failed");
                }
            }
        })
        .await;
}

/// GETs `path` from `addr` over HTTP/1.1 and returns the body as text.
pub async fn fetch(addr: &str, path: &str) -> Result<String, String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, addr)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_EXPOSITION)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8".to_string())
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}
