//! Watches (`?watch=true`): one JSON event per line (`ADDED`, `MODIFIED`, `DELETED`),
//! filtered by namespace and selectors; `BOOKMARK`s when asked for
//! (`allowWatchBookmarks`); `timeoutSeconds`; and, for a watcher that fell behind, an
//! `ERROR` event with `410 Expired` after which the stream ends (it must list again).
//! With `Accept: ...;as=Table` each event's object is a one-row Table, as kubectl's
//! `get -w` expects.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;

use super::ApiBody;
use super::path::Target;
use super::selector::{FieldSelector, LabelSelector};
use super::table;
use crate::store::{Event, Store};

/// How a watch filters and frames its events.
pub struct Watch {
    /// Only objects these select.
    pub labels: Option<LabelSelector>,
    /// Only objects these select.
    pub fields: Option<FieldSelector>,
    /// Send bookmarks.
    pub bookmarks: bool,
    /// End after this long.
    pub timeout: Option<Duration>,
    /// Objects as one-row Tables.
    pub table: bool,
    /// Events after this resource version only; `None`: the current objects first, as `ADDED`.
    pub since: Option<u64>,
}

/// How often a bookmark is sent.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

/// The watch response for `target`.
pub fn stream(store: &Arc<Store>, target: &Target, watch: Watch) -> Response<ApiBody> {
    let (kind, namespace) = (target.kind, target.namespace.clone());
    let api_version = target.api_version();
    let receiver = store.watch();
    let keep = move |object: &weft_api::Resource| {
        object.kind() == kind
            && namespace
                .as_deref()
                .is_none_or(|ns| object.namespace() == ns)
            && watch
                .labels
                .as_ref()
                .is_none_or(|s| s.matches(&object.metadata().labels))
            && watch.fields.as_ref().is_none_or(|s| s.matches(object))
    };
    let since = watch.since;
    // Without a version: what exists now, as ADDED (subscribed first, so nothing is missed).
    let initial: Vec<Event> = match since {
        Some(_) => Vec::new(),
        None => store
            .list(kind, target.namespace.as_deref())
            .into_iter()
            .filter(|r| keep(r))
            .map(|object| Event {
                kind: "ADDED",
                object,
            })
            .collect(),
    };
    let as_table = watch.table;
    let frame = move |e: &Event| -> Option<Vec<u8>> {
        let object = if as_table {
            table::render(kind, std::slice::from_ref(&e.object), version_of(&e.object))
        } else {
            serde_json::to_value(&e.object).ok()?
        };
        serde_json::to_vec(&json!({"type": e.kind, "object": object})).ok()
    };
    let bookmark = {
        let store = store.clone();
        let api_version = api_version.clone();
        move || {
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": {
                "kind": kind.name(), "apiVersion": api_version,
                "metadata": {"resourceVersion": store.version().to_string()},
            }}))
            .ok()
        }
    };
    let bookmarks = watch.bookmarks;
    let changes = futures_util::stream::unfold(Some(receiver), move |rx| async move {
        let mut rx = rx?;
        let tick = async {
            if bookmarks {
                tokio::time::sleep(BOOKMARK_EVERY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            got = rx.recv() => match got {
                Ok(e) => Some((Step::Event(e), Some(rx))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((Step::Lagged(n), None)),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            },
            () = tick => Some((Step::Bookmark, Some(rx))),
        }
    });
    let lines = futures_util::stream::iter(initial.into_iter().map(Step::Event))
        .chain(changes)
        .filter_map(move |step| {
            let line = match step {
                Step::Event(e) => {
                    let fresh = since.is_none_or(|v| version_of(&e.object) > v);
                    (fresh && keep(&e.object)).then(|| frame(&e)).flatten()
                }
                Step::Bookmark => bookmark(),
                Step::Lagged(missed) => serde_json::to_vec(&json!({
                    "type": "ERROR",
                    "object": {
                        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
                        "message": format!("the watch fell {missed} events behind; list again and watch from there"),
                    }
                }))
                .ok(),
            };
            let frame = line.map(|mut v| {
                v.push(b'\n');
                Ok::<_, Infallible>(Frame::data(Bytes::from(v)))
            });
            async move { frame }
        });
    let body = match watch.timeout {
        Some(t) => StreamBody::new(lines.take_until(tokio::time::sleep(t)).boxed()).boxed_unsync(),
        None => StreamBody::new(lines.boxed()).boxed_unsync(),
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// One thing a watch may send.
enum Step {
    Event(Event),
    Bookmark,
    Lagged(u64),
}

fn version_of(r: &weft_api::Resource) -> u64 {
    r.metadata()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lagging_watcher_is_told_and_its_stream_ends() {
        let dir = std::env::temp_dir().join(format!("weft-watch-lag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).expect("store"));
        let target = super::super::path::parse(
            "/apis/networking.istio.io/v1/namespaces/default/destinationrules",
        )
        .expect("path");
        let watch = Watch {
            labels: None,
            fields: None,
            bookmarks: false,
            timeout: None,
            table: false,
            since: Some(store.version()),
        };
        let resp = stream(&store, &target, watch);
        // More changes than the watch buffers, before the watcher reads any.
        for i in 0..1100 {
            let text = format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec: {{host: h{i}}}\n"
            );
            let r = weft_api::load_str("t", &text).resources.remove(0).resource;
            store.put(r, false).expect("stored");
        }
        let body = resp.into_body().collect().await.expect("ends").to_bytes();
        let text = String::from_utf8_lossy(&body);
        let last = text.lines().last().expect("a line");
        assert!(last.contains(r#""code":410"#), "{last}");
        assert!(last.contains("Expired"), "{last}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
