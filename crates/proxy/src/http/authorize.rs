//! The request path, normalized once for everything after it, and the
//! AuthorizationPolicy decision on the server side (inbound, gateways).

use std::net::IpAddr;

use http::{Request, StatusCode, Uri};
use hyper::body::Incoming;
use weft_model::authz::path::{BadPath, Normalization, normalize};
use weft_model::authz::{AuthzRequest, HttpAttributes};

use super::body::Body;
use super::local_reply;
use crate::flags::ResponseFlags;
use crate::snapshot::Snapshot;

/// Rewrites the request's path to its normalized form (the query is kept); a path that
/// cannot be normalized gets the `400` answer returned.
pub fn normalize_path(
    req: &mut Request<Incoming>,
    how: Normalization,
    grpc: bool,
) -> Option<http::Response<Body>> {
    let uri = req.uri();
    let path = uri.path();
    if path == "*" {
        return None;
    }
    if path.is_empty() {
        // Authority-form is for CONNECT only; a request must name a path.
        return Some(local_reply::reply(
            StatusCode::BAD_REQUEST,
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            "the request target is not a path",
            grpc,
        ));
    }
    let normalized = match normalize(path, how) {
        Ok(p) => p,
        Err(BadPath::Nul) => {
            return Some(local_reply::reply(
                StatusCode::BAD_REQUEST,
                ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
                "the request path contains a NUL byte",
                grpc,
            ));
        }
        Err(BadPath::NotAbsolute) => {
            return Some(local_reply::reply(
                StatusCode::BAD_REQUEST,
                ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
                "the request path does not start with /",
                grpc,
            ));
        }
    };
    if normalized == path {
        return None;
    }
    let mut parts = uri.clone().into_parts();
    let with_query = match uri.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    parts.path_and_query = with_query.parse().ok();
    match Uri::from_parts(parts) {
        Ok(u) => {
            *req.uri_mut() = u;
            None
        }
        Err(_) => Some(local_reply::reply(
            StatusCode::BAD_REQUEST,
            ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            "the normalized request path is not a valid URI",
            grpc,
        )),
    }
}

/// Istio's `remote.ip`: with `trusted` proxies in front, the `X-Forwarded-For` entry that
/// many hops from the right (what the nearest trusted proxy saw); with none, the peer. A
/// client's own entries are never believed.
fn remote_ip(req: &Request<Incoming>, peer: IpAddr, trusted: usize) -> IpAddr {
    if trusted == 0 {
        return peer;
    }
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(trusted)
        .and_then(|i| entries.get(i))
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(peer)
}

/// Who is asking, and where to.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The connection's source address.
    pub peer: IpAddr,
    /// The identity proven by mutual TLS, if any.
    pub principal: Option<&'a str>,
    /// The address the client connected to, when known.
    pub destination: Option<std::net::SocketAddr>,
    /// The port the request was sent to.
    pub port: u16,
}

/// The AuthorizationPolicy decision for an HTTP request; `Some(403)` when denied.
pub fn check(
    snapshot: &Snapshot,
    req: &Request<Incoming>,
    caller: Caller<'_>,
    grpc: bool,
    trusted_proxies: usize,
) -> Option<http::Response<Body>> {
    let Caller {
        peer,
        principal,
        destination,
        port,
    } = caller;
    let authz = &snapshot.mesh.authz;
    if authz.is_empty() {
        return None;
    }
    let authority = super::headers::authority_of(req).unwrap_or_default();
    let host = weft_model::host::authority_host(&authority).to_ascii_lowercase();
    let headers = super::headers::HeaderView(req.headers());
    let request = AuthzRequest {
        principal,
        source_ip: peer,
        remote_ip: remote_ip(req, peer, trusted_proxies),
        destination_ip: destination.map(|d| d.ip()),
        destination_port: port,
        sni: None,
        http: Some(HttpAttributes {
            host: &host,
            method: req.method().as_str(),
            path: req.uri().path(),
            headers: &headers,
        }),
    };
    let verdict = authz.decide(&request);
    for audited in &verdict.audited {
        tracing::info!(policy = %audited, path = %req.uri().path(), "AUDIT policy matched");
    }
    if verdict.allowed {
        return None;
    }
    tracing::debug!(policy = ?verdict.policy, path = %req.uri().path(), "denied by AuthorizationPolicy");
    Some(local_reply::reply(
        StatusCode::FORBIDDEN,
        ResponseFlags::RBAC_ACCESS_DENIED,
        "RBAC: access denied",
        grpc,
    ))
}

/// The decision for an opaque TCP connection (HTTP-only rules as Istio treats them), from
/// a caller proven by mesh mTLS to be `principal` when it is `Some`.
pub fn check_tcp(
    snapshot: &Snapshot,
    peer: IpAddr,
    destination: Option<std::net::SocketAddr>,
    port: u16,
    sni: Option<&str>,
    principal: Option<&str>,
) -> bool {
    let authz = &snapshot.mesh.authz;
    if authz.is_empty() {
        return true;
    }
    authz
        .decide(&AuthzRequest {
            principal,
            source_ip: peer,
            remote_ip: peer,
            destination_ip: destination.map(|d| d.ip()),
            destination_port: port,
            sni,
            http: None,
        })
        .allowed
}
