//! The resource endpoints, as the Kubernetes API serves custom resources: list (JSON or
//! Table, label and field selectors), get, watch, create, replace, JSON merge patch,
//! JSON patch (RFC 6902), server-side apply, delete and delete-collection; `dryRun=All` on every write;
//! `fieldValidation` (Strict by default, as kubectl asks; Warn and Ignore drop unknown
//! fields of a JSON body, Warn saying which in `Warning` headers).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use weft_api::Resource;

use super::ApiBody;
use super::apply::{self, Managers};
use super::path::{FieldValidation, Query, Target};
use super::reply::{bad_request, invalid, json_response, not_found, qualified, status};
use super::selector::{FieldSelector, LabelSelector};
use super::{table, watch};
use crate::store::{Key, Store, StoreError, Written};

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;

/// Answers a request for `target`.
pub async fn serve(
    store: &Arc<Store>,
    proxies: &Arc<crate::xds::Proxies>,
    target: Target,
    query: Query,
    req: Request<Incoming>,
) -> Response<ApiBody> {
    if let Some((k, _)) = query.other.iter().next() {
        return bad_request(&format!("unknown query parameter {k:?}"));
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let as_table = table::wanted(accept.as_deref());
    let labels = match query.label_selector.as_deref().map(LabelSelector::parse) {
        Some(Err(e)) => return bad_request(&e),
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let fields = match query.field_selector.as_deref().map(FieldSelector::parse) {
        Some(Err(e)) => return bad_request(&e),
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let selected = |r: &Resource| {
        labels
            .as_ref()
            .is_none_or(|s| s.matches(&r.metadata().labels))
            && fields.as_ref().is_none_or(|s| s.matches(r))
    };
    let method = req.method().clone();
    match (method, target.name.clone()) {
        (Method::GET, None) if query.watch => watch::stream(
            store,
            proxies,
            &target,
            watch::Watch {
                labels,
                fields,
                bookmarks: query.bookmarks,
                timeout: query.timeout_seconds.map(Duration::from_secs),
                table: as_table,
                since: query.resource_version,
            },
        ),
        (Method::GET, None) => {
            // As Kubernetes: the list's resourceVersion is the store's (taken first, so
            // the items are at least that recent).
            let version = store.version();
            let mut items: Vec<Resource> = store
                .list(target.kind, target.namespace.as_deref())
                .into_iter()
                .filter(|r| selected(r))
                .collect();
            super::gateway_status::fill(store, proxies, &mut items);
            if as_table {
                return json_response(StatusCode::OK, &table::render(target.kind, &items, version));
            }
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": target.api_version(), "kind": format!("{}List", target.kind), "metadata": {"resourceVersion": version.to_string()}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => match store.get(&key(&target, &name)).map(|r| {
            let mut one = [r];
            super::gateway_status::fill(store, proxies, &mut one);
            let [r] = one;
            r
        }) {
            Some(r) if as_table => json_response(
                StatusCode::OK,
                &table::render(target.kind, std::slice::from_ref(&r), store.version()),
            ),
            Some(r) => json_response(StatusCode::OK, &r),
            None => not_found(target.kind, &name),
        },
        (Method::DELETE, Some(name)) => delete(store, &target, &name, query.dry_run),
        (Method::DELETE, None) => {
            let doomed: Vec<Resource> = store
                .list(target.kind, target.namespace.as_deref())
                .into_iter()
                .filter(|r| selected(r))
                .collect();
            if !query.dry_run {
                for r in &doomed {
                    if let Err(e) = store.delete(&Key::of(r)) {
                        return store_error(&target, e);
                    }
                }
            }
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": target.api_version(), "kind": format!("{}List", target.kind), "metadata": {"resourceVersion": store.version().to_string()}, "items": doomed}),
            )
        }
        (Method::POST, None) | (Method::PUT, Some(_)) | (Method::PATCH, Some(_)) => {
            write(store, &target, &query, req).await
        }
        (m, _) => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{m} is not supported on this path"),
            None,
        ),
    }
}

