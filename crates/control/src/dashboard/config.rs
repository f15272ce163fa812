//! The config page: every stored resource as YAML with the `weft analyze` findings on it
//! (code, level, line in that YAML), and each proxy's sync state as `weft proxy-status`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::store::Store;
use crate::xds::Proxies;

/// The file name a resource's YAML is analyzed under (and found again by); the API group
/// keeps Istio's Gateway and the Gateway API's apart.
fn file_of(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    let group = api_version.rsplit_once('/').map_or("core", |(g, _)| g);
    format!("{group}/{kind}/{namespace}/{name}")
}

/// The page's JSON (crates/control/dashboard/API.md).
pub fn page(store: &Store, proxies: &Proxies) -> Value {
    let mut resources = store.all();
    // The Gateway API objects with the status the control plane works out, as kubectl shows them.
    crate::api::gateway_status::fill(store, proxies, &mut resources);
    let registered = store.registered();
    resources.extend(registered.iter().cloned());
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    let mut located = Vec::new();
    for r in &resources {
        let Ok(mut value) = serde_json::to_value(r) else {
            continue;
        };
        // As `kubectl get -o yaml` shows it: who manages which field is bookkeeping.
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let yaml = weft_api::render::to_yaml(&value);
        let file = file_of(
            value["apiVersion"].as_str().unwrap_or_default(),
            r.kind().name(),
            r.namespace(),
            r.name(),
        );
        // Read back like `weft analyze -f` reads a file, so findings carry lines.
        let loaded = weft_api::load_str(&file, &yaml);
        located.extend(loaded.resources);
        let is_registered = r.kind() == weft_api::Kind::WorkloadEntry
            && registered
                .iter()
                .any(|g| g.name() == r.name() && g.namespace() == r.namespace());
        entries.insert(
            file,
            json!({
                "kind": r.kind().name(), "apiVersion": value["apiVersion"],
                "namespace": r.namespace(), "name": r.name(),
                "resourceVersion": r.metadata().resource_version,
                "registered": is_registered,
                "yaml": yaml, "findings": [],
            }),
        );
    }
    for finding in weft_model::analyze::analyze(&located) {
        let level = finding.level.as_str();
        for involved in &finding.resources {
            if let Some(entry) = entries.get_mut(&involved.file) {
                if let Some(list) = entry["findings"].as_array_mut() {
                    list.push(json!({
                        "code": finding.code, "name": finding.name, "level": level,
                        "message": finding.message, "line": involved.line,
                    }));
                }
            }
        }
    }
    let proxies: Vec<Value> = proxies
        .list()
        .into_iter()
        .map(|p| {
            let synced = p.in_sync();
            json!({
                "id": p.id, "namespace": p.namespace, "connectedSince": p.connected_since,
                "ackedVersion": p.acked_version, "sentVersion": p.sent_nonce,
                "lastNack": p.last_nack, "pushes": p.pushes, "synced": synced,
            })
        })
        .collect();
    json!({
        "version": store.version(),
        "resources": entries.into_values().collect::<Vec<_>>(),
        "proxies": proxies,
    })
}
