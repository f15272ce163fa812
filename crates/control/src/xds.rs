//! The push side: one long-lived delta xDS stream per proxy. On connect the proxy gets
//! every resource visible to it (`exportTo` honoured); after that, changes are debounced
//! (quiet period, bounded delay) and pushed as deltas: changed resources and the names
//! of removed ones. ACKs and NACKs are recorded per proxy.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};
use weft_api::Resource;
use weft_api::mesh_config::MeshConfig;
use weft_model::translate::scope::ProxyScope;
use weft_proto::discovery::aggregated_discovery_service_server::AggregatedDiscoveryService;
use weft_proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

use crate::jwks::JwksResolver;
use crate::store::Store;
use admission::{LargePushes, Place};
use delta::{Delta, Has, Scope};

mod admission;
mod delta;
mod view;

/// Quiet period before a push: changes arriving together go out together.
const DEBOUNCE_QUIET: Duration = Duration::from_millis(50);
/// Longest a change waits while more keep arriving.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);
pub use delta::PARTIAL;

/// What the control plane knows of one connected proxy (as `/debug/proxies` answers,
/// and as `weft proxy-status` and `weft up` read it back).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ProxyStatus {
    /// The proxy's id.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// Connected since (RFC 3339).
    pub connected_since: String,
    /// The last configuration version it ACKed.
    pub acked_version: Option<String>,
    /// The last NACK's reason, if any.
    pub last_nack: Option<String>,
    /// The nonce of the last complete push sent: the proxy is in sync when it has
    /// ACKed it.
    pub sent_nonce: Option<String>,
    /// Pushes sent.
    pub pushes: u64,
    /// The proxy's admin address, when it told.
    pub admin: Option<String>,
    /// Where its metrics are (`/stats/prometheus`), when it told: a wildcard address
    /// is replaced by the workload's own.
    pub stats: Option<String>,
    /// The workload it registered (a WorkloadEntry), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<serde_json::Value>,
    /// Which stream this is: a reconnect's new session must survive the old one's end.
    #[serde(skip)]
    pub session: u64,
    /// True for a gateway whose CA token proved its namespace: it is sent the Secrets
    /// its Gateways refer to.
    #[serde(default)]
    pub reads_secrets: bool,
}

impl ProxyStatus {
    /// The configuration (store) version the proxy last acknowledged: the acknowledged
    /// push's nonce starts with it.
    pub fn acked_config_version(&self) -> Option<u64> {
        self.acked_version
            .as_deref()?
            .split('-')
            .next()?
            .parse()
            .ok()
    }

    /// True when the proxy acknowledged the last push sent to it.
    pub fn in_sync(&self) -> bool {
        self.sent_nonce.is_some() && self.acked_version == self.sent_nonce
    }
}

/// Numbers the proxy streams.
static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Connected proxies (for `/debug/proxies` and `weft proxy-status`) and push metrics.
#[derive(Debug, Default)]
pub struct Proxies {
    connected: Mutex<BTreeMap<String, ProxyStatus>>,
    /// Bumped whenever a proxy connects, disconnects or its status changes: what the
    /// Gateway API status is worked out from has changed only when it moved.
    generation: std::sync::atomic::AtomicU64,
    /// Push counters and the convergence histogram.
    pub metrics: crate::metrics::Metrics,
}

impl Proxies {
    /// Which state of the connected proxies this is (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes the table of connected proxies (and so its generation).
    fn edit(&self, f: impl FnOnce(&mut BTreeMap<String, ProxyStatus>)) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.connected.lock() {
            f(&mut m);
        }
    }

    /// Every connected proxy.
    pub fn list(&self) -> Vec<ProxyStatus> {
        self.connected
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ProxyStatus)) {
        self.edit(|m| {
            if let Some(s) = m.get_mut(id) {
                f(s);
            }
        });
    }
}

/// The ADS server.
#[derive(Debug, Clone)]
pub struct Xds {
    store: Arc<Store>,
    proxies: Arc<Proxies>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// How long a disconnected proxy's registered workload stays.
    grace: Duration,
    /// The shared, pre-encoded view of every resource.
    views: tokio::sync::watch::Receiver<Arc<WireView>>,
    /// Large pushes go out a few at a time.
    large: LargePushes,
    /// The CA, whose bootstrap tokens prove a proxy's namespace (for Secrets).
    ca: Option<Arc<crate::ca::Ca>>,
}

