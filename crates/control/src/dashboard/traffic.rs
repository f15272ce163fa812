//! The traffic page: for a service whose DestinationRule defines subsets, the weights
//! of its split (the seed's 10/90 canary) and a fault (abort, delay), written as the
//! service's VirtualService through the same loading, validation and store as
//! `weft apply`. A VirtualService with more than one HTTP rule, or with matches, is
//! shown but not edited here (the editor would lose what it cannot show).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use weft_api::{Kind, Resource};

use crate::store::{Key, Store, StoreError};

/// A field error for the page: which input, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `weights.v1`, `fault.abort.httpStatus`, ... (empty: the whole form).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a write was refused.
#[derive(Debug)]
pub enum Refused {
    /// The values are invalid (422).
    Invalid(Vec<FieldError>),
    /// No such service with subsets (404).
    NotFound(String),
    /// The VirtualService is more than the editor shows, or changed meanwhile (409).
    Conflict(String),
    /// The store could not write (500).
    Store(String),
}

fn json_of(r: &Resource) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// `(namespace, service)` a host names, seen from `namespace`: `name`, `name.ns`,
/// `name.ns.svc` and `name.ns.svc.cluster.local` are that service; any other host (an
/// external name like `api.example.com`) is its own service in `namespace`.
pub fn service_of_host(host: &str, namespace: &str) -> (String, String) {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => (namespace.to_string(), name.to_string()),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => {
            (ns.to_string(), name.to_string())
        }
        _ => (namespace.to_string(), host.to_string()),
    }
}

