//! OpenAPI v3 as the Kubernetes API server publishes it: `/openapi/v3` lists one
//! document per group-version; `/openapi/v3/apis/{group}/{version}` is that document,
//! with the kinds' schemas (from `weft_api::schema`, so `kubectl explain` shows weft's
//! own field descriptions) and the resource paths, whose write operations list the
//! `fieldValidation` parameter (kubectl asks the server to validate when they do).
//! `/openapi/v2` is not served: kubectl reads v2 only as protobuf, and takes the 404.

use std::collections::BTreeSet;

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};
use weft_api::Kind;

use super::ApiBody;
use super::reply::json_response;

/// The answer for an OpenAPI path, or `None` when `path` is not one.
pub fn answer(path: &str) -> Option<Response<ApiBody>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["openapi", "v3"] => Some(json_response(StatusCode::OK, &index())),
        ["openapi", "v3", "apis", group, version] => served(group, version),
        ["openapi", "v3", "api", version] => served("", version),
        _ => None,
    }
}

/// The document of `group`/`version`, when weft serves kinds there.
fn served(group: &str, version: &str) -> Option<Response<ApiBody>> {
    let known = Kind::ALL
        .iter()
        .any(|k| k.group() == group && k.api_versions().contains(&version));
    known.then(|| json_response(StatusCode::OK, &document(group, version)))
}

/// Every group-version weft serves.
fn group_versions() -> BTreeSet<(&'static str, &'static str)> {
    Kind::ALL
        .iter()
        .flat_map(|k| k.api_versions().iter().map(move |v| (k.group(), *v)))
        .collect()
}

/// `/openapi/v3`: where each group-version's document is (the hash changes with it).
fn index() -> Value {
    let paths: Map<String, Value> = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let hash = fnv(&document(g, v).to_string());
            let path = weft_api::schema::group_version_path(g, v);
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash:016X}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// The document of one group-version: schemas and paths.
fn document(group: &str, version: &str) -> Value {
    let mut doc = weft_api::schema::openapi_v3(group, version);
    let mut paths = Map::new();
    for kind in Kind::ALL
        .into_iter()
        .filter(|k| k.group() == group && k.api_versions().contains(&version))
    {
        let schema = format!("#/components/schemas/{}", component(group, version, kind));
        let gvk = json!({"group": group, "version": version, "kind": kind.name()});
        let op = |action: &str, verb: &str, extra: &[Value]| {
            let mut parameters = vec![
                query("dryRun", "string"),
                query("fieldManager", "string"),
                query("fieldValidation", "string"),
            ];
            parameters.extend_from_slice(extra);
            json!({
                "operationId": format!("{verb}{}", kind.name()),
                "parameters": if action == "get" || action == "list" || action == "delete" { Vec::new() } else { parameters },
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema}}}}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let base = match kind.is_namespaced() {
            true => format!(
                "/{}/namespaces/{{namespace}}/{}",
                weft_api::schema::group_version_path(group, version),
                kind.plural()
            ),
            false => format!(
                "/{}/{}",
                weft_api::schema::group_version_path(group, version),
                kind.plural()
            ),
        };
        paths.insert(
            base.clone(),
            json!({"get": op("list", "list", &[]), "post": op("post", "create", &[])}),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": op("get", "read", &[]),
                "put": op("put", "replace", &[]),
                "patch": op("patch", "patch", &[query("force", "boolean")]),
                "delete": op("delete", "delete", &[]),
            }),
        );
    }
    doc["paths"] = Value::Object(paths);
    doc
}

/// Kubernetes' schema name for a kind: `io.istio.networking.v1.VirtualService`, `io.k8s.api.core.v1.Service`.
fn component(group: &str, version: &str, kind: Kind) -> String {
    format!(
        "{}.{}",
        weft_api::schema::component_prefix(group, version),
        kind.name()
    )
}

fn query(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": kind}, "uniqueItems": true})
}

/// FNV-1a, for the documents' cache-busting hashes.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_advertise_field_validation_and_every_document_is_indexed() {
        let idx = index();
        for (g, v) in group_versions() {
            let entry =
                &idx["paths"][weft_api::schema::group_version_path(g, v)]["serverRelativeURL"];
            assert!(
                entry.as_str().is_some_and(|u| u.contains("?hash=")),
                "{g}/{v}"
            );
        }
        let doc = document("networking.istio.io", "v1");
        let post = &doc["paths"]["/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices"]
            ["post"];
        assert_eq!(post["x-kubernetes-action"], "post");
        assert!(post["parameters"].to_string().contains("fieldValidation"));
        assert_eq!(
            post["x-kubernetes-group-version-kind"]["kind"],
            "VirtualService"
        );
        assert!(answer("/openapi/v3/apis/networking.istio.io/v9").is_none());
        // Kubernetes' core group, with its cluster-scoped Namespace.
        let core = document("", "v1");
        assert!(core["paths"]["/api/v1/namespaces/{namespace}/services"]["post"].is_object());
        assert!(core["paths"]["/api/v1/namespaces/{name}"]["put"].is_object());
        assert!(answer("/openapi/v3/api/v1").is_some());
        assert!(answer("/openapi/v2").is_none());
    }
}
