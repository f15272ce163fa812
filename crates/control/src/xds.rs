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
use weft_proto::ISTIO_RESOURCE_TYPE;
use weft_proto::config::IstioResource;
use weft_proto::discovery::aggregated_discovery_service_server::AggregatedDiscoveryService;
use weft_proto::discovery::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as XdsResource,
};

use crate::store::Store;

/// Quiet period before a push: changes arriving together go out together.
const DEBOUNCE_QUIET: Duration = Duration::from_millis(50);
/// Longest a change waits while more keep arriving.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

/// What the control plane knows of one connected proxy.
#[derive(Debug, Clone, Serialize)]
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
    /// Pushes sent.
    pub pushes: u64,
    /// The proxy's admin address, when it told.
    pub admin: Option<String>,
}

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
}

impl Xds {
    /// A server pushing `store`'s resources, recording proxies in `proxies`; every stream
    /// ends when `stop` turns true.
    pub fn new(
        store: Arc<Store>,
        proxies: Arc<Proxies>,
        stop: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> Self {
        Xds {
            store,
            proxies,
            stop,
            grace,
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

/// The resources a proxy in `namespace` sees: VirtualServices, DestinationRules and
/// ServiceEntries by their `exportTo`; everything else as is.
fn view(store: &Store, namespace: &str) -> BTreeMap<String, Resource> {
    store
        .all()
        .into_iter()
        .chain(store.registered())
        .filter(|r| {
            let export = match r {
                Resource::VirtualService(o) => Some(&o.spec.export_to),
                Resource::DestinationRule(o) => Some(&o.spec.export_to),
                Resource::ServiceEntry(o) => Some(&o.spec.export_to),
                _ => None,
            };
            export.is_none_or(|e| visible(e, r.namespace(), namespace))
        })
        .map(|r| (wire_name(&r), r))
        .collect()
}

fn visible(export_to: &[String], ns: &str, proxy_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || (e == "." && ns == proxy_ns) || (e != "~" && e == proxy_ns))
}

async fn session(
    store: Arc<Store>,
    proxies: Arc<Proxies>,
    mut incoming: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
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
    if let Ok(mut m) = proxies.connected.lock() {
        m.insert(
            id.clone(),
            ProxyStatus {
                id: id.clone(),
                namespace: namespace.clone(),
                connected_since: crate::store::rfc3339(SystemTime::now()),
                acked_version: None,
                last_nack: None,
                pushes: 0,
                admin: node
                    .metadata
                    .as_ref()
                    .and_then(|m| m.fields.get("ADMIN"))
                    .and_then(|v| match &v.kind {
                        Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    }),
            },
        );
    }
    tracing::info!(proxy = %id, %namespace, "proxy connected");
    let registration = registered_workload(&node, &namespace).map(|w| store.register(&id, w));
    // What the proxy has: its versions from a previous stream, so a reconnect resyncs.
    let mut sent: HashMap<String, String> = first.initial_resource_versions.clone();
    let mut changes = store.watch();
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
                    record(&proxies, &id, &req);
                }
                _ => break,
            },
            change = changes.recv() => match change {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    pending_since.get_or_insert_with(Instant::now);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = sleep_until(wake) => {
                let changed_at = pending_since.take();
                nonce += 1;
                if let Some(resp) = delta(&store, &namespace, &mut sent, nonce) {
                    proxies.update(&id, |s| s.pushes += 1);
                    proxies.metrics.pushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let (false, Some(at)) = (first_push, changed_at) {
                        in_flight.insert(resp.nonce.clone(), at);
                    }
                    first_push = false;
                    if tx.send(Ok(resp)).await.is_err() {
                        proxies.metrics.push_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
    proxies
        .metrics
        .connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut m) = proxies.connected.lock() {
        m.remove(&id);
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
    let labels: serde_json::Map<String, serde_json::Value> = map("LABELS")
        .into_iter()
        .filter_map(|(k, v)| {
            if let Some(V::StringValue(s)) = v {
                Some((k, s.into()))
            } else {
                None
            }
        })
        .collect();
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

/// The changes since what the proxy has, or `None` when there are none.
fn delta(
    store: &Store,
    namespace: &str,
    sent: &mut HashMap<String, String>,
    nonce: u64,
) -> Option<DeltaDiscoveryResponse> {
    let now = view(store, namespace);
    let mut resources = Vec::new();
    for (name, r) in &now {
        let version = r.metadata().resource_version.clone().unwrap_or_default();
        if sent.get(name) == Some(&version) {
            continue;
        }
        let json = serde_json::to_string(r).ok()?;
        let payload = IstioResource { json };
        resources.push(XdsResource {
            name: name.clone(),
            version: version.clone(),
            resource: Some(prost_types::Any {
                type_url: ISTIO_RESOURCE_TYPE.into(),
                value: prost::Message::encode_to_vec(&payload),
            }),
            aliases: Vec::new(),
        });
        sent.insert(name.clone(), version);
    }
    let removed: Vec<String> = sent
        .keys()
        .filter(|n| !now.contains_key(*n))
        .cloned()
        .collect();
    for n in &removed {
        sent.remove(n);
    }
    if resources.is_empty() && removed.is_empty() && nonce > 1 {
        return None;
    }
    Some(DeltaDiscoveryResponse {
        system_version_info: store.version().to_string(),
        resources,
        type_url: ISTIO_RESOURCE_TYPE.into(),
        nonce: store.version().to_string(),
        removed_resources: removed,
    })
}
