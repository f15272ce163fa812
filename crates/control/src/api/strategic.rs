//! Strategic merge patch (`application/strategic-merge-patch+json`) for Kubernetes' own
//! kinds, which `kubectl apply` (client side) and `kubectl patch` send for them: a JSON
//! merge patch in which some lists merge by a key (a Pod's containers by `name`, a
//! Service's ports by `port`, ...) instead of being replaced, with the directives kubectl
//! writes (`$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>`). As in Kubernetes, Istio's kinds (custom resources)
//! do not take it (415).

use serde_json::{Map, Value};
use weft_api::Kind;

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListMerge {
    /// Replaced by the patch's list (every list without a strategy).
    Replace,
    /// Elements with the same value of this field merge; others are added.
    ByKey(&'static str),
    /// A list of scalars: the union.
    Primitives,
}

/// The merge key of a list of a Pod spec (`pod` is the spec's path from the root).
fn pod_list(rest: &[&str]) -> ListMerge {
    match rest {
        ["containers" | "initContainers" | "ephemeralContainers"]
        | ["volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates"] => {
            ListMerge::ByKey("name")
        }
        ["hostAliases"] => ListMerge::ByKey("ip"),
        ["topologySpreadConstraints"] => ListMerge::ByKey("topologyKey"),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "ports",
        ] => ListMerge::ByKey("containerPort"),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "env",
        ] => ListMerge::ByKey("name"),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "volumeMounts",
        ] => ListMerge::ByKey("mountPath"),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            "volumeDevices",
        ] => ListMerge::ByKey("devicePath"),
        _ => ListMerge::Replace,
    }
}

fn metadata_list(rest: &[&str]) -> ListMerge {
    match rest {
        ["ownerReferences"] => ListMerge::ByKey("uid"),
        ["finalizers"] => ListMerge::Primitives,
        _ => ListMerge::Replace,
    }
}

/// The strategy of the list at `path` (field names from the object's root, list
/// positions left out), from the `patchStrategy`/`patchMergeKey` tags of Kubernetes' types.
fn list_merge(kind: Kind, path: &[&str]) -> ListMerge {
    match (kind, path) {
        (_, ["metadata", rest @ ..]) => metadata_list(rest),
        (Kind::Pod, ["spec", rest @ ..]) => pod_list(rest),
        (Kind::Deployment, ["spec", "template", "metadata", rest @ ..]) => metadata_list(rest),
        (Kind::Deployment, ["spec", "template", "spec", rest @ ..]) => pod_list(rest),
        (Kind::Service, ["spec", "ports"]) => ListMerge::ByKey("port"),
        (Kind::Pod | Kind::Deployment | Kind::Namespace, ["status", "conditions"]) => {
            ListMerge::ByKey("type")
        }
        _ => ListMerge::Replace,
    }
}

/// True for the kinds that take a strategic merge patch.
pub fn takes(kind: Kind) -> bool {
    kind.is_kubernetes()
}

/// Applies the strategic merge `patch` to `target`, an object of `kind`.
pub fn apply(kind: Kind, target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(patch) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    match merge_map(kind, target, patch, &mut Vec::new())? {
        Merged::Kept => Ok(()),
        Merged::Deleted => Err("`$patch: delete` cannot delete the whole object".into()),
    }
}

enum Merged {
    Kept,
    Deleted,
}

fn directive(patch: &Map<String, Value>) -> Result<Option<&str>, String> {
    match patch.get("$patch") {
        None => Ok(None),
        Some(Value::String(d)) if matches!(d.as_str(), "replace" | "delete" | "merge") => {
            Ok(Some(d.as_str()))
        }
        Some(other) => Err(format!(
            "unknown patch type: {other} (supported: replace, delete, merge)"
        )),
    }
}

/// `patch` without its directives, recursively.
fn plain(patch: &Value) -> Value {
    match patch {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), plain(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        other => other.clone(),
    }
}

