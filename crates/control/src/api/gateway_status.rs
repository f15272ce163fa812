//! The Gateway API status of the objects read (GatewayClass, Gateway, HTTPRoute,
//! GRPCRoute), worked
//! out at each read from the resources in force and the gateway proxies connected
//! ([`weft_model::gateway::status`]), so `kubectl get -o yaml` and `weft get -o yaml`
//! always show the current conditions. Each condition's `lastTransitionTime` is when the
//! control plane first saw it with its status ([`Store::transition_time`]); watches of
//! these kinds are sent a `MODIFIED` event when only the status changed
//! ([`super::watch`]).

use weft_api::{Kind, Resource};
use weft_model::gateway::kubernetes::GATEWAY_NAME_LABEL;
use weft_model::gateway::status::{self, ConnectedGateway};

use crate::store::Store;
use crate::xds::Proxies;

/// Replaces the status of the Gateway API objects among `items` with the current one.
pub fn fill(store: &Store, proxies: &Proxies, items: &mut [Resource]) {
    if !items.iter().any(|r| KINDS.contains(&r.kind())) {
        return;
    }
    let resources = store.all();
    let connected = connected(&resources, proxies);
    let now = weft_api::timestamp::rfc3339(std::time::SystemTime::now());
    for r in items.iter_mut() {
        if let Some(mut s) = status::of(&resources, r, &connected) {
            stamp(store, &crate::store::Key::of(r), &mut s, &now);
            set(r, s);
        }
    }
}

/// The kinds whose status the control plane works out.
pub const KINDS: [Kind; 6] = [
    Kind::GatewayClass,
    Kind::KubernetesGateway,
    Kind::HttpRoute,
    Kind::GrpcRoute,
    Kind::TcpRoute,
    Kind::TlsRoute,
];

/// Sets each condition's `lastTransitionTime` from the store's memory of when it last
/// changed (the object's own conditions, its listeners' by name, its parents' by
/// reference).
fn stamp(store: &Store, key: &crate::store::Key, status: &mut serde_json::Value, now: &str) {
    let mut lists: Vec<(String, &mut serde_json::Value)> = Vec::new();
    let serde_json::Value::Object(map) = status else {
        return;
    };
    for (field, value) in map.iter_mut() {
        match (field.as_str(), value) {
            ("conditions", v) => lists.push((String::new(), v)),
            ("listeners" | "parents", serde_json::Value::Array(items)) => {
                // Other controllers' parents keep their own times.
                let ours = |item: &serde_json::Value| {
                    item.get("controllerName")
                        .and_then(|c| c.as_str())
                        .is_none_or(|c| weft_api::gateway_api::gateway::CONTROLLERS.contains(&c))
                };
                for item in items.iter_mut().filter(|i| ours(i)) {
                    let id = match field.as_str() {
                        "listeners" => item["name"].to_string(),
                        _ => format!("{}{}", item["parentRef"], item["controllerName"]),
                    };
                    if let Some(c) = item.get_mut("conditions") {
                        lists.push((format!("{field}/{id}/"), c));
                    }
                }
            }
            _ => {}
        }
    }
    let mut seen = Vec::new();
    for (prefix, list) in lists {
        let Some(conditions) = list.as_array_mut() else {
            continue;
        };
        for c in conditions {
            let condition = format!("{prefix}{}", c["type"].as_str().unwrap_or_default());
            seen.push(condition.clone());
            let status = c["status"].as_str().unwrap_or_default().to_string();
            let first = c["lastTransitionTime"].as_str().unwrap_or(now).to_string();
            let since = store.transition_time(key, &condition, &status, &first, now);
            c["lastTransitionTime"] = serde_json::Value::String(since);
        }
    }
    store.forget_other_transitions(key, &seen);
}

/// Sets the status of a Gateway API object `r` (other kinds are left as they are).
pub fn set(r: &mut Resource, value: serde_json::Value) {
    match r {
        Resource::GatewayClass(o) => o.status = Some(value),
        Resource::KubernetesGateway(o) => o.status = Some(value),
        Resource::HttpRoute(o) => o.status = Some(value),
        Resource::GrpcRoute(o) => o.status = Some(value),
        Resource::TcpRoute(o) => o.status = Some(value),
        Resource::TlsRoute(o) => o.status = Some(value),
        _ => {}
    }
}