fn key(target: &Target, name: &str) -> Key {
    Key {
        kind: target.kind,
        namespace: match target.kind.is_namespaced() {
            true => target.namespace.clone().unwrap_or_else(|| "default".into()),
            false => String::new(),
        },
        name: name.to_string(),
    }
}

fn delete(store: &Store, target: &Target, name: &str, dry_run: bool) -> Response<ApiBody> {
    let key = key(target, name);
    if dry_run {
        return match store.get(&key) {
            Some(r) => json_response(StatusCode::OK, &r),
            None => not_found(target.kind, name),
        };
    }
    match store.delete(&key) {
        Ok(r) => json_response(StatusCode::OK, &r),
        Err(e) => store_error(target, e),
    }
}

/// How a write changes the object.
enum Change {
    Create,
    Replace,
    MergePatch,
    JsonPatch,
    /// Kubernetes' own kinds only, as in Kubernetes.
    StrategicPatch,
    Apply,
}

async fn write(
    store: &Store,
    target: &Target,
    query: &Query,
    req: Request<Incoming>,
) -> Response<ApiBody> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    // Objects come as JSON (or YAML, its superset), or as protobuf from kubectl's typed
    // clients (`kubectl create secret`), read into JSON; CBOR is not read.
    let content_type = content_type.to_ascii_lowercase();
    let protobuf = content_type == "application/vnd.kubernetes.protobuf";
    let json = !matches!(
        content_type.as_str(),
        "application/cbor" | "application/apply-patch+cbor"
    ) || protobuf;
    let change = match (req.method(), content_type.as_str()) {
        (&Method::POST, _) if json => Change::Create,
        (&Method::PUT, _) if json => Change::Replace,
        (_, "application/merge-patch+json") => Change::MergePatch,
        (_, "application/json-patch+json") => Change::JsonPatch,
        (_, "application/strategic-merge-patch+json") if super::strategic::takes(target.kind) => {
            Change::StrategicPatch
        }
        (_, "application/apply-patch+yaml" | "application/apply-patch+cbor") => Change::Apply,
        (_, other) => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format ({other}) - accepted media types include: {}",
                    if matches!(*req.method(), Method::POST | Method::PUT) {
                        "application/json, application/yaml, application/vnd.kubernetes.protobuf (Secrets, ConfigMaps, Namespaces)"
                    } else {
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    }
                ),
                None,
            );
        }
    };
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split('/').next())
        .unwrap_or("unknown")
        .to_string();
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(&format!("reading the body: {e}")),
    };
    let decoded;
    let text = if protobuf {
        decoded = match super::protobuf::to_json(target.kind, &body) {
            Ok(t) => t,
            Err(e) => {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the protobuf body: {e}"),
                    None,
                );
            }
        };
        decoded.as_str()
    } else {
        let Ok(text) = std::str::from_utf8(&body) else {
            return bad_request("the body is not UTF-8");
        };
        text
    };
    let name = target.name.clone().unwrap_or_default();
    let current = target
        .name
        .as_ref()
        .and_then(|n| store.get(&key(target, n)));
    let now = weft_api::timestamp::rfc3339(SystemTime::now());
    let mut warnings = Vec::new();
    let manager = query.field_manager.clone().unwrap_or(agent);
    let proposed: Value = match change {
        Change::Create | Change::Replace => {
            match read(text, target, query.field_validation, &mut warnings) {
                Ok(r) => {
                    let mut v = to_value(&r);
                    let empty = json!({});
                    let old = current.as_ref().map_or(empty, to_value);
                    let mut managers = Managers::of(&old);
                    managers.updated(&manager, &target.api_version(), &now, &old, &v);
                    managers.store(&mut v);
                    v
                }
                Err(resp) => return *resp,
            }
        }
        Change::MergePatch | Change::JsonPatch | Change::StrategicPatch => {
            let Some(current) = &current else {
                return not_found(target.kind, &name);
            };
            let old = to_value(current);
            let mut merged = old.clone();
            if matches!(change, Change::MergePatch) {
                let patch: Value = match serde_json::from_str(text) {
                    Ok(p @ Value::Object(_)) => p,
                    Ok(_) => return bad_request("a merge patch must be a JSON object"),
                    Err(e) => return bad_request(&format!("the merge patch is not JSON: {e}")),
                };
                apply::merge_patch(&mut merged, &patch);
            } else if matches!(change, Change::StrategicPatch) {
                let patch: Value = match serde_json::from_str(text) {
                    Ok(p) => p,
                    Err(e) => {
                        return bad_request(&format!("the strategic merge patch is not JSON: {e}"));
                    }
                };
                if let Err(e) = super::strategic::apply(target.kind, &mut merged, &patch) {
                    return bad_request(&format!("the strategic merge patch: {e}"));
                }
            } else {
                // RFC 6902: every operation applies, or none (a failed `test` included).
                let patch: json_patch::Patch = match serde_json::from_str(text) {
                    Ok(p) => p,
                    Err(e) => return bad_request(&format!("the JSON patch does not parse: {e}")),
                };
                if let Err(e) = json_patch::patch(&mut merged, &patch) {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        &format!("the JSON patch cannot be applied: {e}"),
                        None,
                    );
                }
            }
            let mut managers = Managers::of(&old);
            managers.updated(&manager, &target.api_version(), &now, &old, &merged);
            managers.store(&mut merged);
            merged
        }
        Change::Apply => {
            if query.field_manager.is_none() {
                return bad_request("PATCH: fieldManager is required for apply requests");
            }
            let applied = match read(text, target, query.field_validation, &mut warnings) {
                Ok(r) => to_value(&r),
                Err(resp) => return *resp,
            };
            let old = current.as_ref().map(to_value);
            match apply::server_side_apply(old.as_ref(), &applied, &manager, query.force, &now) {
                Ok(v) => v,
                Err(conflicts) => return conflict(target, &name, &conflicts),
            }
        }
    };
    let create =
        matches!(change, Change::Create) || (matches!(change, Change::Apply) && current.is_none());
    let resource = match read(
        &proposed.to_string(),
        target,
        FieldValidation::Strict,
        &mut Vec::new(),
    ) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let path_ns = target.namespace.as_deref();
    let ns_mismatch = path_ns.is_some_and(|ns| {
        resource
            .metadata()
            .namespace
            .as_deref()
            .is_some_and(|b| b != ns)
    });
    if ns_mismatch || target.name.as_deref().is_some_and(|n| n != resource.name()) {
        return bad_request("the namespace or name in the body does not match the path");
    }
    let mut resource = resource;
    if resource.metadata().namespace.is_none() {
        resource.metadata_mut().namespace = target.namespace.clone();
    }
    let mut resp = if query.dry_run {
        dry_run(store, target, resource, create)
    } else {
        match store.put(resource, create) {
            Ok((written, r)) => {
                let code = if written == Written::Created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let mut resp = json_response(code, &r);
                let label = match written {
                    Written::Created => "created",
                    Written::Configured => "configured",
                    Written::Unchanged => "unchanged",
                };
                resp.headers_mut()
                    .insert("x-weft-result", HeaderValue::from_static(label));
                resp
            }
            Err(e) => store_error(target, e),
        }
    };
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// What the write would store, checked as the store checks it, without storing.
fn dry_run(store: &Store, target: &Target, resource: Resource, create: bool) -> Response<ApiBody> {
    let existing = store.get(&Key::of(&resource));
    match (existing, create) {
        (Some(_), true) => store_error(target, StoreError::AlreadyExists(Key::of(&resource))),
        (Some(old), false) => {
            let given = resource.metadata().resource_version.clone();
            let current = old.metadata().resource_version.clone().unwrap_or_default();
            if let Some(given) = given.filter(|g| *g != current) {
                return store_error(target, StoreError::Conflict { current, given });
            }
            json_response(StatusCode::OK, &resource)
        }
        (None, true) => json_response(StatusCode::CREATED, &resource),
        (None, false) => not_found(target.kind, resource.name()),
    }
}

