//! The control plane's API: a Kubernetes API for Istio's kinds, so kubectl, client
//! libraries and kubectl habits carry over, plus weft's own endpoints (the CA, proxy
//! status, metrics). One module per concern:
//!
//! - [`discovery`]: `/version`, `/api`, `/apis`, group and group-version resource lists,
//!   the core namespaces and (empty) events;
//! - [`openapi`]: the OpenAPI v3 documents (`kubectl explain`, server-side validation);
//! - [`path`]: which resource a path names, and the query parameters;
//! - [`resources`]: list, get, watch ([`watch`]), create, replace, merge patch and
//!   server-side apply ([`apply`]), delete, with `dryRun` and `fieldValidation`;
//! - [`auth`]: the bearer token writes need;
//! - [`strategic`]: strategic merge patch for Kubernetes' own kinds;
//! - [`table`]: `kubectl get`'s tables with Istio's columns; [`selector`]: label and
//!   field selectors; [`reply`]: JSON answers and `Status` failures.

pub mod apply;
pub mod auth;
mod discovery;
pub mod gateway_status;
mod openapi;
mod path;
mod protobuf;
mod reply;
mod resources;
mod selector;
pub mod strategic;
mod table;
mod watch;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;

use reply::{json_response, status};

use crate::store::Store;

/// Response body: a whole document or a stream of watch events.
pub type ApiBody = UnsyncBoxBody<Bytes, Infallible>;

/// `GET /ca/api`: the CA of the API's HTTPS (PEM), for kubeconfigs of a control plane
/// started elsewhere (`weft up` on a running one).
pub fn api_ca(pem: &str) -> Response<ApiBody> {
    json_response(StatusCode::OK, &json!({ "ca": pem }))
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
    let reading = req.method() == Method::GET
        && !crate::query::params(req.uri().query())
            .iter()
            .any(|(k, v)| k == "watch" && v != "false");
    if let Some(answer) =
        discovery::answer(&path, reading, &store).or_else(|| openapi::answer(&path))
    {
        return answer;
    }
    let Some(target) = path::parse(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({path}); resources are at /apis/{{group}}/{{version}}/namespaces/{{ns}}/{{plural}} (Kubernetes' core kinds at /api/v1/...)"
            ),
            None,
        );
    };
    let query = match path::Query::parse(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return reply::bad_request(&e),
    };
    resources::serve(&store, &proxies, target, query, req).await
}