/// The Gateways served by a connected gateway proxy: the one named `<gateway>-<class>`
/// (as `weft up` names it) or whose registered workload carries the Gateway's name label.
fn connected(resources: &[Resource], proxies: &Proxies) -> Vec<ConnectedGateway> {
    let list = proxies.list();
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::KubernetesGateway(g) => Some(g),
            _ => None,
        })
        .filter_map(|g| {
            let (ns, name) = (g.metadata.namespace(), &g.metadata.name);
            let id =
                weft_proto::node_id(true, &format!("{name}-{}", g.spec.gateway_class_name), ns);
            let proxy = list.iter().find(|p| {
                p.id == id
                    || (weft_proto::is_gateway_id(&p.id)
                        && p.namespace == ns
                        && p.workload.as_ref().is_some_and(|w| {
                            w["spec"]["labels"][GATEWAY_NAME_LABEL].as_str() == Some(name)
                        }))
            })?;
            Some(ConnectedGateway {
                reads_secrets: proxy.reads_secrets,
                gateway: (ns.to_string(), name.clone()),
                address: proxy
                    .admin
                    .as_deref()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.ip().to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Resource {
        weft_api::load_str("t.yaml", yaml)
            .resources
            .remove(0)
            .resource
    }

    /// GatewayObservedGenerationBump, HTTPRouteObservedGenerationBump,
    /// GatewayClassObservedGenerationBump: a change of the spec bumps `generation`, and
    /// every condition then says it observed the new one.
    #[test]
    fn conditions_observe_the_generation_a_spec_change_bumps() {
        let dir = std::env::temp_dir().join(format!(
            "weft-observed-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let gateway = |port: u16| {
            load(&format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: web, namespace: default}}\nspec:\n  gatewayClassName: weft\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
            ))
        };
        let class = |description: &str| {
            load(&format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: own}}\nspec:\n  controllerName: weft.dev/gateway-controller\n  description: {description}\n"
            ))
        };
        let route = |path: &str| {
            load(&format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n  parentRefs: [{{name: web}}]\n  rules: [{{matches: [{{path: {{value: {path}}}}}]}}]\n"
            ))
        };
        let observed = |store: &Store| {
            let mut items = store.all();
            fill(store, &Proxies::default(), &mut items);
            let mut out = Vec::new();
            for r in &items {
                let v = serde_json::to_value(r).expect("json");
                let generation = v["metadata"]["generation"].as_i64().expect("generation");
                let conditions: Vec<serde_json::Value> = match r.kind() {
                    Kind::KubernetesGateway | Kind::GatewayClass => v["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .expect("conditions"),
                    _ => v["status"]["parents"][0]["conditions"]
                        .as_array()
                        .cloned()
                        .expect("conditions"),
                };
                assert!(!conditions.is_empty(), "{v:#}");
                for c in conditions {
                    out.push((
                        r.kind().name().to_string(),
                        generation,
                        c["observedGeneration"].as_i64().expect("observed"),
                    ));
                }
            }
            out
        };
        store.put(class("first"), false).expect("put");
        store.put(gateway(80), false).expect("put");
        store.put(route("/a"), false).expect("put");
        let before = observed(&store);
        assert_eq!(before.len(), 1 + 2 + 2, "{before:?}");
        assert!(before.iter().all(|(_, g, o)| (*g, *o) == (1, 1)));
        store.put(class("second"), false).expect("put");
        store.put(gateway(8080), false).expect("put");
        store.put(route("/b"), false).expect("put");
        let after = observed(&store);
        assert!(
            after.iter().all(|(_, g, o)| (*g, *o) == (2, 2)),
            "{after:?}"
        );
        // The same spec again changes nothing.
        store.put(route("/b"), false).expect("put");
        assert_eq!(observed(&store), after);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