fn to_value(r: &Resource) -> Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// Loads one resource of `target`'s kind from `text` (JSON or YAML), validated. Under
/// `Warn` or `Ignore`, unknown fields of a JSON body are dropped (named in `warnings`
/// under `Warn`) and the rest is read again.
fn read(
    text: &str,
    target: &Target,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Resource, Box<Response<ApiBody>>> {
    let mut loaded = weft_api::load_str("request", text);
    if validation != FieldValidation::Strict {
        let unknown: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error() && d.message.starts_with("unknown field"))
            .filter_map(|d| d.field.clone())
            .collect();
        if let (false, Ok(mut body)) = (unknown.is_empty(), serde_json::from_str::<Value>(text)) {
            for field in &unknown {
                remove_path(&mut body, field);
                if validation == FieldValidation::Warn {
                    warnings.push(format!("unknown field \"{field}\""));
                }
            }
            loaded = weft_api::load_str("request", &body.to_string());
        }
    }
    let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        let name = errors
            .iter()
            .find_map(|d| d.resource.as_ref().map(|r| r.name.clone()))
            .or_else(|| target.name.clone())
            .unwrap_or_default();
        return Err(Box::new(invalid(target.kind, &name, &errors)));
    }
    // Warnings as the API server words them: the field, then the message.
    warnings.extend(
        loaded
            .diagnostics
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| match &d.field {
                Some(field) => format!("{field}: {}", d.message),
                None => d.message.clone(),
            }),
    );
    let mut resources = loaded.resources;
    if resources.len() != 1 {
        return Err(Box::new(bad_request(&format!(
            "expected one resource in the body, got {}",
            resources.len()
        ))));
    }
    let resource = resources.remove(0).resource;
    if resource.kind() != target.kind {
        return Err(Box::new(bad_request(&format!(
            "the body is a {}, the path is for {}",
            resource.kind(),
            target.kind
        ))));
    }
    Ok(resource)
}

