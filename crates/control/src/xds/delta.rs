//! What a proxy has and what it is missing. A session keeps no copy of the mesh: what
//! the proxy has is the shared view last pushed to it, seen through its scope (or, after
//! a reconnect, the versions it told). The delta is found from the names the views
//! changed since, and goes out in parts built one at a time.

use std::collections::HashMap;
use std::sync::Arc;

use weft_api::Resource;
use weft_model::translate::scope::{ProxyScope, SidecarScope, visible};
use weft_proto::ISTIO_RESOURCE_TYPE;
use weft_proto::discovery::{DeltaDiscoveryResponse, Resource as XdsResource};

use super::view::{WireEntry, WireView};

/// Most resources in one response: a large sync goes out in parts, so no stream buffers
/// a whole mesh at once. tonic's per-stream encode buffer grows to the largest response
/// and never shrinks, so this bounds what every connected proxy costs the control plane
/// (bench/control-scale: 64 per part held about 106 KiB per proxy in that buffer). All parts but the last carry `PARTIAL` after their version; the
/// proxy applies the update when the last part arrives.
const MAX_RESOURCES_PER_RESPONSE: usize = 16;
/// Marks a response that more parts of the same update follow.
pub const PARTIAL: &str = "+partial";

/// What a proxy may see: resources `exportTo` makes visible in its namespace, narrowed by
/// the `Sidecar` that applies to it (the model's [`SidecarScope`], as file mode applies it).
/// Secrets and ConfigMaps go only to a gateway proxy that proved its namespace, and only
/// those its Gateways refer to (and ReferenceGrants allow): the model's
/// [`weft_model::gateway::secret_scope::read_by`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scope {
    namespace: String,
    sidecar: SidecarScope,
    /// The Secrets and ConfigMaps it may read, as (kind, namespace, name).
    secrets: Vec<(weft_api::Kind, String, String)>,
}

impl Scope {
    /// The scope of `proxy` among the view's scoping resources (Sidecars,
    /// ReferenceGrants and Gateways); `reads_secrets`: a gateway proxy whose token proved
    /// its namespace.
    pub(super) fn new(scoping: &[Resource], proxy: &ProxyScope, reads_secrets: bool) -> Scope {
        let secrets = match reads_secrets && proxy.gateway {
            true => weft_model::gateway::secret_scope::read_by(scoping, proxy),
            false => Vec::new(),
        };
        Scope {
            namespace: proxy.namespace.clone(),
            sidecar: SidecarScope::of(scoping, proxy),
            secrets,
        }
    }

    fn sees(&self, e: &WireEntry) -> bool {
        if let Some((kind, name)) = &e.gateway_only {
            return self
                .secrets
                .iter()
                .any(|(k, ns, n)| k == kind && *ns == e.namespace && n == name);
        }
        e.export_to
            .as_ref()
            .is_none_or(|x| visible(x, &e.namespace, &self.namespace))
            && self.sidecar.admits(&e.namespace, &e.hosts)
    }
}

/// What a proxy has (or will have once it applies what was sent): shared, never copied.
#[derive(Debug, Clone)]
pub(super) enum Has {
    /// The versions it told when it connected (empty for a new proxy).
    Told(Arc<HashMap<Arc<str>, u64>>),
    /// Every entry of `view` that `scope` sees.
    Sent {
        view: Arc<WireView>,
        scope: Arc<Scope>,
    },
}

impl Has {
    /// The version of `name` the proxy has.
    fn version(&self, name: &str) -> Option<u64> {
        match self {
            Has::Told(told) => told.get(name).copied(),
            Has::Sent { view, scope } => view
                .entries
                .get(name)
                .filter(|e| scope.sees(e))
                .map(|e| e.version),
        }
    }

    /// Every name the proxy has.
    fn names(&self) -> Vec<Arc<str>> {
        match self {
            Has::Told(told) => told.keys().cloned().collect(),
            Has::Sent { view, scope } => view
                .entries
                .iter()
                .filter(|(_, e)| scope.sees(e))
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// The names that may differ between what the proxy has and `view` under `scope`:
    /// those the views changed since, when the scope is the same; else every name.
    fn candidates(&self, view: &WireView, scope: &Arc<Scope>) -> Vec<Arc<str>> {
        if let Has::Sent {
            view: before,
            scope: was,
        } = self
        {
            if Arc::ptr_eq(was, scope) {
                if before.seq == view.seq {
                    return Vec::new();
                }
                if let Some(changed) = view.changes.since(before.seq) {
                    return changed;
                }
            }
        }
        let mut names: Vec<Arc<str>> = view.entries.keys().cloned().collect();
        names.extend(self.names());
        names.sort();
        names.dedup();
        names
    }
}

/// What one push carries: the entries the proxy lacks (by name order) and the names it
/// has that it may no longer see.
#[derive(Debug, Default)]
pub(super) struct Delta {
    updated: Vec<(Arc<str>, Arc<WireEntry>)>,
    removed: Vec<Arc<str>>,
}

impl Delta {
    /// What takes a proxy from `has` to `view` under `scope`.
    pub(super) fn between(has: &Has, view: &WireView, scope: &Arc<Scope>) -> Delta {
        let mut delta = Delta::default();
        for name in has.candidates(view, scope) {
            let now = view.entries.get(&name).filter(|e| scope.sees(e));
            match (now, has.version(&name)) {
                (Some(e), had) if had != Some(e.version) => delta.updated.push((name, e.clone())),
                (None, Some(_)) => delta.removed.push(name),
                _ => {}
            }
        }
        delta
    }

    /// Nothing to send.
    pub(super) fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.removed.is_empty()
    }

    /// More than one part: a push that takes a place among the large ones.
    pub(super) fn is_large(&self) -> bool {
        self.updated.len() > MAX_RESOURCES_PER_RESPONSE
    }

    /// The responses carrying it, built one at a time as the stream takes them: parts
    /// of at most [`MAX_RESOURCES_PER_RESPONSE`] resources, the last one also naming the
    /// removed resources (one empty response when there is nothing).
    pub(super) fn parts(
        self,
        version: u64,
        nonce: u64,
    ) -> impl Iterator<Item = DeltaDiscoveryResponse> {
        let count = self
            .updated
            .len()
            .div_ceil(MAX_RESOURCES_PER_RESPONSE)
            .max(1);
        let mut updated = self.updated.into_iter();
        let mut removed = self.removed;
        (0..count).map(move |i| {
            let last = i + 1 == count;
            let resources = updated
                .by_ref()
                .take(MAX_RESOURCES_PER_RESPONSE)
                .map(|(name, e)| resource(&name, &e))
                .collect();
            DeltaDiscoveryResponse {
                system_version_info: if last {
                    version.to_string()
                } else {
                    format!("{version}{PARTIAL}")
                },
                resources,
                type_url: ISTIO_RESOURCE_TYPE.into(),
                nonce: format!("{version}-{nonce}-{i}"),
                removed_resources: match last {
                    true => std::mem::take(&mut removed)
                        .iter()
                        .map(|n| n.to_string())
                        .collect(),
                    false => Vec::new(),
                },
            }
        })
    }
}

fn resource(name: &str, e: &WireEntry) -> XdsResource {
    XdsResource {
        name: name.to_string(),
        version: e.version.to_string(),
        resource: Some(prost_types::Any {
            type_url: ISTIO_RESOURCE_TYPE.into(),
            value: e.payload.to_vec(),
        }),
        aliases: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
