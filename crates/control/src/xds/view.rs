//! The wire view: every resource encoded once per version, shared by every proxy's
//! session. One task keeps it current; each view also records which names changed in
//! the last views, so a session computes its delta from the changes, not the whole mesh.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::Resource;
use weft_api::mesh_config::MeshConfig;
use weft_model::authn::DEFAULT_FETCH_TIMEOUT;
use weft_model::translate::scope::egress_hosts;
use weft_proto::MESH_CONFIG_RESOURCE;
use weft_proto::config::IstioResource;

use crate::jwks::JwksResolver;
use crate::store::Store;

/// Most changed names a view remembers: a session further behind compares whole views.
pub(super) const CHANGE_LOG: usize = 1024;

/// Every resource on the wire, shared by all sessions; rebuilt incrementally per change.
#[derive(Debug, Default)]
pub struct WireView {
    /// The store version it reflects.
    pub(super) version: u64,
    /// Numbers the views: each change publishes the next.
    pub(super) seq: u64,
    pub(super) entries: BTreeMap<Arc<str>, Arc<WireEntry>>,
    /// The names changed (added, modified or removed) in the views before this one.
    pub(super) changes: ChangeLog,
    /// The resources that scope what a proxy sees (`Sidecar`s; Gateways, GatewayClasses
    /// and `ReferenceGrant`s for the Secrets gateways read): shared from view to view
    /// until one changes, so a session works its scope out again only then.
    pub(super) scoping: Arc<Vec<Resource>>,
    /// False until the first complete view is built.
    pub(super) ready: bool,
}

/// Which names changed in which view, for the last [`CHANGE_LOG`] changes.
#[derive(Debug, Default, Clone)]
pub struct ChangeLog {
    /// The oldest view the log reaches back to: every change after it is recorded.
    complete_after: u64,
    /// (view seq, name), oldest first.
    names: std::collections::VecDeque<(u64, Arc<str>)>,
}

impl ChangeLog {
    /// A log starting at view `seq`: nothing known before it.
    fn starting(seq: u64) -> ChangeLog {
        ChangeLog {
            complete_after: seq,
            names: Default::default(),
        }
    }

    fn record(&mut self, seq: u64, name: Arc<str>) {
        self.names.push_back((seq, name));
        while self.names.len() > CHANGE_LOG {
            if let Some((dropped, _)) = self.names.pop_front() {
                self.complete_after = self.complete_after.max(dropped);
            }
        }
    }

    /// The names changed after view `seq`, sorted, each once; `None` when the log does
    /// not reach back that far.
    pub(super) fn since(&self, seq: u64) -> Option<Vec<Arc<str>>> {
        if seq < self.complete_after {
            return None;
        }
        let mut names: Vec<Arc<str>> = self
            .names
            .iter()
            .rev()
            .take_while(|(s, _)| *s > seq)
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        names.dedup();
        Some(names)
    }
}

impl WireView {
    /// The next view: these entries, with `changed` recorded as changed in it, and
    /// `scoping` as its scoping resources when they changed.
    pub(super) fn next(
        &self,
        version: u64,
        changed: Vec<(Arc<str>, Option<Arc<WireEntry>>)>,
        scoping: Option<Arc<Vec<Resource>>>,
    ) -> WireView {
        let seq = self.seq + 1;
        let mut entries = self.entries.clone();
        let mut changes = self.changes.clone();
        for (name, e) in changed {
            match e {
                None => entries.remove(&name),
                Some(e) => entries.insert(name.clone(), e),
            };
            changes.record(seq, name);
        }
        WireView {
            version,
            seq,
            entries,
            changes,
            scoping: scoping.unwrap_or_else(|| self.scoping.clone()),
            ready: true,
        }
    }
}

/// A resource's name on the wire: `Kind/namespace/name`; a kind whose name another API
/// group also uses carries its group (`Gateway.gateway.networking.k8s.io/default/web`),
/// so Istio's Gateway and the Gateway API's of the same name are two resources.
pub fn wire_name(r: &Resource) -> String {
    let kind = r.kind();
    if kind == weft_api::Kind::KubernetesGateway {
        format!("{kind}.{}/{}/{}", kind.group(), r.namespace(), r.name())
    } else {
        format!("{kind}/{}/{}", r.namespace(), r.name())
    }
}