/// Every service with subsets: `(namespace, service, host, subsets)`.
fn services(store: &Store) -> Vec<(String, String, String, Vec<String>)> {
    let mut out: BTreeMap<(String, String), (String, Vec<String>)> = BTreeMap::new();
    for dr in store.list(Kind::DestinationRule, None) {
        let v = json_of(&dr);
        let Some(host) = v["spec"]["host"].as_str() else {
            continue;
        };
        let subsets: Vec<String> = v["spec"]["subsets"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if subsets.is_empty() {
            continue;
        }
        let entry = out
            .entry(service_of_host(host, dr.namespace()))
            .or_insert_with(|| (host.to_string(), Vec::new()));
        for s in subsets {
            if !entry.1.contains(&s) {
                entry.1.push(s);
            }
        }
    }
    out.into_iter()
        .map(|((ns, name), (host, subsets))| (ns, name, host, subsets))
        .collect()
}

/// The list of services the editor can shift.
pub fn list(store: &Store) -> Value {
    let services: Vec<Value> = services(store)
        .into_iter()
        .map(|(ns, name, host, subsets)| json!({"namespace": ns, "service": name, "host": host, "subsets": subsets}))
        .collect();
    json!({ "services": services })
}

/// The mesh VirtualService for the service, if one exists.
fn virtual_service(store: &Store, namespace: &str, service: &str) -> Option<Resource> {
    store
        .list(Kind::VirtualService, Some(namespace))
        .into_iter()
        .find(|vs| {
            let v = json_of(vs);
            let for_mesh = v["spec"]["gateways"]
                .as_array()
                .is_none_or(|g| g.is_empty() || g.iter().any(|g| g == "mesh"));
            for_mesh
                && v["spec"]["hosts"].as_array().is_some_and(|hosts| {
                    hosts.iter().filter_map(Value::as_str).any(|h| {
                        service_of_host(h, namespace)
                            == (namespace.to_string(), service.to_string())
                    })
                })
        })
}

/// The keys of `v` that hold something (not null, not empty).
fn set_keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Why the editor cannot edit `vs` (for the service at `host`), if it cannot: it edits
/// only what it shows, so nothing of the VirtualService is lost by writing it back.
fn not_editable(vs: &Value, host: &str, namespace: &str) -> Option<String> {
    let name = vs["metadata"]["name"].as_str().unwrap_or_default();
    let with_apply = |why: String| {
        Some(format!(
            "VirtualService {name} {why}; edit it with weft apply."
        ))
    };
    let spec = &vs["spec"];
    let hosts = spec["hosts"].as_array().map(Vec::len).unwrap_or(0);
    if hosts != 1 {
        return with_apply(format!("routes {hosts} hosts"));
    }
    if spec["gateways"]
        .as_array()
        .is_some_and(|g| g.iter().any(|g| g != "mesh"))
    {
        return with_apply("also routes gateways".into());
    }
    if !spec["tcp"].as_array().is_none_or(Vec::is_empty)
        || !spec["tls"].as_array().is_none_or(Vec::is_empty)
    {
        return with_apply("also routes TCP or TLS".into());
    }
    let http = spec["http"].as_array().cloned().unwrap_or_default();
    if http.len() != 1 {
        return with_apply(format!(
            "has {} HTTP rules; the editor shows one",
            http.len()
        ));
    }
    let rule = &http[0];
    let keys = set_keys(rule);
    if keys.contains(&"match") {
        return with_apply("has matches; the editor only shifts unconditional traffic".into());
    }
    if let Some(k) = keys
        .iter()
        .find(|k| matches!(**k, "redirect" | "directResponse" | "delegate"))
    {
        return with_apply(format!("answers with {k} rather than routes"));
    }
    let want = service_of_host(host, namespace);
    for (i, route) in rule["route"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(k) = set_keys(route)
            .into_iter()
            .find(|k| !matches!(*k, "destination" | "weight"))
        {
            return with_apply(format!("sets {k} on route {i}"));
        }
        let d = &route["destination"];
        if let Some(k) = set_keys(d)
            .into_iter()
            .find(|k| !matches!(*k, "host" | "subset"))
        {
            return with_apply(format!("sets destination.{k} on route {i}"));
        }
        if service_of_host(d["host"].as_str().unwrap_or_default(), namespace) != want {
            return with_apply(format!("sends route {i} to another host"));
        }
    }
    let fault = &rule["fault"];
    for (part, allowed) in [
        ("abort", ["httpStatus", "percentage"]),
        ("delay", ["fixedDelay", "percentage"]),
    ] {
        if let Some(k) = set_keys(&fault[part])
            .into_iter()
            .find(|k| !allowed.contains(k))
        {
            return with_apply(format!(
                "sets fault.{part}.{k}, which the editor does not show"
            ));
        }
    }
    None
}

fn percentage(v: &Value) -> Value {
    v["percentage"]["value"].clone()
}

/// The editor's view of one service.
pub fn get(store: &Store, namespace: &str, service: &str) -> Result<Value, Refused> {
    let Some((ns, name, host, subsets)) = services(store)
        .into_iter()
        .find(|(ns, name, ..)| ns == namespace && name == service)
    else {
        return Err(Refused::NotFound(format!(
            "no DestinationRule in namespace {namespace} defines subsets for {service}"
        )));
    };
    let vs = virtual_service(store, namespace, service).map(|r| json_of(&r));
    let reason = vs.as_ref().and_then(|v| not_editable(v, &host, namespace));
    let rule = vs
        .as_ref()
        .map(|v| v["spec"]["http"][0].clone())
        .unwrap_or(Value::Null);
    // Weights only when every route names a subset; one route to the host is no split.
    let weights = rule["route"].as_array().and_then(|routes| {
        let single = routes.len() == 1;
        routes
            .iter()
            .map(|r| {
                let subset = r["destination"]["subset"].as_str()?.to_string();
                let w = match r["weight"].as_u64() {
                    Some(0) | None if single => 100,
                    Some(w) => w,
                    None => 0,
                };
                Some((subset, json!(w)))
            })
            .collect::<Option<Map<String, Value>>>()
    });
    let fault = &rule["fault"];
    let abort = (!fault["abort"].is_null()).then(|| {
        json!({"httpStatus": fault["abort"]["httpStatus"], "percentage": percentage(&fault["abort"])})
    });
    let delay = (!fault["delay"].is_null()).then(|| {
        json!({"fixedDelay": fault["delay"]["fixedDelay"], "percentage": percentage(&fault["delay"])})
    });
    Ok(json!({
        "namespace": ns, "service": name, "host": host, "subsets": subsets,
        "virtualService": vs.as_ref().map(|v| json!({"name": v["metadata"]["name"], "resourceVersion": v["metadata"]["resourceVersion"]})),
        "editable": reason.is_none(), "reason": reason,
        "weights": weights.filter(|w| !w.is_empty()),
        "fault": if abort.is_none() && delay.is_none() { Value::Null } else { json!({"abort": abort, "delay": delay}) },
    }))
}

fn error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A percentage field: a number from 0 to 100.
fn check_percentage(v: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<f64> {
    match v.as_f64() {
        Some(p) if (0.0..=100.0).contains(&p) => Some(p),
        Some(p) => {
            errors.push(error(field, format!("must be between 0 and 100 (got {p})")));
            None
        }
        None if v.is_null() => Some(100.0),
        None => {
            errors.push(error(field, format!("must be a number (got {v})")));
            None
        }
    }
}

/// The HTTP rule the form asks for, or every field error in it.
fn rule_of(
    form: &Value,
    host: &str,
    subsets: &[String],
) -> Result<(Value, Vec<String>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut route = Vec::new();
    let mut order = Vec::new();
    match &form["weights"] {
        Value::Null => route.push(json!({"destination": {"host": host}})),
        Value::Object(weights) => {
            let mut sum = 0u64;
            for (subset, w) in weights {
                let field = format!("weights.{subset}");
                if !subsets.contains(subset) {
                    errors.push(error(
                        &field,
                        format!(
                            "{subset:?} is not a subset of {host} (its DestinationRule defines {})",
                            subsets.join(", ")
                        ),
                    ));
                    continue;
                }
                match w.as_i64() {
                    Some(w) if w < 0 => {
                        errors.push(error(&field, format!("must not be negative (got {w})")))
                    }
                    Some(w) if w > 100 => {
                        errors.push(error(&field, format!("must be at most 100 (got {w})")))
                    }
                    Some(w) => {
                        sum += w as u64;
                        order.push(subset.clone());
                        route.push(
                            json!({"destination": {"host": host, "subset": subset}, "weight": w}),
                        );
                    }
                    None => errors.push(error(&field, format!("must be a whole number (got {w})"))),
                }
            }
            if errors.is_empty() && sum != 100 {
                errors.push(error(
                    "weights",
                    format!("the weights must add up to 100 (they add up to {sum})"),
                ));
            }
            if weights.is_empty() {
                errors.push(error("weights", "give a weight for at least one subset"));
            }
        }
        other => errors.push(error(
            "weights",
            format!("must be an object of subset weights (got {other})"),
        )),
    }
    let mut fault = Map::new();
    let f = &form["fault"];
    if !f["abort"].is_null() {
        let status = match f["abort"]["httpStatus"].as_i64() {
            Some(s) if (200..=599).contains(&s) => Some(s),
            Some(s) => {
                errors.push(error(
                    "fault.abort.httpStatus",
                    format!("must be an HTTP status from 200 to 599 (got {s})"),
                ));
                None
            }
            None => {
                errors.push(error(
                    "fault.abort.httpStatus",
                    "give an HTTP status such as 500",
                ));
                None
            }
        };
        let pct = check_percentage(
            &f["abort"]["percentage"],
            "fault.abort.percentage",
            &mut errors,
        );
        if let (Some(s), Some(p)) = (status, pct) {
            fault.insert(
                "abort".into(),
                json!({"httpStatus": s, "percentage": {"value": p}}),
            );
        }
    }
    if !f["delay"].is_null() {
        let delay = match f["delay"]["fixedDelay"].as_str() {
            Some(d) => match weft_api::duration::parse_duration(d) {
                Ok(_) => Some(d.to_string()),
                Err(e) => {
                    errors.push(error("fault.delay.fixedDelay", e.to_string()));
                    None
                }
            },
            None => {
                errors.push(error(
                    "fault.delay.fixedDelay",
                    "give a duration such as 2s",
                ));
                None
            }
        };
        let pct = check_percentage(
            &f["delay"]["percentage"],
            "fault.delay.percentage",
            &mut errors,
        );
        if let (Some(d), Some(p)) = (delay, pct) {
            fault.insert(
                "delay".into(),
                json!({"fixedDelay": d, "percentage": {"value": p}}),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rule = json!({ "route": route });
    if !fault.is_empty() {
        rule["fault"] = Value::Object(fault);
    }
    Ok((rule, order))
}

/// Maps a validation error's field path back to the form's field.
fn form_field(path: &str, order: &[String]) -> String {
    if path == "spec.http[0].route" || path.starts_with("spec.http[0].route.") {
        return "weights".into();
    }
    if let Some(rest) = path.strip_prefix("spec.http[0].route[") {
        if let Some((i, _)) = rest.split_once(']') {
            if let Some(subset) = i.parse::<usize>().ok().and_then(|i| order.get(i)) {
                return format!("weights.{subset}");
            }
        }
        return "weights".into();
    }
    for (prefix, field) in [
        (
            "spec.http[0].fault.abort.httpStatus",
            "fault.abort.httpStatus",
        ),
        (
            "spec.http[0].fault.abort.percentage",
            "fault.abort.percentage",
        ),
        (
            "spec.http[0].fault.delay.fixedDelay",
            "fault.delay.fixedDelay",
        ),
        (
            "spec.http[0].fault.delay.percentage",
            "fault.delay.percentage",
        ),
    ] {
        if path.starts_with(prefix) {
            return field.into();
        }
    }
    String::new()
}

/// Writes the form as the service's VirtualService.
pub fn put(store: &Store, namespace: &str, service: &str, form: &Value) -> Result<Value, Refused> {
    let view = get(store, namespace, service)?;
    if let Some(reason) = view["reason"].as_str() {
        return Err(Refused::Conflict(reason.to_string()));
    }
    let host = view["host"].as_str().unwrap_or(service).to_string();
    let subsets: Vec<String> = serde_json::from_value(view["subsets"].clone()).unwrap_or_default();
    let (rule, order) = rule_of(form, &host, &subsets).map_err(Refused::Invalid)?;
    let existing = virtual_service(store, namespace, service);
    precondition(form.get("resourceVersion"), existing.as_ref())?;
    let mut vs = match &existing {
        Some(r) => json_of(r),
        None => json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": service, "namespace": namespace,
                         "annotations": {"weft.io/written-by": "dashboard"}},
            "spec": {"hosts": [host], "http": [{}]},
        }),
    };
    // The rule's other settings (timeout, retries, headers) stay as they were.
    let kept = vs["spec"]["http"][0]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut merged = kept;
    merged.remove("route");
    merged.remove("fault");
    if let Some(new) = rule.as_object() {
        merged.extend(new.clone());
    }
    vs["spec"]["http"] = json!([Value::Object(merged)]);
    if let Some(meta) = vs["metadata"].as_object_mut() {
        for generated in ["uid", "generation", "creationTimestamp"] {
            meta.remove(generated);
        }
    }
    // Through the loader, so the same validation as `weft apply` decides.
    let loaded = weft_api::load_str("dashboard", &vs.to_string());
    let errors: Vec<FieldError> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            error(
                form_field(d.field.as_deref().unwrap_or_default(), &order),
                d.message.clone(),
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(Refused::Invalid(errors));
    }
    let Some(resource) = loaded.resources.into_iter().next().map(|l| l.resource) else {
        return Err(Refused::Store("the VirtualService did not load".into()));
    };
    // A new VirtualService must not replace one of the same name made for something else.
    store
        .put(resource, existing.is_none())
        .map_err(|e| match e {
            StoreError::Conflict { .. } => Refused::Conflict(format!("{e}; reload the page")),
            StoreError::AlreadyExists(k) => Refused::Conflict(format!(
                "a VirtualService {}/{} exists for other hosts; edit it with weft apply",
                k.namespace, k.name
            )),
            StoreError::Invalid(m) => Refused::Invalid(vec![error("", m)]),
            other => Refused::Store(other.to_string()),
        })?;
    get(store, namespace, service)
}

/// The write is for the VirtualService the page loaded: `resourceVersion` as the GET
/// returned it (null: there was none), else it is refused, not merged.
fn precondition(given: Option<&Value>, existing: Option<&Resource>) -> Result<(), Refused> {
    let current = existing.and_then(|r| r.metadata().resource_version.clone());
    let given = match given {
        None => {
            return Err(Refused::Invalid(vec![error(
                "resourceVersion",
                "give the resourceVersion the page loaded (null when there was no VirtualService)",
            )]));
        }
        Some(Value::Null) => None,
        Some(Value::String(v)) if v.is_empty() => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(other) => Some(other.to_string()),
    };
    if given == current {
        return Ok(());
    }
    Err(Refused::Conflict(match (given, current) {
        (_, None) => {
            "the VirtualService was deleted since the page loaded it; reload the page".into()
        }
        (None, Some(now)) => format!(
            "a VirtualService was created since the page loaded (resourceVersion {now}); reload the page"
        ),
        (Some(was), Some(now)) => format!(
            "the VirtualService changed since the page loaded it (resourceVersion {was}, now {now}); reload the page"
        ),
    }))
}

/// Takes the split and the fault away: the even split is back. A VirtualService that
/// held nothing else is deleted; one with other settings (timeout, retries, headers)
/// keeps them and routes to the whole service.
pub fn reset(
    store: &Store,
    namespace: &str,
    service: &str,
    resource_version: Option<&str>,
) -> Result<Value, Refused> {
    let view = get(store, namespace, service)?;
    if let Some(reason) = view["reason"].as_str() {
        return Err(Refused::Conflict(reason.to_string()));
    }
    let existing = virtual_service(store, namespace, service);
    precondition(
        Some(&resource_version.map_or(Value::Null, |v| json!(v))),
        existing.as_ref(),
    )?;
    let Some(vs) = existing else {
        return get(store, namespace, service);
    };
    let mut v = json_of(&vs);
    let mut rule = v["spec"]["http"][0]
        .as_object()
        .cloned()
        .unwrap_or_default();
    rule.remove("route");
    rule.remove("fault");
    let left = Value::Object(rule.clone());
    if set_keys(&left).is_empty() {
        match store.delete(&Key::of(&vs)) {
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(Refused::Store(e.to_string())),
        }
        return get(store, namespace, service);
    }
    let host = view["host"].as_str().unwrap_or(service).to_string();
    rule.insert("route".into(), json!([{"destination": {"host": host}}]));
    v["spec"]["http"] = json!([Value::Object(rule)]);
    let loaded = weft_api::load_str("dashboard", &v.to_string());
    let Some(resource) = loaded.resources.into_iter().next().map(|l| l.resource) else {
        return Err(Refused::Store("the VirtualService did not load".into()));
    };
    store.put(resource, false).map_err(|e| match e {
        StoreError::Conflict { .. } => Refused::Conflict(format!("{e}; reload the page")),
        other => Refused::Store(other.to_string()),
    })?;
    get(store, namespace, service)
}

#[cfg(test)]
mod tests;
