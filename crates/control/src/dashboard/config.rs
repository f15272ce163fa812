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

/// A Secret with each value replaced by its size, on the line it had, and the copy of
/// the manifest `kubectl apply` keeps in an annotation (values included) replaced too.
fn redacted(mut secret: Value) -> Value {
    if let Some(data) = secret.get_mut("data").and_then(Value::as_object_mut) {
        for value in data.values_mut() {
            let len = value.as_str().map_or(0, |v| v.len() / 4 * 3);
            *value = Value::String(format!("<redacted: about {len} bytes>"));
        }
    }
    if let Some(annotations) = secret
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        if let Some(v) = annotations.get_mut(LAST_APPLIED) {
            *v = Value::String("<redacted: the applied manifest holds the values>".into());
        }
    }
    secret
}

/// The annotation in which `kubectl apply` keeps the manifest it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
        // A Secret's values are not shown (the analyzers still read them, below).
        let shown = match r {
            weft_api::Resource::Secret(_) => weft_api::render::to_yaml(&redacted(value.clone())),
            _ => yaml.clone(),
        };
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
                "yaml": shown, "findings": [],
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

#[cfg(test)]
mod tests {
    /// A Secret is listed with its keys, each value replaced by its size; the analyzers
    /// still read it (a Gateway naming it has no IST0161 finding).
    #[test]
    fn secrets_are_listed_without_their_values() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: web-cert, namespace: istio-system, annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"tls.key\":\"MIIBszCC-in-the-annotation\"}}'}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"-----BEGIN CERTIFICATE-----\\nMIIBszCCAVmgAwIBAgIU\\n-----END CERTIFICATE-----\\n\"\n  tls.key: \"-----BEGIN PRIVATE KEY-----\\nMIGHAgEAMBMGByqGSM49\\n-----END PRIVATE KEY-----\\n\"\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: SIMPLE, credentialName: web-cert}}]\n";
        let (store, dir) = crate::dashboard::test_store("config-secret", yaml);
        let page = super::page(&store, &crate::xds::Proxies::default());
        let text = page.to_string();
        assert!(!text.contains("MIIBszCC"), "a value is shown: {text}");
        assert!(
            !text.contains("LS0tLS1CRUdJTi"),
            "a base64 value is shown: {text}"
        );
        let find = |kind: &str, name: &str| {
            page["resources"]
                .as_array()
                .and_then(|l| l.iter().find(|r| r["kind"] == kind && r["name"] == name))
                .cloned()
                .expect("listed")
        };
        let secret = find("Secret", "web-cert");
        let shown = secret["yaml"].as_str().expect("yaml");
        assert!(
            shown.contains("tls.crt: \"<redacted: about 75 bytes>\""),
            "{shown}"
        );
        assert!(shown.contains("type: kubernetes.io/tls"), "{shown}");
        let gateway = find("Gateway", "web");
        assert_eq!(gateway["findings"], serde_json::json!([]), "{gateway:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