/// One resource as it goes on the wire, encoded once per version for every proxy.
#[derive(Debug)]
pub struct WireEntry {
    /// resourceVersion.
    pub(super) version: u64,
    /// The resource's namespace.
    pub(super) namespace: String,
    /// `exportTo`, for VirtualService, DestinationRule and ServiceEntry.
    pub(super) export_to: Option<Vec<String>>,
    /// Hosts (resolved), for VirtualService, DestinationRule and ServiceEntry: what a
    /// `Sidecar`'s egress hosts select on.
    pub(super) hosts: Vec<String>,
    /// A Secret's or ConfigMap's kind and name: it goes only to the gateway proxies
    /// that may read it.
    pub(super) gateway_only: Option<(weft_api::Kind, String)>,
    /// The encoded `IstioResource`.
    pub(super) payload: bytes::Bytes,
}

/// The resources that scope what each proxy sees, from `store`.
fn scoping(store: &Store) -> Arc<Vec<Resource>> {
    let mut list = Vec::new();
    for kind in SCOPING {
        list.extend(store.list(kind, None));
    }
    // The Gateway API's Gateways are served only by the classes weft's controller serves.
    list.extend(store.list(weft_api::Kind::GatewayClass, None));
    Arc::new(list)
}

/// The kinds that decide what each proxy sees: Sidecars (what a sidecar imports),
/// ReferenceGrants and Gateways (which Secrets a gateway reads).
const SCOPING: [weft_api::Kind; 4] = [
    weft_api::Kind::Sidecar,
    weft_api::Kind::ReferenceGrant,
    weft_api::Kind::Gateway,
    weft_api::Kind::KubernetesGateway,
];

/// True for a kind whose changes change what proxies see.
fn scopes(r: &Resource) -> bool {
    SCOPING.contains(&r.kind()) || r.kind() == weft_api::Kind::GatewayClass
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
        gateway_only: matches!(r, Resource::Secret(_) | Resource::ConfigMap(_))
            .then(|| (r.kind(), r.name().to_string())),
        payload: prost::Message::encode_to_vec(&IstioResource { json }).into(),
    })
}

/// The mesh config as it goes on the wire: to every proxy, versioned by its content (so
/// a proxy reconnecting to a control plane started with another one gets it again).
pub(super) fn mesh_entry(mesh: &MeshConfig) -> WireEntry {
    let json = serde_json::to_string(mesh).unwrap_or_else(|_| "{}".into());
    let version = fnv(FNV_OFFSET, json.as_bytes());
    WireEntry {
        version,
        namespace: String::new(),
        export_to: None,
        hosts: Vec::new(),
        gateway_only: None,
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

async fn full_view(
    store: &Store,
    mesh: &Arc<WireEntry>,
    jwks: &Arc<JwksResolver>,
    seq: u64,
) -> WireView {
    let mut entries = BTreeMap::new();
    for r in store.all().into_iter().chain(store.registered()) {
        if let Some(e) = wire_entry(&r, jwks).await {
            entries.insert(Arc::from(wire_name(&r)), Arc::new(e));
        }
    }
    entries.insert(Arc::from(MESH_CONFIG_RESOURCE), mesh.clone());
    WireView {
        version: store.version(),
        seq,
        entries,
        changes: ChangeLog::starting(seq),
        scoping: scoping(store),
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
            .send(Arc::new(full_view(&store, &mesh, &jwks, 1).await))
            .is_err()
        {
            return;
        }
        loop {
            let now = tx.borrow().clone();
            let next = tokio::select! {
                event = changes.recv() => match event {
                    Ok(event) => {
                        let name: Arc<str> = Arc::from(wire_name(&event.object));
                        let e = match event.kind {
                            "DELETED" => None,
                            _ => wire_entry(&event.object, &jwks).await,
                        };
                        let scoping = scopes(&event.object).then(|| scoping(&store));
                        now.next(store.version(), vec![(name, e.map(Arc::new))], scoping)
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        full_view(&store, &mesh, &jwks, now.seq + 1).await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                changed = keys.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    keys.borrow_and_update();
                    let mut changed = Vec::new();
                    for r in store.list(weft_api::Kind::RequestAuthentication, None) {
                        if let Some(e) = wire_entry(&r, &jwks).await {
                            changed.push((Arc::from(wire_name(&r)), Some(Arc::new(e))));
                        }
                    }
                    now.next(store.version(), changed, None)
                }
            };
            if tx.send(Arc::new(next)).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #[test]
    fn istios_gateway_and_the_gateway_apis_of_one_name_are_two_wire_resources() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: bff-gateway, namespace: default}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: bff-gateway, namespace: default}\nspec:\n  gatewayClassName: weft\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
        let loaded = weft_api::load_str("gateways.yaml", yaml);
        let names: Vec<String> = loaded
            .resources
            .iter()
            .map(|r| super::wire_name(&r.resource))
            .collect();
        assert_eq!(
            names,
            [
                "Gateway/default/bff-gateway",
                "Gateway.gateway.networking.k8s.io/default/bff-gateway"
            ]
        );
    }
}
