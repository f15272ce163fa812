//! Routes answered without an upstream: `directResponse` and `redirect`.

use http::{Response, StatusCode};
use weft_model::matcher::RequestMatch;
use weft_model::route::{DirectResponse, Redirect, RedirectPort};

use super::body::Body;
use super::headers::{self, port_of};

/// A route's `directResponse`.
pub fn response(d: &DirectResponse) -> Response<Body> {
    let mut resp = Response::new(Body::from_bytes(d.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(d.status).unwrap_or(StatusCode::OK);
    headers::apply(resp.headers_mut(), &d.headers);
    resp
}

/// A route's `redirect`: `Location` built from the request's authority, path and port
/// where the rule leaves them; `matched` is the match entry that selected the route.
pub fn redirect(
    r: &Redirect,
    authority: &str,
    path: &str,
    matched: Option<&RequestMatch>,
    request_port: u16,
) -> Response<Body> {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let host = r
        .authority
        .clone()
        .unwrap_or_else(|| weft_model::host::authority_host(authority).to_string());
    let host = weft_model::host::authority_host(&host).to_string();
    let port = match r.port {
        Some(RedirectPort::Fixed(p)) => Some(p),
        Some(RedirectPort::FromRequestPort) => Some(request_port),
        Some(RedirectPort::UnlessHttpDefault) => port_of(authority).filter(|p| *p != 80),
        Some(RedirectPort::FromProtocolDefault) => None,
        None => port_of(authority).filter(|_| r.authority.is_none()),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host_port = match port.filter(|p| *p != default_port) {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let new_path = r.location_path(path, matched);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = http::HeaderValue::from_str(&format!("{scheme}://{host_port}{new_path}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    headers::apply(resp.headers_mut(), &r.headers);
    resp
}