/// Removes `spec.http[0].foo` from `body`.
fn remove_path(body: &mut Value, path: &str) {
    let mut steps: Vec<Result<String, usize>> = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            steps.push(Ok(name.to_string()));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                steps.push(Err(i));
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut at = body;
    for step in parents {
        let next = match step {
            Ok(k) => at.get_mut(k.as_str()),
            Err(i) => at.get_mut(*i),
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    if let (Ok(k), Value::Object(m)) = (last, at) {
        m.remove(k);
    }
}

/// `409 Conflict` for server-side apply, worded as the API server words it.
fn conflict(target: &Target, name: &str, conflicts: &[apply::Conflict]) -> Response<ApiBody> {
    let each: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\" using {}: {}",
                c.manager,
                target.api_version(),
                c.field
            )
        })
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .zip(&each)
        .map(|(c, m)| json!({"reason": "FieldManagerConflict", "message": m, "field": c.field}))
        .collect();
    let plural = if conflicts.len() == 1 { "" } else { "s" };
    status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Apply failed with {} conflict{plural}: {}",
            conflicts.len(),
            each.join("\n")
        ),
        Some(
            json!({"name": name, "group": target.kind.group(), "kind": target.kind.plural(), "causes": causes}),
        ),
    )
}

fn store_error(target: &Target, e: StoreError) -> Response<ApiBody> {
    match e {
        StoreError::AlreadyExists(k) => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!(
                "{} \"{}\" already exists",
                k.kind.qualify(k.kind.plural()),
                k.name
            ),
            Some(json!({"name": k.name, "group": k.kind.group(), "kind": k.kind.plural()})),
        ),
        StoreError::Conflict { current, given } => status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {}: the object has been modified; please apply your changes to the latest version and try again (resourceVersion {given} is stale, current is {current})",
                target.kind.qualify(target.kind.plural())
            ),
            None,
        ),
        StoreError::NotFound(k) => not_found(target.kind, &k.name),
        StoreError::Invalid(message) => status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!("{} is invalid: {message}", qualified(target.kind)),
            None,
        ),
        e @ StoreError::Io { .. } => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_paths_are_removed() {
        let mut v = json!({"spec": {"http": [{"route": [], "bogus": 1}], "hosts": ["a"]}});
        remove_path(&mut v, "spec.http[0].bogus");
        assert_eq!(
            v,
            json!({"spec": {"http": [{"route": []}], "hosts": ["a"]}})
        );
    }
}
