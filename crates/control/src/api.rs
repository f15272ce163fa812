//! The resource API, shaped like Kubernetes' so kubectl habits carry over:
//! `/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]` (and
//! `/apis/{group}/{version}/{plural}` across namespaces) with GET (list, get, `?watch=true`),
//! POST (create), PUT (replace, optimistic concurrency), DELETE. Bodies are JSON or YAML;
//! answers are JSON. Errors are Kubernetes `Status` objects: 422 lists every field error.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use weft_api::{Kind, Resource};

use crate::store::{Key, Store, StoreError, Written};

/// Response body: a whole document or a stream of watch events.
pub type ApiBody = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;

/// A parsed resource path.
#[derive(Debug, PartialEq)]
struct Target {
    kind: Kind,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return None,
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.group() == group && k.plural() == plural)?;
    kind.api_versions().contains(&version).then(|| Target {
        kind,
        version: version.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    })
}

/// Answers one API request.
pub async fn handle(
    store: Arc<Store>,
    proxies: Arc<crate::xds::Proxies>,
    ca: Option<Arc<crate::ca::Ca>>,
    req: Request<Incoming>,
) -> Response<ApiBody> {
    let path = req.uri().path().to_string();
    if path == "/debug/certificates" {
        let issued = ca.as_ref().map(|c| c.issued()).unwrap_or_default();
        return json_response(StatusCode::OK, &json!({"certificates": issued}));
    }
    if path == "/ca/root" {
        return match &ca {
            Some(ca) => json_response(StatusCode::OK, &json!({"root": ca.root_pem()})),
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "the certificate authority is off"}),
            ),
        };
    }
    if path == "/ca/tokens" && req.method() == Method::POST {
        // A bootstrap token for one workload identity (`weft up` asks one per workload).
        let Some(ca) = ca else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "the certificate authority is off"}),
            );
        };
        let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"message": format!("reading the body: {e}")}),
                );
            }
        };
        let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (Some(ns), Some(sa)) = (
            asked["namespace"].as_str(),
            asked["serviceAccount"].as_str(),
        ) else {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"message": "namespace and serviceAccount are required"}),
            );
        };
        if !weft_api::validate::checks::is_dns1123_label(ns)
            || !weft_api::validate::checks::is_dns1123_subdomain(sa)
        {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"message": "namespace must be a DNS label and serviceAccount a DNS subdomain"}),
            );
        }
        return match ca.issue_token(ns, sa) {
            Ok(token) => json_response(StatusCode::CREATED, &json!({"token": token})),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"message": format!("no token issued: {e}")}),
            ),
        };
    }
    if path == "/healthz" || path == "/ready" {
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    if path == "/debug/proxies" {
        return json_response(StatusCode::OK, &json!({"proxies": proxies.list()}));
    }
    if path == "/metrics" {
        let mut counts: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for r in store.all() {
            *counts.entry(r.kind().name().to_string()).or_default() += 1;
        }
        let counts: Vec<(String, usize)> = counts.into_iter().collect();
        let mut resp =
            Response::new(Full::new(Bytes::from(proxies.metrics.render(&counts))).boxed_unsync());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return resp;
    }
    let Some(target) = parse_path(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "no resource at {path}; use /apis/{{group}}/{{version}}/namespaces/{{ns}}/{{plural}}"
            ),
            None,
        );
    };
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let method = req.method().clone();
    match (method, &target.name) {
        (Method::GET, None) if watch => watch_stream(&store, &target),
        (Method::GET, None) => {
            // As Kubernetes: the list's resourceVersion is the store's (taken first, so
            // the items are at least that recent).
            let version = store.version();
            let items: Vec<Resource> = store.list(target.kind, target.namespace.as_deref());
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": format!("{}/{}", target.kind.group(), target.version), "kind": format!("{}List", target.kind), "metadata": {"resourceVersion": version.to_string()}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => match store.get(&key(&target, name)) {
            Some(r) => json_response(StatusCode::OK, &r),
            None => not_found(&target, name),
        },
        (Method::DELETE, Some(name)) => match store.delete(&key(&target, name)) {
            Ok(r) => json_response(StatusCode::OK, &r),
            Err(StoreError::NotFound(_)) => not_found(&target, name),
            Err(e) => status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
                None,
            ),
        },
        (Method::POST, None) | (Method::PUT, Some(_)) => write(&store, &target, req).await,
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{} is not supported on {path}", req.method()),
            None,
        ),
    }
}

fn key(target: &Target, name: &str) -> Key {
    Key {
        kind: target.kind,
        namespace: target.namespace.clone().unwrap_or_else(|| "default".into()),
        name: name.to_string(),
    }
}

