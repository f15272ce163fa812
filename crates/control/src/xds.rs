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
use weft_model::authn::DEFAULT_FETCH_TIMEOUT;
use weft_model::translate::scope::{ProxyScope, SidecarScope, egress_hosts, visible};
use weft_proto::config::IstioResource;
use weft_proto::discovery::aggregated_discovery_service_server::AggregatedDiscoveryService;
use weft_proto::discovery::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as XdsResource,
};
use weft_proto::{ISTIO_RESOURCE_TYPE, MESH_CONFIG_RESOURCE};

use crate::jwks::JwksResolver;
use crate::store::Store;

/// Quiet period before a push: changes arriving together go out together.
const DEBOUNCE_QUIET: Duration = Duration::from_millis(50);
/// Longest a change waits while more keep arriving.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);
/// Most resources in one response: a large sync goes out in parts, so no stream buffers
/// a whole mesh at once. All parts but the last carry `PARTIAL` after their version; the
/// proxy applies the update when the last part arrives.
const MAX_RESOURCES_PER_RESPONSE: usize = 64;
/// Marks a response that more parts of the same update follow.
pub const PARTIAL: &str = "+partial";

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
    /// Push counters and the convergence histogram.
    pub metrics: crate::metrics::Metrics,
}

impl Proxies {
    /// Every connected proxy.
    pub fn list(&self) -> Vec<ProxyStatus> {
        self.connected
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ProxyStatus)) {
        if let Ok(mut m) = self.connected.lock() {
            if let Some(s) = m.get_mut(id) {
                f(s);
            }
        }
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
    ) -> Self {
        let views = publish(store.clone(), Arc::new(mesh_entry(mesh_config)), jwks);
        Xds {
            store,
            proxies,
            stop,
            grace,
            views,
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
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(session(
            self.store.clone(),
            self.proxies.clone(),
            incoming,
            tx,
            self.stop.clone(),
            self.grace,
            self.views.clone(),
        ));
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A resource's name on the wire: `Kind/namespace/name`.
pub fn wire_name(r: &Resource) -> String {
    format!("{}/{}/{}", r.kind(), r.namespace(), r.name())
}

/// One resource as it goes on the wire, encoded once per version for every proxy.
#[derive(Debug)]
pub struct WireEntry {
    /// resourceVersion.
    version: u64,
    /// The resource's namespace.
    namespace: String,
    /// `exportTo`, for VirtualService, DestinationRule and ServiceEntry.
    export_to: Option<Vec<String>>,
    /// Hosts (resolved), for VirtualService, DestinationRule and ServiceEntry: what a
    /// `Sidecar`'s egress hosts select on.
    hosts: Vec<String>,
    /// The encoded `IstioResource`.
    payload: bytes::Bytes,
}

/// Every resource on the wire, shared by all sessions; rebuilt incrementally per change.
#[derive(Debug, Default)]
pub struct WireView {
    /// The store version it reflects.
    version: u64,
    entries: BTreeMap<Arc<str>, Arc<WireEntry>>,
    /// False until the first complete view is built.
    ready: bool,
}

fn entry(r: &Resource) -> Option<WireEntry> {
    let export_to = match r {
        // A delegate (no hosts) goes to every proxy: whether a root may use it depends on
        // the root's namespace, which the proxy's model checks when it merges them.
        Resource::VirtualService(o) if o.spec.hosts.is_empty() => None,
        Resource::VirtualService(o) => Some(o.spec.export_to.clone()),
        Resource::DestinationRule(o) => Some(o.spec.export_to.clone()),
        Resource::ServiceEntry(o) => Some(o.spec.export_to.clone()),
        _ => None,
    };
    let hosts = egress_hosts(r);
    let json = serde_json::to_string(r).ok()?;
    Some(WireEntry {
        hosts,
        version: r
            .metadata()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        namespace: r.namespace().to_string(),
        export_to,
        payload: prost::Message::encode_to_vec(&IstioResource { json }).into(),
    })
}

/// The mesh config as it goes on the wire: to every proxy, versioned by its content (so
/// a proxy reconnecting to a control plane started with another one gets it again).
fn mesh_entry(mesh: &MeshConfig) -> WireEntry {
    let json = serde_json::to_string(mesh).unwrap_or_else(|_| "{}".into());
    let version = fnv(FNV_OFFSET, json.as_bytes());
    WireEntry {
        version,
        namespace: String::new(),
        export_to: None,
        hosts: Vec::new(),
        payload: prost::Message::encode_to_vec(&IstioResource { json }).into(),
    }
}

/// `r` as it goes on the wire: a RequestAuthentication's `jwksUri` keys resolved and
/// inlined (the resource in the store keeps its URI), versioned by resourceVersion and
/// keys together, so new keys reach the proxies as a change.
async fn wire_entry(r: &Resource, jwks: &Arc<JwksResolver>) -> Option<WireEntry> {
    let Resource::RequestAuthentication(o) = r else {
        return entry(r);
    };
    let mut inlined = o.clone();
    let mut keys_hash = None;
    for rule in &mut inlined.spec.jwt_rules {
        if rule.jwks.is_empty() && !rule.jwks_uri.is_empty() {
            let timeout = rule.timeout.map_or(DEFAULT_FETCH_TIMEOUT, |t| t.get());
            rule.jwks = jwks.resolve(&rule.jwks_uri, timeout).await;
            keys_hash = Some(fnv(keys_hash.unwrap_or(FNV_OFFSET), rule.jwks.as_bytes()));
        }
    }
    let mut e = entry(&Resource::RequestAuthentication(inlined))?;
    if let Some(h) = keys_hash {
        e.version = fnv(h, &e.version.to_le_bytes());
    }
    Some(e)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

async fn full_view(store: &Store, mesh: &Arc<WireEntry>, jwks: &Arc<JwksResolver>) -> WireView {
    let mut entries = BTreeMap::new();
    for r in store.all().into_iter().chain(store.registered()) {
        if let Some(e) = wire_entry(&r, jwks).await {
            entries.insert(Arc::from(wire_name(&r)), Arc::new(e));
        }
    }
    entries.insert(Arc::from(MESH_CONFIG_RESOURCE), mesh.clone());
    WireView {
        version: store.version(),
        entries,
        ready: true,
    }
}

/// Keeps the shared wire view current: one task encodes each change once, then wakes
/// every session through the watch channel. The first view is ready once every
/// `jwksUri` in the store had its first fetch; sessions push nothing before.
pub fn publish(
    store: Arc<Store>,
    mesh: Arc<WireEntry>,
    jwks: Arc<JwksResolver>,
) -> tokio::sync::watch::Receiver<Arc<WireView>> {
    let mut changes = store.watch();
    let mut keys = jwks.changes();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(WireView::default()));
    tokio::spawn(async move {
        if tx
            .send(Arc::new(full_view(&store, &mesh, &jwks).await))
            .is_err()
        {
            return;
        }
        loop {
            let next = tokio::select! {
                event = changes.recv() => match event {
                    Ok(event) => {
                        let mut view = WireView {
                            version: store.version(),
                            entries: tx.borrow().entries.clone(),
                            ready: true,
                        };
                        let name: Arc<str> = Arc::from(wire_name(&event.object));
                        let e = match event.kind {
                            "DELETED" => None,
                            _ => wire_entry(&event.object, &jwks).await,
                        };
                        match e {
                            None => {
                                view.entries.remove(&name);
                            }
                            Some(e) => {
                                view.entries.insert(name, Arc::new(e));
                            }
                        }
                        view
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        full_view(&store, &mesh, &jwks).await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                changed = keys.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    keys.borrow_and_update();
                    let mut view = WireView {
                        version: store.version(),
                        entries: tx.borrow().entries.clone(),
                        ready: true,
                    };
                    for r in store.list(weft_api::Kind::RequestAuthentication, None) {
                        if let Some(e) = wire_entry(&r, &jwks).await {
                            view.entries.insert(Arc::from(wire_name(&r)), Arc::new(e));
                        }
                    }
                    view
                }
            };
            if tx.send(Arc::new(next)).is_err() {
                return;
            }
        }
    });
    rx
}

/// What a proxy may see: resources `exportTo` makes visible in its namespace, narrowed by
/// the `Sidecar` that applies to it (the model's [`SidecarScope`], as file mode applies it).
struct Scope {
    namespace: String,
    sidecar: SidecarScope,
}

impl Scope {
    fn new(store: &Store, proxy: &ProxyScope) -> Scope {
        let sidecars = store.list(weft_api::Kind::Sidecar, None);
        Scope {
            namespace: proxy.namespace.clone(),
            sidecar: SidecarScope::of(&sidecars, proxy),
        }
    }

    fn sees(&self, e: &WireEntry) -> bool {
        e.export_to
            .as_ref()
            .is_none_or(|x| visible(x, &e.namespace, &self.namespace))
            && self.sidecar.admits(&e.namespace, &e.hosts)
    }
}

async fn session(
    store: Arc<Store>,
    proxies: Arc<Proxies>,
    mut incoming: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    mut views: tokio::sync::watch::Receiver<Arc<WireView>>,
) {
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
    let session = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut m) = proxies.connected.lock() {
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
    }
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
    let mut sent: HashMap<Arc<str>, u64> = first
        .initial_resource_versions
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), v.parse().unwrap_or(0)))
        .collect();
    // What the proxy confirmed it has (its last ACKed update), and what each update still
    // awaiting its answer would leave it with, by the nonce of its last part. A NACKed
    // update is rejected whole, so `sent` falls back to `acked` and the next push carries
    // everything the proxy is missing, not only what changed since.
    let mut acked = sent.clone();
    let mut awaiting: HashMap<String, HashMap<Arc<str>, u64>> = HashMap::new();
    let mut nonce = 0u64;
    let mut pending_since: Option<Instant> = Some(Instant::now());
    // When the change behind each unacknowledged push was accepted, by nonce.
    let mut in_flight: HashMap<String, Instant> = HashMap::new();
    let mut first_push = true;
    loop {
        let wake =
            pending_since.map(|since| (since + DEBOUNCE_MAX).min(Instant::now() + DEBOUNCE_QUIET));
        tokio::select! {
            _ = stop.changed() => break,
            msg = incoming.message() => match msg {
                Ok(Some(req)) => {
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
                let scope = Scope::new(&store, &proxy);
                let parts = delta(&view, &scope, &mut sent, nonce);
                if !parts.is_empty() {
                    proxies.update(&id, |s| s.pushes += 1);
                    proxies.metrics.pushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let mut failed = false;
                for resp in parts {
                    let last = !resp.system_version_info.ends_with(PARTIAL);
                    if last {
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
    if let Ok(mut m) = proxies.connected.lock() {
        if m.get(&id).is_some_and(|s| s.session == session) {
            m.remove(&id);
        }
    }
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

/// The changes since what the proxy has (visible to its namespace), in parts of at most
/// [`MAX_RESOURCES_PER_RESPONSE`] resources; empty when nothing changed (except the first
/// push, which always goes out so the proxy knows it is in sync).
fn delta(
    view: &WireView,
    scope: &Scope,
    sent: &mut HashMap<Arc<str>, u64>,
    nonce: u64,
) -> Vec<DeltaDiscoveryResponse> {
    let visible_here = |e: &WireEntry| scope.sees(e);
    let mut resources = Vec::new();
    for (name, e) in &view.entries {
        if !visible_here(e) || sent.get(name) == Some(&e.version) {
            continue;
        }
        resources.push(XdsResource {
            name: name.to_string(),
            version: e.version.to_string(),
            resource: Some(prost_types::Any {
                type_url: ISTIO_RESOURCE_TYPE.into(),
                value: e.payload.to_vec(),
            }),
            aliases: Vec::new(),
        });
        sent.insert(name.clone(), e.version);
    }
    let removed: Vec<Arc<str>> = sent
        .keys()
        .filter(|n| view.entries.get(*n).is_none_or(|e| !visible_here(e)))
        .cloned()
        .collect();
    for n in &removed {
        sent.remove(n);
    }
    if resources.is_empty() && removed.is_empty() && nonce > 1 {
        return Vec::new();
    }
    let mut chunks: Vec<Vec<XdsResource>> = Vec::new();
    let mut rest = resources.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(MAX_RESOURCES_PER_RESPONSE).collect());
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, resources)| {
            let last = i + 1 == count;
            DeltaDiscoveryResponse {
                system_version_info: if last {
                    view.version.to_string()
                } else {
                    format!("{}{PARTIAL}", view.version)
                },
                resources,
                type_url: ISTIO_RESOURCE_TYPE.into(),
                nonce: format!("{}-{nonce}-{i}", view.version),
                removed_resources: if last {
                    removed.iter().map(|n| n.to_string()).collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}
