//! Discovery, as the Kubernetes API server answers it: `/version`, `/api`, `/apis`,
//! `/apis/{group}` and `/apis/{group}/{version}` (kubectl learns kinds, plurals, short
//! names and verbs from them), plus the few core `v1` resources kubectl reads around
//! Istio's kinds (namespaces, and the events `kubectl describe` lists).

use std::collections::BTreeSet;

use http::{Response, StatusCode};
use serde_json::{Value, json};
use weft_api::Kind;

use super::ApiBody;
use super::reply::json_response;
use crate::store::Store;

/// Istio's short names and categories for its kinds (from its CRDs).
pub fn short_names(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::VirtualService => &["vs"],
        Kind::DestinationRule => &["dr"],
        Kind::ServiceEntry => &["se"],
        Kind::Gateway => &["gw"],
        Kind::WorkloadEntry => &["we"],
        Kind::PeerAuthentication => &["pa"],
        Kind::AuthorizationPolicy => &["ap"],
        Kind::RequestAuthentication => &["ra"],
        Kind::Telemetry => &["telemetry"],
        Kind::Namespace => &["ns"],
        Kind::Service => &["svc"],
        Kind::Pod => &["po"],
        Kind::Deployment => &["deploy"],
        Kind::ConfigMap => &["cm"],
        Kind::KubernetesGateway => &["gtw"],
        Kind::GatewayClass => &["gc"],
        Kind::ReferenceGrant => &["refgrant"],
        Kind::Sidecar
        | Kind::RateLimit
        | Kind::EndpointSlice
        | Kind::Secret
        | Kind::HttpRoute
        | Kind::GrpcRoute
        | Kind::TcpRoute
        | Kind::TlsRoute => &[],
    }
}

fn categories(kind: Kind) -> Vec<String> {
    let group = kind.group().split('.').next().unwrap_or_default();
    match kind.group() {
        "policy.weft.dev" => vec!["weft".into()],
        // Kubernetes' `kubectl get all` covers these.
        _ if matches!(kind, Kind::Service | Kind::Pod | Kind::Deployment) => vec!["all".into()],
        _ if kind.is_kubernetes() => Vec::new(),
        g => vec![
            "istio-io".into(),
            format!("{group}-{}", g.replace('.', "-")),
        ],
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "get",
    "list",
    "patch",
    "update",
    "watch",
    "deletecollection",
];

/// The named groups weft serves (the core group is `/api`), each with its versions (preferred first).
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| !k.group().is_empty()) {
        let entry = match out.iter_mut().find(|(g, _)| *g == kind.group()) {
            Some(e) => e,
            None => {
                out.push((kind.group(), Vec::new()));
                out.last_mut().expect("just pushed")
            }
        };
        for v in kind.api_versions() {
            if !entry.1.contains(v) {
                entry.1.push(v);
            }
        }
    }
    out
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

/// The resource list of one group/version.
fn resource_list(group: &str, version: &str) -> Vec<Value> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.group() == group && k.api_versions().contains(&version))
        .map(|k| {
            json!({
                "name": k.plural(), "singularName": k.name().to_ascii_lowercase(),
                "namespaced": k.is_namespaced(), "kind": k.name(), "verbs": VERBS,
                "shortNames": short_names(k), "categories": categories(k),
            })
        })
        .collect()
}

