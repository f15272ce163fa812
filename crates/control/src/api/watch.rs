//! Watches (`?watch=true`): one JSON event per line (`ADDED`, `MODIFIED`, `DELETED`),
//! filtered by namespace and selectors; `BOOKMARK`s when asked for
//! (`allowWatchBookmarks`); `timeoutSeconds`; and, for a watcher that fell behind, an
//! `ERROR` event with `410 Expired` after which the stream ends (it must list again).
//! With `Accept: ...;as=Table` each event's object is a one-row Table, as kubectl's
//! `get -w` expects. Objects whose status the control plane works out (the Gateway API's)
//! carry it, and a change of the status alone (a gateway proxy connecting, a backend
//! appearing) is sent as `MODIFIED` within [`STATUS_EVERY`].

use std::collections::HashMap;
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
use crate::xds::Proxies;

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
/// How often a watch of the Gateway API's kinds looks for status-only changes.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The statuses last sent on a watch, by object.
type Sent = Arc<std::sync::Mutex<HashMap<(String, String), serde_json::Value>>>;

/// The watch response for `target`.
pub fn stream(
    store: &Arc<Store>,
    proxies: &Arc<Proxies>,
    target: &Target,
    watch: Watch,
) -> Response<ApiBody> {
    let (kind, namespace) = (target.kind, target.namespace.clone());
    let with_status = super::gateway_status::KINDS.contains(&kind);
    let sent: Sent = Arc::default();
    let api_version = target.api_version();
    let receiver = store.watch();
    let keep = Arc::new(move |object: &weft_api::Resource| {
        object.kind() == kind
            && namespace
                .as_deref()
                .is_none_or(|ns| object.namespace() == ns)
            && watch
                .labels
                .as_ref()
                .is_none_or(|s| s.matches(&object.metadata().labels))
            && watch.fields.as_ref().is_none_or(|s| s.matches(object))
    });
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
    let statuses = Arc::new(Statuses {
        store: store.clone(),
        proxies: proxies.clone(),
        kind,
        namespace: target.namespace.clone(),
        keep: keep.clone(),
        memo: Default::default(),
    });
    let frame = {
        let (statuses, sent) = (statuses.clone(), sent.clone());
        move |e: &Event| -> Option<Vec<u8>> {
            let mut one = [e.object.clone()];
            let id = (
                e.object.namespace().to_string(),
                e.object.name().to_string(),
            );
            if with_status && e.kind == "DELETED" {
                sent.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
            if with_status && e.kind != "DELETED" {
                if let Some(status) = statuses.of(&id) {
                    super::gateway_status::set(&mut one[0], status.clone());
                    sent.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, status);
                }
            }
            let object = if as_table {
                table::render(kind, &one, version_of(&e.object))
            } else {
                serde_json::to_value(&one[0]).ok()?
            };
            serde_json::to_vec(&json!({"type": e.kind, "object": object})).ok()
        }
    };
    // What a watcher that listed first (from a resourceVersion) already has: the current
    // statuses, so a later change of one alone is sent.
    if with_status {
        let now = statuses.all();
        sent.lock().unwrap_or_else(|p| p.into_inner()).extend(
            now.iter()
                .map(|(id, (_, status))| (id.clone(), status.clone())),
        );
    }
    // The objects whose status changed since last sent, as MODIFIED events; worked out
    // again only when the store or the connected proxies moved since the last look.
    let status_changes = {
        let (statuses, sent) = (statuses.clone(), sent.clone());
        let looked = Arc::new(std::sync::Mutex::new((0u64, u64::MAX)));
        move || -> Vec<Event> {
            let now = statuses.state();
            {
                let mut last = looked.lock().unwrap_or_else(|p| p.into_inner());
                if *last == now {
                    return Vec::new();
                }
                *last = now;
            }
            let all = statuses.all();
            let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
            all.iter()
                .filter(|(id, (_, status))| sent.get(id).is_some_and(|was| was != status))
                .map(|(_, (object, status))| {
                    let mut object = object.clone();
                    super::gateway_status::set(&mut object, status.clone());
                    Event {
                        kind: "MODIFIED",
                        object,
                    }
                })
                .collect()
        }
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
    let ticks = Ticks {
        bookmark: tokio::time::Instant::now() + BOOKMARK_EVERY,
        status: tokio::time::Instant::now() + STATUS_EVERY,
    };
    let changes = futures_util::stream::unfold(Some((receiver, ticks)), move |state| {
        let status_changes = status_changes.clone();
        async move {
            let (mut rx, mut ticks) = state?;
            let bookmark = async {
                if bookmarks {
                    tokio::time::sleep_until(ticks.bookmark).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let status = async {
                if with_status {
                    tokio::time::sleep_until(ticks.status).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(e) => Some((vec![Step::Event(e)], Some((rx, ticks)))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((vec![Step::Lagged(n)], None)),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                },
                () = bookmark => {
                    ticks.bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    Some((vec![Step::Bookmark], Some((rx, ticks))))
                }
                () = status => {
                    ticks.status = tokio::time::Instant::now() + STATUS_EVERY;
                    let events = status_changes().into_iter().map(Step::Status).collect();
                    Some((events, Some((rx, ticks))))
                }
            }
        }
    })
    .flat_map(futures_util::stream::iter);
    let lines = futures_util::stream::iter(initial.into_iter().map(Step::Event))
        .chain(changes)
        .filter_map(move |step| {
            let line = match step {
                Step::Event(e) => {
                    let fresh = since.is_none_or(|v| version_of(&e.object) > v);
                    (fresh && keep(&e.object)).then(|| frame(&e)).flatten()
                }
                // Its resourceVersion is the object's, which the watcher may have seen.
                Step::Status(e) => frame(&e),
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

/// The statuses of a watch's objects, worked out once per state of the store and of the
/// connected proxies, however many events and ticks ask.
struct Statuses {
    store: Arc<Store>,
    proxies: Arc<Proxies>,
    kind: weft_api::Kind,
    namespace: Option<String>,
    keep: Arc<dyn Fn(&weft_api::Resource) -> bool + Send + Sync>,
    /// The state they were worked out for, and each object with its status.
    memo: std::sync::Mutex<Option<Memo>>,
}

/// Statuses worked out, with the state they were worked out for.
type Memo = ((u64, u64), Arc<Worked>);

/// Each watched object (namespace, name), with its status.
type Worked = HashMap<(String, String), (weft_api::Resource, serde_json::Value)>;

impl Statuses {
    /// The state of what statuses are worked out from.
    fn state(&self) -> (u64, u64) {
        (self.store.version(), self.proxies.generation())
    }

    /// Every watched object with its current status.
    fn all(&self) -> Arc<Worked> {
        let now = self.state();
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, worked)) = memo.as_ref().filter(|(at, _)| *at == now) {
            return worked.clone();
        }
        let mut items: Vec<weft_api::Resource> = self
            .store
            .list(self.kind, self.namespace.as_deref())
            .into_iter()
            .filter(|r| (self.keep)(r))
            .collect();
        super::gateway_status::fill(&self.store, &self.proxies, &mut items);
        let worked: Worked = items
            .into_iter()
            .filter_map(|r| {
                let status = serde_json::to_value(&r).ok()?["status"].clone();
                Some((
                    (r.namespace().to_string(), r.name().to_string()),
                    (r, status),
                ))
            })
            .collect();
        let worked = Arc::new(worked);
        *memo = Some((now, worked.clone()));
        worked
    }

    /// The current status of object `id`.
    fn of(&self, id: &(String, String)) -> Option<serde_json::Value> {
        self.all().get(id).map(|(_, status)| status.clone())
    }
}

/// When a watch next sends a bookmark and looks for status changes.
#[derive(Clone, Copy)]
struct Ticks {
    bookmark: tokio::time::Instant,
    status: tokio::time::Instant,
}

/// One thing a watch may send.
enum Step {
    Event(Event),
    /// An object whose status alone changed.
    Status(Event),
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

    /// A watch of every object, as JSON events, from `since`.
    fn plain_watch(since: Option<u64>) -> Watch {
        Watch {
            labels: None,
            fields: None,
            bookmarks: false,
            timeout: None,
            table: false,
            since,
        }
    }

    /// The next event line of a watch body.
    async fn next_event(body: &mut ApiBody) -> serde_json::Value {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on")
            .expect("a frame");
        let data = frame.into_data().expect("data");
        serde_json::from_slice(&data).expect("an event")
    }

    fn condition<'a>(route: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
        route["status"]["parents"][0]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == kind))
            .unwrap_or_else(|| panic!("a {kind} condition: {route:#}"))
    }

    /// A watch of HTTPRoutes carries their status, and a change of the status alone (the
    /// backend Service appearing) comes as MODIFIED, with the condition's
    /// lastTransitionTime moved to when it changed.
    #[tokio::test]
    async fn a_status_only_change_is_sent_as_modified() {
        let dir = std::env::temp_dir().join(format!(
            "weft-watch-status-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).expect("store"));
        let put = |yaml: &str| {
            let r = weft_api::load_str("t", yaml).resources.remove(0).resource;
            store.put(r, false).expect("stored");
        };
        put(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{kind: Service, group: '', name: web}]\n  rules: [{backendRefs: [{name: web-v2, port: 8080}]}]\n",
        );
        let target = super::super::path::parse(
            "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes",
        )
        .expect("path");
        let watch = plain_watch(None);
        let mut body = stream(&store, &Arc::new(Proxies::default()), &target, watch).into_body();
        let added = next_event(&mut body).await;
        assert_eq!(added["type"], "ADDED");
        let before = condition(&added["object"], "ResolvedRefs").clone();
        assert_eq!(before["reason"], "BackendNotFound", "{added:#}");
        // A second passes, so the change's time differs from the creation's.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        put(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: default}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 8080}]\n",
        );
        let modified = next_event(&mut body).await;
        assert_eq!(modified["type"], "MODIFIED", "{modified:#}");
        assert_eq!(
            modified["object"]["metadata"]["resourceVersion"],
            added["object"]["metadata"]["resourceVersion"],
            "the route itself did not change"
        );
        let after = condition(&modified["object"], "ResolvedRefs");
        assert_eq!(after["status"], "True", "{modified:#}");
        assert_ne!(after["lastTransitionTime"], before["lastTransitionTime"]);
        // A watcher that listed first and watches from that version gets it too.
        let watch_from = plain_watch(Some(store.version()));
        let mut from_version =
            stream(&store, &Arc::new(Proxies::default()), &target, watch_from).into_body();
        store
            .delete(&crate::store::Key {
                kind: weft_api::Kind::Service,
                namespace: "default".into(),
                name: "web-v2".into(),
            })
            .expect("deleted");
        let modified = next_event(&mut from_version).await;
        assert_eq!(modified["type"], "MODIFIED", "{modified:#}");
        assert_eq!(
            condition(&modified["object"], "ResolvedRefs")["reason"],
            "BackendNotFound"
        );
        // Accepted did not change: its time stays.
        assert_eq!(
            condition(&modified["object"], "Accepted")["lastTransitionTime"],
            condition(&added["object"], "Accepted")["lastTransitionTime"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_and_its_stream_ends() {
        let dir = std::env::temp_dir().join(format!("weft-watch-lag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Store::open(&dir).expect("store"));
        let target = super::super::path::parse(
            "/apis/networking.istio.io/v1/namespaces/default/destinationrules",
        )
        .expect("path");
        let watch = plain_watch(Some(store.version()));
        let resp = stream(&store, &Arc::new(Proxies::default()), &target, watch);
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
