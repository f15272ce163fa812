//! CORS, as Envoy's CORS filter applies a VirtualService `corsPolicy`: preflights from
//! allowed origins are answered by the proxy; actual requests get the allow headers on
//! their response.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use weft_model::route::Cors;

use super::body::Body;

/// What the filter decided before forwarding.
pub enum Preflight {
    /// Answer now.
    Answer(Response<Body>),
    /// Forward; add CORS headers to the response when `Some(origin)`.
    Forward(Option<HeaderValue>),
}

/// Handles a request under `cors`.
pub fn on_request(cors: &Cors, method: &Method, headers: &HeaderMap) -> Preflight {
    let Some(origin) = headers.get(header::ORIGIN).cloned() else {
        return Preflight::Forward(None);
    };
    let allowed = origin.to_str().is_ok_and(|o| cors.allows(o));
    let preflight =
        method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !preflight {
        return Preflight::Forward(allowed.then_some(origin));
    }
    if !allowed {
        if cors.forward_unmatched_preflights {
            return Preflight::Forward(None);
        }
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::OK;
        return Preflight::Answer(r);
    }
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    let mut set = |name: header::HeaderName, value: &str| {
        if let (false, Ok(v)) = (value.is_empty(), HeaderValue::from_str(value)) {
            h.insert(name, v);
        }
    };
    set(header::ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods);
    set(header::ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers);
    set(header::ACCESS_CONTROL_EXPOSE_HEADERS, &cors.expose_headers);
    if let Some(age) = cors.max_age_secs {
        set(header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    if cors.allow_credentials {
        set(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    Preflight::Answer(r)
}

/// Adds the allow headers to the response of an actual request from an allowed origin.
pub fn on_response(cors: &Cors, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let (false, Ok(v)) = (
        cors.expose_headers.is_empty(),
        HeaderValue::from_str(&cors.expose_headers),
    ) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}