async fn write(store: &Store, target: &Target, req: Request<Incoming>) -> Response<ApiBody> {
    let create = req.method() == Method::POST;
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("reading the body: {e}"),
                None,
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not UTF-8",
            None,
        );
    };
    let loaded = weft_api::load_str("request", text);
    let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        let causes: Vec<Value> = errors
            .iter()
            .map(|d| json!({"reason": "FieldValueInvalid", "field": d.field.clone().unwrap_or_default(), "message": d.message}))
            .collect();
        let name = errors
            .iter()
            .find_map(|d| d.resource.as_ref().map(|r| r.name.clone()))
            .unwrap_or_default();
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &message,
            Some(
                json!({"name": name, "group": target.kind.group(), "kind": target.kind.name(), "causes": causes}),
            ),
        );
    }
    let mut resources = loaded.resources;
    if resources.len() != 1 {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("expected one resource in the body, got {}", resources.len()),
            None,
        );
    }
    let resource = resources.remove(0).resource;
    if resource.kind() != target.kind {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "the body is a {}, the path is for {}",
                resource.kind(),
                target.kind
            ),
            None,
        );
    }
    let ns_mismatch = target.namespace.as_deref().is_some_and(|ns| {
        resource
            .metadata()
            .namespace
            .as_deref()
            .is_some_and(|b| b != ns)
    });
    let name_mismatch = target.name.as_deref().is_some_and(|n| n != resource.name());
    if ns_mismatch || name_mismatch {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the namespace or name in the body does not match the path",
            None,
        );
    }
    let mut resource = resource;
    if resource.metadata().namespace.is_none() {
        resource.metadata_mut().namespace = target.namespace.clone();
    }
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
                .insert("x-weft-result", header::HeaderValue::from_static(label));
            resp
        }
        Err(StoreError::AlreadyExists(k)) => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{} {}/{} already exists", k.kind, k.namespace, k.name),
            None,
        ),
        Err(StoreError::Conflict { current, given }) => status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "the object has been modified; please apply your changes to the latest version (resourceVersion {given} is stale, current is {current})"
            ),
            None,
        ),
        Err(StoreError::NotFound(k)) => not_found(target, &k.name),
        Err(StoreError::Invalid(message)) => {
            status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message, None)
        }
        Err(e @ StoreError::Io { .. }) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
            None,
        ),
    }
}

fn watch_stream(store: &Store, target: &Target) -> Response<ApiBody> {
    let (kind, namespace) = (target.kind, target.namespace.clone());
    let events = tokio_stream_of(store.watch()).filter_map(move |e| {
        let line = match e {
            Watched::Event(e) => {
                let keep = e.object.kind() == kind
                    && namespace
                        .as_deref()
                        .is_none_or(|ns| e.object.namespace() == ns);
                keep.then(|| serde_json::to_vec(&e).ok()).flatten()
            }
            // As Kubernetes: the watcher fell behind, so its view may be wrong; it must list again.
            Watched::Lagged(missed) => serde_json::to_vec(&json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
                    "message": format!("the watch fell {missed} events behind; list again and watch from there"),
                }
            }))
            .ok(),
        };
        let frame = line.map(|mut v| {
            v.push(b'\n');
            Ok::<_, Infallible>(Frame::data(Bytes::from(v)))
        });
        async move { frame }
    });
    let mut resp = Response::new(StreamBody::new(events).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What a watcher receives: a change, or the news that it missed some (the last item).
enum Watched {
    Event(crate::store::Event),
    Lagged(u64),
}

/// A broadcast receiver as a stream; a watcher that lags gets [`Watched::Lagged`] and the
/// stream ends.
fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<crate::store::Event>,
) -> impl futures_util::Stream<Item = Watched> {
    futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(e) => Some((Watched::Event(e), Some(rx))),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Some((Watched::Lagged(n), None))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
}

fn not_found(target: &Target, name: &str) -> Response<ApiBody> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "{}.{} \"{name}\" not found",
            target.kind.plural(),
            target.kind.group()
        ),
        Some(json!({"name": name, "group": target.kind.group(), "kind": target.kind.plural()})),
    )
}

fn json_response<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<ApiBody> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A Kubernetes `Status` failure.
fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<ApiBody> {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(code, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubernetes() {
        let t = parse_path("/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews")
            .expect("parses");
        assert_eq!(
            (t.kind, t.namespace.as_deref(), t.name.as_deref()),
            (Kind::VirtualService, Some("shop"), Some("reviews"))
        );
        let all =
            parse_path("/apis/security.istio.io/v1beta1/authorizationpolicies").expect("parses");
        assert_eq!((all.kind, all.namespace), (Kind::AuthorizationPolicy, None));
        assert!(parse_path("/apis/security.istio.io/v1alpha3/authorizationpolicies").is_none());
        assert!(parse_path("/apis/networking.istio.io/v1/namespaces/x/widgets").is_none());
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_lagging_watcher_is_told_and_its_stream_ends() {
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let r = weft_api::load_str(
            "t",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: a}\n",
        )
        .resources
        .remove(0)
        .resource;
        for _ in 0..5 {
            tx.send(crate::store::Event {
                kind: "MODIFIED",
                object: r.clone(),
            })
            .expect("sent");
        }
        let seen: Vec<Watched> = tokio_stream_of(rx).collect().await;
        assert!(
            matches!(seen.as_slice(), [Watched::Lagged(3)]),
            "lag reported, then the end"
        );
    }
}