fn merge_map<'p>(
    kind: Kind,
    target: &mut Value,
    patch: &'p Map<String, Value>,
    path: &mut Vec<&'p str>,
) -> Result<Merged, String> {
    match directive(patch)? {
        Some("delete") => return Ok(Merged::Deleted),
        Some("replace") => {
            *target = plain(&Value::Object(patch.clone()));
            return Ok(Merged::Kept);
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut orders = Vec::new();
    let mut removals = Vec::new();
    for (field, value) in patch {
        if let Some(list) = field.strip_prefix("$setElementOrder/") {
            orders.push((list, value));
            continue;
        }
        if let Some(list) = field.strip_prefix("$deleteFromPrimitiveList/") {
            removals.push((list, value));
            continue;
        }
        if field.starts_with('$') {
            continue;
        }
        let Value::Object(map) = target else {
            unreachable!("made an object above")
        };
        match value {
            Value::Null => {
                map.remove(field);
            }
            Value::Object(inner) => {
                let slot = map.entry(field.clone()).or_insert(Value::Null);
                path.push(field);
                let merged = merge_map(kind, slot, inner, path)?;
                path.pop();
                if let Merged::Deleted = merged {
                    map.remove(field);
                }
            }
            Value::Array(items) => {
                path.push(field);
                let strategy = list_merge(kind, path);
                let slot = map.entry(field.clone()).or_insert(Value::Null);
                merge_list(kind, slot, items, strategy, path)?;
                path.pop();
            }
            scalar => {
                map.insert(field.clone(), scalar.clone());
            }
        }
    }
    let Value::Object(map) = target else {
        unreachable!("made an object above")
    };
    for (list, values) in removals {
        let Value::Array(values) = values else {
            return Err(format!("$deleteFromPrimitiveList/{list}: must be a list"));
        };
        if let Some(Value::Array(items)) = map.get_mut(list) {
            items.retain(|i| !values.contains(i));
        }
    }
    for (list, order) in orders {
        let Value::Array(order) = order else {
            return Err(format!("$setElementOrder/{list}: must be a list"));
        };
        path.push(list);
        let strategy = list_merge(kind, path);
        path.pop();
        if let Some(Value::Array(items)) = map.get_mut(list) {
            reorder(items, order, strategy);
        }
    }
    if let Some(keep) = patch.get("$retainKeys") {
        let Value::Array(keep) = keep else {
            return Err("$retainKeys: must be a list of field names".into());
        };
        map.retain(|k, _| keep.iter().any(|f| f.as_str() == Some(k.as_str())));
    }
    Ok(Merged::Kept)
}

fn key_of<'v>(item: &'v Value, key: &str) -> Option<&'v Value> {
    item.as_object()?.get(key)
}

fn merge_list<'p>(
    kind: Kind,
    target: &mut Value,
    patch: &'p [Value],
    strategy: ListMerge,
    path: &mut Vec<&'p str>,
) -> Result<(), String> {
    // `{"$patch": "replace"}` among the elements: the rest replaces the list.
    let replace = patch.iter().any(|i| {
        i.as_object()
            .is_some_and(|m| m.get("$patch").and_then(Value::as_str) == Some("replace"))
    });
    if replace || strategy == ListMerge::Replace || !target.is_array() {
        let kept: Vec<Value> = patch
            .iter()
            .filter(|i| {
                i.as_object()
                    .is_none_or(|m| m.get("$patch").and_then(Value::as_str) != Some("replace"))
            })
            .map(plain)
            .collect();
        *target = Value::Array(kept);
        return Ok(());
    }
    let Value::Array(items) = target else {
        unreachable!("checked above")
    };
    match strategy {
        ListMerge::Primitives => {
            for p in patch {
                if !items.contains(p) {
                    items.push(p.clone());
                }
            }
        }
        ListMerge::ByKey(key) => {
            for p in patch {
                let Value::Object(element) = p else {
                    return Err(format!(
                        "{}: elements merge by `{key}`, so each must be an object",
                        path.join(".")
                    ));
                };
                let Some(id) = element.get(key) else {
                    return Err(format!(
                        "{}: an element has no merge key `{key}`",
                        path.join(".")
                    ));
                };
                let found = items.iter().position(|i| key_of(i, key) == Some(id));
                match (directive(element)?, found) {
                    (Some("delete"), Some(at)) => {
                        items.remove(at);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(at)) => {
                        if let Merged::Deleted = merge_map(kind, &mut items[at], element, path)? {
                            items.remove(at);
                        }
                    }
                    (_, None) => items.push(plain(p)),
                }
            }
        }
        ListMerge::Replace => unreachable!("replaced above"),
    }
    Ok(())
}