/// The answer for a discovery path, or `None` when `path` is not one. `reading` is true
/// for a plain GET (not a watch): reads of namespaces are answered here, with the
/// namespaces resources are in as well as the stored ones; writes go to the resources.
pub fn answer(path: &str, reading: bool, store: &Store) -> Option<Response<ApiBody>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body = match parts.as_slice() {
        ["version"] => json!({
            "major": "1", "minor": "37", "gitVersion": format!("v1.37.0-weft-{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
        ["api"] => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
        }
        ["api", "v1"] => {
            let mut resources = resource_list("", "v1");
            resources.push(json!({"name": "events", "singularName": "event", "namespaced": true, "kind": "Event", "verbs": ["get", "list"], "shortNames": ["ev"]}));
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
        }
        ["api", "v1", "namespaces"] if reading => namespaces(store),
        ["api", "v1", "namespaces", ns] if reading => {
            if let Some(stored) = stored_namespace(store, ns) {
                return Some(json_response(StatusCode::OK, &stored));
            }
            if !namespace_names(store).contains(*ns) {
                return Some(super::reply::status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    Some(json!({"name": ns, "kind": "namespaces"})),
                ));
            }
            namespace(ns)
        }
        // weft keeps no events; `kubectl describe` shows none.
        ["api", "v1", "events"] | ["api", "v1", "namespaces", _, "events"] => {
            json!({"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": store.version().to_string()}, "items": []})
        }
        ["apis"] => {
            let groups: Vec<Value> = groups().iter().map(|(g, v)| group_json(g, v)).collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["apis", group] => {
            let (g, v) = groups().into_iter().find(|(g, _)| g == group)?;
            let mut body = group_json(g, &v);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            body
        }
        ["apis", group, version] => {
            let resources = resource_list(group, version);
            if resources.is_empty() {
                return None;
            }
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
        }
        _ => return None,
    };
    Some(json_response(StatusCode::OK, &body))
}

/// Namespaces: `default`, `istio-system` and every namespace a resource is in.
fn namespace_names(store: &Store) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["default", "istio-system"].map(String::from).into();
    for r in store.all() {
        match r.kind() {
            Kind::Namespace => names.insert(r.name().to_string()),
            _ => names.insert(r.namespace().to_string()),
        };
    }
    names
}

fn namespace(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}, "spec": {}, "status": {"phase": "Active"}})
}

/// The Namespace object applied under `name`, if one was.
fn stored_namespace(store: &Store, name: &str) -> Option<Value> {
    let key = crate::store::Key {
        kind: Kind::Namespace,
        namespace: String::new(),
        name: name.to_string(),
    };
    store.get(&key).and_then(|r| serde_json::to_value(r).ok())
}

fn namespaces(store: &Store) -> Value {
    let items: Vec<Value> = namespace_names(store)
        .iter()
        .map(|n| stored_namespace(store, n).unwrap_or_else(|| namespace(n)))
        .collect();
    json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": store.version().to_string()}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(path: &str, store: &Store) -> Value {
        let resp = answer(path, true, store).unwrap_or_else(|| panic!("{path} answers"));
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("JSON")
    }

    #[tokio::test]
    async fn every_kind_is_discoverable_with_istios_names() {
        let dir = std::env::temp_dir().join(format!("weft-discovery-{}", std::process::id()));
        let store = Store::open(&dir).expect("store");
        let groups = read("/apis", &store).await;
        for kind in Kind::ALL {
            // Kubernetes' core group is `/api/v1`, not a named group.
            if kind.group().is_empty() {
                let core = read("/api/v1", &store).await;
                let entry = core["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .find(|r| r["kind"] == kind.name())
                    .unwrap_or_else(|| panic!("{kind} listed"))
                    .clone();
                assert_eq!(entry["namespaced"], kind.is_namespaced(), "{kind}");
                continue;
            }
            assert!(
                groups["groups"]
                    .as_array()
                    .expect("groups")
                    .iter()
                    .any(|g| g["name"] == kind.group()),
                "{kind}"
            );
            let list = read(
                &format!("/apis/{}/{}", kind.group(), kind.api_versions()[0]),
                &store,
            )
            .await;
            let entry = list["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .find(|r| r["kind"] == kind.name())
                .unwrap_or_else(|| panic!("{kind} listed"));
            assert_eq!(entry["name"], kind.plural());
            assert!(
                entry["verbs"]
                    .as_array()
                    .expect("verbs")
                    .contains(&json!("patch"))
            );
        }
        let vs = read("/apis/networking.istio.io/v1", &store).await;
        assert!(vs.to_string().contains(r#""shortNames":["vs"]"#), "{vs}");
        assert_eq!(
            read("/apis/networking.istio.io", &store).await["preferredVersion"]["version"],
            "v1"
        );
        assert!(answer("/apis/networking.istio.io/v2", true, &store).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
