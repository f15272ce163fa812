//! Writes that merge: JSON merge patch (RFC 7386, what `kubectl apply` and the Kubernetes
//! Python client send for custom resources) and server-side apply
//! (`application/apply-patch+yaml`), with field managers recorded in `managedFields` as
//! the API server records them (`FieldsV1`). Lists are atomic, as in Istio's CRDs: a list
//! is one field, owned and replaced whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// A field: its path from the object's root (`["spec", "http"]`).
pub type Field = Vec<String>;

/// RFC 7386: `patch` merged into `target` (`null` removes a member).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The fields of `object` that managers own: every leaf under `spec` (objects recurse,
/// lists and scalars are leaves), and each label and annotation.
pub fn fields(object: &Value) -> BTreeMap<Field, Value> {
    let mut out = BTreeMap::new();
    if let Some(spec) = object.get("spec") {
        leaves(spec, &mut vec!["spec".to_string()], &mut out);
    }
    for part in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = object["metadata"].get(part) {
            for (k, v) in m {
                out.insert(vec!["metadata".into(), part.into(), k.clone()], v.clone());
            }
        }
    }
    out
}

fn leaves(v: &Value, path: &mut Vec<String>, out: &mut BTreeMap<Field, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(k.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), other.clone());
        }
    }
}

fn get<'a>(object: &'a Value, field: &[String]) -> Option<&'a Value> {
    field.iter().try_fold(object, |v, k| v.get(k))
}

fn set(object: &mut Value, field: &[String], value: Value) {
    let mut at = object;
    for k in &field[..field.len() - 1] {
        if !at.get(k).is_some_and(Value::is_object) {
            at[k.as_str()] = json!({});
        }
        at = &mut at[k.as_str()];
    }
    at[field[field.len() - 1].as_str()] = value;
}