impl Xds {
    /// A server pushing `store`'s resources, recording proxies in `proxies`; every stream
    /// ends when `stop` turns true.
    pub fn new(
        store: Arc<Store>,
        proxies: Arc<Proxies>,
        stop: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
        mesh_config: &MeshConfig,
        jwks: Arc<JwksResolver>,
        ca: Option<Arc<crate::ca::Ca>>,
    ) -> Self {
        let views = publish(store.clone(), Arc::new(view::mesh_entry(mesh_config)), jwks);
        Xds {
            store,
            proxies,
            stop,
            grace,
            views,
            large: LargePushes::default(),
            ca,
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Xds {
    type DeltaAggregatedResourcesStream = ResponseStream;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        // The proxy's CA bootstrap token, when it sends one: it proves the namespace.
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let incoming = request.into_inner();
        // Parts are built as the stream takes them: a session queues at most two.
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(session(self.clone(), incoming, token, tx));
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }
}

pub use view::{WireEntry, WireView, publish, wire_name};

async fn session(
    xds: Xds,
    mut incoming: Streaming<DeltaDiscoveryRequest>,
    token: Option<String>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
) {
    let Xds {
        store,
        proxies,
        mut stop,
        grace,
        mut views,
        large,
        ca,
    } = xds;
    let first = match incoming.message().await {
        Ok(Some(r)) => r,
        _ => return,
    };
    let node = first.node.clone().unwrap_or_default();
    let namespace = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("NAMESPACE"))
        .and_then(|v| match &v.kind {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "default".into());
    let id = if node.id.is_empty() {
        format!("anonymous-{}", crate::store::uuid())
    } else {
        node.id.clone()
    };
    proxies
        .metrics
        .connected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Secrets go only to a gateway proxy whose bootstrap token proves its namespace.
    let proven = match (&ca, &token) {
        (Some(ca), Some(token)) => match ca.authenticate(token, &id) {
            Ok(who) if who.namespace == namespace => true,
            Ok(who) => {
                tracing::warn!(proxy = %id, %namespace, token_namespace = %who.namespace, "the proxy's token is for another namespace: it gets no Secrets");
                false
            }
            Err(e) => {
                tracing::warn!(proxy = %id, "the proxy's token is refused ({e}): it gets no Secrets");
                false
            }
        },
        _ => false,
    };
    let reads_secrets = weft_proto::is_gateway_id(&id) && proven;
    let session = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    proxies.edit(|m| {
        m.insert(
            id.clone(),
            ProxyStatus {
                id: id.clone(),
                namespace: namespace.clone(),
                connected_since: crate::store::rfc3339(SystemTime::now()),
                acked_version: None,
                last_nack: None,
                sent_nonce: None,
                pushes: 0,
                session,
                reads_secrets,
                admin: node
                    .metadata
                    .as_ref()
                    .and_then(|m| m.fields.get("ADMIN"))
                    .and_then(|v| match &v.kind {
                        Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    }),
                stats: stats_address(&node),
                workload: registered_workload(&node, &namespace)
                    .and_then(|w| serde_json::to_value(&w).ok()),
            },
        );
    });
    tracing::info!(proxy = %id, %namespace, "proxy connected");
    let registration = registered_workload(&node, &namespace).map(|w| store.register(&id, w));
    let labels: BTreeMap<String, String> = match node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("LABELS"))
        .and_then(|v| v.kind.as_ref())
    {
        Some(prost_types::value::Kind::StructValue(st)) => st
            .fields
            .iter()
            .filter_map(|(k, v)| match &v.kind {
                Some(prost_types::value::Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    // A gateway (`router~`) is not scoped by Sidecar resources.
    let proxy = ProxyScope {
        namespace: namespace.clone(),
        labels,
        gateway: weft_proto::is_gateway_id(&id),
    };
    // What the proxy has: its versions from a previous stream, so a reconnect resyncs.
    let told: HashMap<Arc<str>, u64> = first
        .initial_resource_versions
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), v.parse().unwrap_or(0)))
        .collect();
    let mut sent = Has::Told(Arc::new(told));
    // What the proxy confirmed it has (its last ACKed update), and what each update still
    // awaiting its answer would leave it with, by the nonce of its last part. A NACKed
    // update is rejected whole, so `sent` falls back to `acked` and the next push carries
    // everything the proxy is missing, not only what changed since. All of them share
    // the views pushed: a session holds no copy of the mesh.
    let mut acked = sent.clone();
    let mut awaiting: HashMap<String, Has> = HashMap::new();
    // The scope of the last push, and the Sidecars it was worked out from.
    let mut scope: Option<(Arc<Vec<Resource>>, Arc<Scope>)> = None;
    let mut nonce = 0u64;
    let mut pending_since: Option<Instant> = Some(Instant::now());
    // When the change behind each unacknowledged push was accepted, by nonce.
    let mut in_flight: HashMap<String, Instant> = HashMap::new();
    let mut first_push = true;
    // The place of this session's large push in progress, if any.
    let mut place: Option<Place> = None;
    loop {
        let wake =
            pending_since.map(|since| (since + DEBOUNCE_MAX).min(Instant::now() + DEBOUNCE_QUIET));
        tokio::select! {
            _ = stop.changed() => break,
            _ = sleep_until(place.as_ref().map(|p| p.until)) => place = None,
            msg = incoming.message() => match msg {
                Ok(Some(req)) => {
                    if place.as_ref().is_some_and(|p| p.answered_by(&req.response_nonce)) {
                        place = None;
                    }
                    if let Some(since) = in_flight.remove(&req.response_nonce) {
                        if req.error_detail.is_none() {
                            proxies.metrics.observe_convergence(since.elapsed());
                        }
                    }
                    if req.error_detail.is_some() && !req.response_nonce.is_empty() {
                        sent = acked.clone();
                        awaiting.clear();
                    } else if let Some(has) = awaiting.remove(&req.response_nonce) {
                        acked = has;
                    }
                    record(&proxies, &id, &req);
                }
                _ => break,
            },
            changed = views.changed() => {
                if changed.is_err() {
                    break;
                }
                pending_since.get_or_insert_with(Instant::now);
            },
            _ = sleep_until(wake) => {
                // Nothing goes out before the first complete view (its jwksUris fetched
                // once); its arrival wakes the loop again.
                if !views.borrow().ready {
                    pending_since = None;
                    continue;
                }
                let changed_at = pending_since.take();
                nonce += 1;
                let view = views.borrow_and_update().clone();
                // The scope is worked out again only when the view's scoping resources
                // (Sidecars, ReferenceGrants, Gateways) changed, and shared from push to
                // push while it stays the same, so the delta comes from the names changed
                // since the last push.
                let current = match scope.take() {
                    Some((scoping, s)) if Arc::ptr_eq(&scoping, &view.scoping) => s,
                    was => {
                        let now = Scope::new(&view.scoping, &proxy, reads_secrets);
                        match was {
                            Some((_, s)) if *s == now => s,
                            _ => Arc::new(now),
                        }
                    }
                };
                scope = Some((view.scoping.clone(), current.clone()));
                let delta = Delta::between(&sent, &view, &current);
                let quiet = delta.is_empty() && nonce > 1;
                sent = Has::Sent { view: view.clone(), scope: current };
                if quiet {
                    if awaiting.is_empty() {
                        // In sync and nothing changed for it: what it acknowledged is
                        // this view too (so older views are not kept for it).
                        acked = sent.clone();
                    }
                    continue;
                }
                if delta.is_large() && place.is_none() {
                    place = tokio::select! {
                        p = large.admit() => Some(p),
                        _ = stop.changed() => break,
                    };
                }
                let parts = delta.parts(view.version, nonce);
                proxies.update(&id, |s| s.pushes += 1);
                proxies.metrics.pushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut failed = false;
                for resp in parts {
                    let last = !resp.system_version_info.ends_with(PARTIAL);
                    if last {
                        if let Some(p) = place.as_mut() {
                            p.sent(&resp.nonce);
                        }
                        awaiting.insert(resp.nonce.clone(), sent.clone());
                        proxies.update(&id, |s| s.sent_nonce = Some(resp.nonce.clone()));
                    }
                    if let (true, false, Some(at)) = (last, first_push, changed_at) {
                        in_flight.insert(resp.nonce.clone(), at);
                    }
                    if tx.send(Ok(resp)).await.is_err() {
                        proxies.metrics.push_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        failed = true;
                        break;
                    }
                }
                first_push = false;
                if failed {
                    break;
                }
            }
        }
    }
    proxies
        .metrics
        .connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    proxies.edit(|m| {
        if m.get(&id).is_some_and(|s| s.session == session) {
            m.remove(&id);
        }
    });
    tracing::info!(proxy = %id, "proxy disconnected");
    if let Some(generation) = registration {
        // The workload stays for a grace period, so a quick reconnect keeps it in place.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            store.unregister(&id, generation);
        });
    }
}

