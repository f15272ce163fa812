//! Answers of the API: JSON documents and Kubernetes `Status` failures, worded as the
//! Kubernetes API server words them so kubectl prints its usual lines
//! (`VirtualService.networking.istio.io "x" is invalid: spec.http[0]...: Invalid value: ...`).

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use weft_api::{Diagnostic, Kind};

use super::ApiBody;

/// `value` as JSON with `code`.
pub fn json_response<T: serde::Serialize>(code: StatusCode, value: &T) -> Response<ApiBody> {
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
pub fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<ApiBody> {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(code, &body)
}

/// `Kind.group` as Kubernetes names a resource type in messages.
pub fn qualified(kind: Kind) -> String {
    kind.qualify(kind.name())
}

/// `404 NotFound` for `name` of `kind`.
pub fn not_found(kind: Kind, name: &str) -> Response<ApiBody> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", kind.qualify(kind.plural())),
        Some(json!({"name": name, "group": kind.group(), "kind": kind.plural()})),
    )
}

/// `422 Invalid`: every error, each as a cause with its field, in the API server's words.
pub fn invalid(kind: Kind, name: &str, errors: &[&Diagnostic]) -> Response<ApiBody> {
    let causes: Vec<Value> = errors
        .iter()
        .map(|d| {
            json!({
                "reason": "FieldValueInvalid",
                "field": d.field.clone().unwrap_or_default(),
                "message": format!("Invalid value: {}", d.message),
            })
        })
        .collect();
    let each: Vec<String> = errors
        .iter()
        .map(|d| match &d.field {
            Some(field) => format!("{field}: Invalid value: {}", d.message),
            None => d.message.clone(),
        })
        .collect();
    let listed = match each.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!("{} \"{name}\" is invalid: {listed}", qualified(kind)),
        Some(json!({"name": name, "group": kind.group(), "kind": kind.name(), "causes": causes})),
    )
}

/// `400 BadRequest` with `message`.
pub fn bad_request(message: &str) -> Response<ApiBody> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}