fn remove(object: &mut Value, field: &[String]) {
    let Some((last, parents)) = field.split_last() else {
        return;
    };
    let mut at = object;
    for k in parents {
        match at.get_mut(k) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Value::Object(m) = at {
        m.remove(last);
    }
}

/// Who owns which fields, read from and written to `metadata.managedFields`.
#[derive(Debug, Default, Clone)]
pub struct Managers(Vec<Manager>);

/// One field manager's entry.
#[derive(Debug, Clone)]
struct Manager {
    name: String,
    /// `Apply` or `Update`.
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Field>,
}

impl Managers {
    /// The managers recorded on `object`.
    pub fn of(object: &Value) -> Managers {
        let Some(Value::Array(list)) = object["metadata"].get("managedFields") else {
            return Managers::default();
        };
        Managers(
            list.iter()
                .map(|m| {
                    let mut fields = BTreeSet::new();
                    unfold(&m["fieldsV1"], &mut Vec::new(), &mut fields);
                    Manager {
                        name: m["manager"].as_str().unwrap_or_default().to_string(),
                        operation: m["operation"].as_str().unwrap_or("Update").to_string(),
                        api_version: m["apiVersion"].as_str().unwrap_or_default().to_string(),
                        time: m["time"].as_str().unwrap_or_default().to_string(),
                        fields,
                    }
                })
                .collect(),
        )
    }

    /// Writes the managers into `object`'s metadata.
    pub fn store(&self, object: &mut Value) {
        let list: Vec<Value> = self
            .0
            .iter()
            .filter(|m| !m.fields.is_empty())
            .map(|m| {
                json!({
                    "manager": m.name, "operation": m.operation, "apiVersion": m.api_version,
                    "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": fold(&m.fields),
                })
            })
            .collect();
        if list.is_empty() {
            if let Value::Object(meta) = &mut object["metadata"] {
                meta.remove("managedFields");
            }
        } else {
            object["metadata"]["managedFields"] = Value::Array(list);
        }
    }

    fn entry(&mut self, name: &str, operation: &str) -> &mut Manager {
        let at = match self
            .0
            .iter()
            .position(|m| m.name == name && m.operation == operation)
        {
            Some(i) => i,
            None => {
                self.0.push(Manager {
                    name: name.to_string(),
                    operation: operation.to_string(),
                    api_version: String::new(),
                    time: String::new(),
                    fields: BTreeSet::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[at]
    }

    /// Records an update (`POST`, `PUT`, merge patch) by `manager`: it owns every field
    /// whose value changed from `old` to `new`, and nobody else does any more.
    pub fn updated(
        &mut self,
        manager: &str,
        api_version: &str,
        now: &str,
        old: &Value,
        new: &Value,
    ) {
        let before = fields(old);
        let after = fields(new);
        let changed: BTreeSet<Field> = after
            .iter()
            .filter(|(f, v)| before.get(*f) != Some(*v))
            .map(|(f, _)| f.clone())
            .collect();
        for m in &mut self.0 {
            // A removed field is nobody's; a changed one is now the updater's.
            m.fields
                .retain(|f| after.contains_key(f) && !changed.contains(f));
        }
        if changed.is_empty() {
            return;
        }
        let entry = self.entry(manager, "Update");
        entry.fields.extend(changed);
        entry.api_version = api_version.to_string();
        entry.time = now.to_string();
    }
}

/// Fields another manager owns with another value than the applied configuration.
#[derive(Debug, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field, as Kubernetes prints it (`.spec.http`).
    pub field: String,
}

/// Server-side apply of `applied` by `manager` onto `current` (`None`: the object is
/// new). Returns the object to store, or the conflicts when another manager owns a field
/// with another value and `force` is off.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let old = current.unwrap_or(&empty);
    let mut managers = Managers::of(old);
    let wanted = fields(applied);
    let mut conflicts = Vec::new();
    for m in &mut managers.0 {
        if m.name == manager && m.operation == "Apply" {
            continue;
        }
        let clashing: Vec<Field> = m
            .fields
            .iter()
            .filter(|f| wanted.get(*f).is_some_and(|v| get(old, f) != Some(v)))
            .cloned()
            .collect();
        if force {
            m.fields.retain(|f| !clashing.contains(f));
        } else {
            conflicts.extend(clashing.into_iter().map(|f| Conflict {
                manager: m.name.clone(),
                field: format!(".{}", f.join(".")),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut object = current.cloned().unwrap_or_else(|| {
        json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": {}, "spec": {}})
    });
    for k in ["name", "namespace"] {
        if let Some(v) = applied["metadata"].get(k) {
            object["metadata"][k] = v.clone();
        }
    }
    object["apiVersion"] = applied["apiVersion"].clone();
    // Fields this manager applied before and applies no more are removed, unless another
    // manager owns them too.
    let previous = managers.entry(manager, "Apply").fields.clone();
    let others: BTreeSet<Field> = managers
        .0
        .iter()
        .filter(|m| !(m.name == manager && m.operation == "Apply"))
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for f in previous
        .iter()
        .filter(|f| !wanted.contains_key(*f) && !others.contains(*f))
    {
        remove(&mut object, f);
    }
    for (f, v) in &wanted {
        set(&mut object, f, v.clone());
    }
    let entry = managers.entry(manager, "Apply");
    entry.fields = wanted.keys().cloned().collect();
    entry.api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    entry.time = now.to_string();
    managers.store(&mut object);
    Ok(object)
}

/// `FieldsV1`: `{"f:spec": {"f:hosts": {}}}`.
fn fold(fields: &BTreeSet<Field>) -> Value {
    let mut root = json!({});
    for f in fields {
        let mut at = &mut root;
        for k in f {
            at = at
                .as_object_mut()
                .map(|m| m.entry(format!("f:{k}")).or_insert(json!({})))
                .expect("objects all the way down");
        }
    }
    root
}

fn unfold(v: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Field>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let Some(name) = k.strip_prefix("f:") else {
                    continue;
                };
                path.push(name.to_string());
                unfold(child, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_as_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut list = json!({"l": [1, 2]});
        merge_patch(&mut list, &json!({"l": [3]}));
        assert_eq!(list, json!({"l": [3]}), "lists are replaced");
    }

    fn vs(hosts: &[&str], timeout: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "r", "namespace": "default"}, "spec": {"hosts": hosts}});
        if let Some(t) = timeout {
            v["spec"]["timeout"] = json!(t);
        }
        v
    }

    #[test]
    fn apply_owns_fields_and_conflicts_name_the_other_manager() {
        let created = server_side_apply(None, &vs(&["a"], Some("1s")), "alice", false, "t0")
            .expect("created");
        assert_eq!(created["spec"]["timeout"], "1s");
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "alice");
        assert!(
            created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
                .get("f:hosts")
                .is_some()
        );
        // Bob applies another value for hosts: a conflict with alice on .spec.hosts.
        let conflicts = server_side_apply(Some(&created), &vs(&["b"], None), "bob", false, "t1")
            .expect_err("conflict");
        assert_eq!(
            conflicts,
            [Conflict {
                manager: "alice".into(),
                field: ".spec.hosts".into()
            }]
        );
        // The same value is shared, not a conflict.
        let shared = server_side_apply(Some(&created), &vs(&["a"], None), "bob", false, "t1")
            .expect("no conflict");
        assert_eq!(shared["spec"]["timeout"], "1s", "alice's field stays");
        // With force, bob takes hosts.
        let forced = server_side_apply(Some(&created), &vs(&["b"], None), "bob", true, "t2")
            .expect("forced");
        assert_eq!(forced["spec"]["hosts"], json!(["b"]));
        // Alice applies without timeout: her field is removed.
        let dropped = server_side_apply(Some(&forced), &vs(&["b"], None), "alice", true, "t3")
            .expect("applied");
        assert!(dropped["spec"].get("timeout").is_none(), "{dropped}");
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let old = server_side_apply(None, &vs(&["a"], Some("1s")), "alice", false, "t0")
            .expect("created");
        let mut new = old.clone();
        new["spec"]["timeout"] = json!("2s");
        let mut m = Managers::of(&old);
        m.updated("kubectl-edit", "networking.istio.io/v1", "t1", &old, &new);
        m.store(&mut new);
        let managers = Managers::of(&new);
        let edit = managers
            .0
            .iter()
            .find(|m| m.name == "kubectl-edit")
            .expect("edit");
        assert!(
            edit.fields
                .contains(&vec!["spec".to_string(), "timeout".to_string()])
        );
        let alice = managers
            .0
            .iter()
            .find(|m| m.name == "alice")
            .expect("alice");
        assert!(
            !alice
                .fields
                .contains(&vec!["spec".to_string(), "timeout".to_string()])
        );
        // Alice's next apply with her old value conflicts with kubectl-edit.
        let again = server_side_apply(Some(&new), &vs(&["a"], Some("1s")), "alice", false, "t2");
        assert!(again.is_err());
    }
}