/// The address the proxy's `/stats/prometheus` is reached at: its `STATS`, with a
/// wildcard host (`0.0.0.0:15020`, namespace mode) replaced by its `INSTANCE_IP`.
fn stats_address(node: &weft_proto::discovery::Node) -> Option<String> {
    let text = |k: &str| match node
        .metadata
        .as_ref()?
        .fields
        .get(k)
        .and_then(|v| v.kind.as_ref())
    {
        Some(prost_types::value::Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let stats: std::net::SocketAddr = text("STATS")?.parse().ok()?;
    if !stats.ip().is_unspecified() {
        return Some(stats.to_string());
    }
    let ip: std::net::IpAddr = text("INSTANCE_IP")?.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, stats.port()).to_string())
}

/// The WorkloadEntry a proxy registers through its node metadata (`WORKLOAD_NAME`,
/// `INSTANCE_IP`, `SERVICE_ACCOUNT`, `LABELS`, `PORTS`), as Istio's auto-registration does.
fn registered_workload(node: &weft_proto::discovery::Node, namespace: &str) -> Option<Resource> {
    use prost_types::value::Kind as V;
    let fields = &node.metadata.as_ref()?.fields;
    let text = |k: &str| match fields.get(k).and_then(|v| v.kind.as_ref()) {
        Some(V::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let map = |k: &str| match fields.get(k).and_then(|v| v.kind.as_ref()) {
        Some(V::StructValue(s)) => s
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.kind.clone()))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let (name, address) = (text("WORKLOAD_NAME")?, text("INSTANCE_IP")?);
    let mut labels: serde_json::Map<String, serde_json::Value> = map("LABELS")
        .into_iter()
        .filter_map(|(k, v)| {
            if let Some(V::StringValue(s)) = v {
                Some((k, s.into()))
            } else {
                None
            }
        })
        .collect();
    // A sidecar with a workload certificate: callers send it mesh mTLS (Istio's label).
    if text("TLS_MODE").as_deref() == Some("istio") {
        labels.insert("security.istio.io/tlsMode".into(), "istio".into());
    }
    let ports: serde_json::Map<String, serde_json::Value> = map("PORTS")
        .into_iter()
        .filter_map(|(k, v)| {
            if let Some(V::NumberValue(n)) = v {
                Some((k, (n as u64).into()))
            } else {
                None
            }
        })
        .collect();
    let json = serde_json::json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": name, "namespace": namespace, "labels": labels.clone(), "annotations": {"weft.io/registered-by": node.id}},
        "spec": {"address": address, "labels": labels, "ports": ports, "serviceAccount": text("SERVICE_ACCOUNT").unwrap_or_else(|| "default".into())},
    });
    let loaded = weft_api::load_str("registration", &json.to_string());
    if loaded.has_errors() {
        tracing::warn!(proxy = %node.id, "workload registration refused: {:?}", loaded.diagnostics);
        return None;
    }
    loaded.resources.into_iter().next().map(|l| l.resource)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn record(proxies: &Proxies, id: &str, req: &DeltaDiscoveryRequest) {
    if req.response_nonce.is_empty() {
        return;
    }
    match &req.error_detail {
        Some(err) => {
            proxies
                .metrics
                .nacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(proxy = %id, nonce = %req.response_nonce, "proxy NACKed: {}", err.message);
            proxies.update(id, |s| s.last_nack = Some(err.message.clone()));
        }
        None => proxies.update(id, |s| s.acked_version = Some(req.response_nonce.clone())),
    }
}