/// Puts the elements `order` names first, in its order; the others keep theirs, after.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListMerge) {
    let rank = |item: &Value| -> usize {
        let position = match strategy {
            ListMerge::ByKey(key) => order
                .iter()
                .position(|o| key_of(o, key).is_some() && key_of(o, key) == key_of(item, key)),
            _ => order.iter().position(|o| o == item),
        };
        position.unwrap_or(order.len())
    };
    let mut ranked: Vec<(usize, Value)> = items.drain(..).map(|i| (rank(&i), i)).collect();
    ranked.sort_by_key(|(r, _)| *r);
    items.extend(ranked.into_iter().map(|(_, i)| i));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(kind: Kind, mut target: Value, patch: Value) -> Value {
        apply(kind, &mut target, &patch).expect("applies");
        target
    }

    fn deployment(containers: Value) -> Value {
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_and_their_env_by_name() {
        let target = deployment(json!([
            {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "s:1"}
        ]));
        let patch = deployment(json!([
            {"name": "app", "image": "a:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ]));
        let out = patched(Kind::Deployment, target, patch);
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().map(Vec::len), Some(2), "side kept");
        assert_eq!(containers[0]["image"], "a:2");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(out["spec"]["replicas"], 1, "a merge patch elsewhere");
    }

    #[test]
    fn service_ports_merge_by_port_and_delete_directives_remove() {
        let target = json!({"spec": {"ports": [
            {"port": 80, "name": "http"}, {"port": 443, "name": "https"}
        ], "selector": {"app": "a"}}});
        let patch = json!({"spec": {"ports": [
            {"port": 80, "name": "http-web"}, {"port": 443, "$patch": "delete"}, {"port": 9090, "name": "grpc"}
        ]}});
        let out = patched(Kind::Service, target, patch);
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http-web"}, {"port": 9090, "name": "grpc"}])
        );
        assert_eq!(out["spec"]["selector"], json!({"app": "a"}));
    }

    #[test]
    fn kubectl_apply_directives_order_retain_and_replace() {
        // What kubectl apply sends when a port is added before the existing one.
        let target = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8080}, {"port": 80}],
            "ports": [{"port": 8080, "name": "http-alt"}]
        }});
        let out = patched(Kind::Service, target, patch);
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 8080, "name": "http-alt"}, {"port": 80, "name": "http"}])
        );
        // $retainKeys clears what it does not list; $patch: replace replaces a map.
        let target = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = patched(Kind::Deployment, target, patch);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}});
        assert_eq!(
            patched(Kind::Service, target, patch)["metadata"]["labels"],
            json!({"c": "3"})
        );
        // Lists without a strategy are replaced; finalizers are a union, minus deletions.
        let target = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"selector": {}, "externalIPs": ["1.1.1.1"]}});
        let patch = json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"externalIPs": ["2.2.2.2"]}});
        let out = patched(Kind::Service, target, patch);
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(out["spec"]["externalIPs"], json!(["2.2.2.2"]));
    }

    #[test]
    fn malformed_patches_are_refused_with_the_list() {
        let mut target = json!({"spec": {"ports": [{"port": 80}]}});
        let err = apply(
            Kind::Service,
            &mut target,
            &json!({"spec": {"ports": [{"name": "x"}]}}),
        )
        .expect_err("no merge key");
        assert!(
            err.contains("spec.ports: an element has no merge key `port`"),
            "{err}"
        );
        let err = apply(Kind::Service, &mut target, &json!({"$patch": "bogus"})).expect_err("bad");
        assert!(err.contains("unknown patch type"), "{err}");
        assert!(apply(Kind::Service, &mut target, &json!([1])).is_err());
    }
}
