//! The request path, normalized once for everything after it, and the
//! AuthorizationPolicy decision on the server side (inbound, gateways).

use std::net::IpAddr;

use http::{Request, Uri};
use hyper::body::Incoming;
use weft_model::authz::path::{BadPath, Normalization, normalize};
use weft_model::authz::{AuthzRequest, HttpAttributes};

use super::local_reply::{LocalReply, Reason};
use crate::snapshot::Snapshot;

/// Rewrites the request's path to its normalized form (the query is kept); a path that
/// cannot be normalized is refused with `400`.
pub fn normalize_path(req: &mut Request<Incoming>, how: Normalization) -> Result<(), LocalReply> {
    let uri = req.uri();
    let path = uri.path();
    if path == "*" {
        return Ok(());
    }
    if path.is_empty() {
        // Authority-form is for CONNECT only; a request must name a path.
        return Err(Reason::BadPath("the request target is not a path").into());
    }
    let normalized = normalize(path, how).map_err(|e| {
        Reason::BadPath(match e {
            BadPath::Nul => "the request path contains a NUL byte",
            BadPath::NotAbsolute => "the request path does not start with /",
        })
    })?;
    if normalized == path {
        return Ok(());
    }
    let mut parts = uri.clone().into_parts();
    let with_query = match uri.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    parts.path_and_query = with_query.parse().ok();
    *req.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| Reason::BadPath("the normalized request path is not a valid URI"))?;
    Ok(())
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
    /// The end-user token RequestAuthentication verified, if any.
    pub auth: Option<&'a weft_model::authn::RequestAuth>,
}

/// What the decision sees of `req` from `caller`; the caller makes `host` and `headers`
/// from the request so they outlive the borrow.
fn http_request<'a>(
    req: &'a Request<Incoming>,
    caller: Caller<'a>,
    trusted_proxies: usize,
    host: &'a str,
    headers: &'a super::headers::HeaderView<'a>,
) -> AuthzRequest<'a> {
    AuthzRequest {
        principal: caller.principal,
        source_ip: caller.peer,
        remote_ip: remote_ip(req, caller.peer, trusted_proxies),
        destination_ip: caller.destination.map(|d| d.ip()),
        destination_port: caller.port,
        sni: None,
        http: Some(HttpAttributes {
            host,
            method: req.method().as_str(),
            path: req.uri().path(),
            headers,
            auth: caller.auth,
        }),
    }
}

/// The AuthorizationPolicy decision for an HTTP request: `403 RBAC` when denied.
pub fn check(
    snapshot: &Snapshot,
    req: &Request<Incoming>,
    caller: Caller<'_>,
    trusted_proxies: usize,
) -> Result<(), LocalReply> {
    let authz = &snapshot.mesh.authz;
    if authz.is_empty() {
        return Ok(());
    }
    let authority = super::headers::authority_of(req).unwrap_or_default();
    let host = weft_model::host::authority_host(&authority).to_ascii_lowercase();
    let headers = super::headers::HeaderView(req.headers());
    let request = http_request(req, caller, trusted_proxies, &host, &headers);
    let verdict = authz.decide(&request);
    for audited in &verdict.audited {
        tracing::info!(policy = %audited, path = %req.uri().path(), "AUDIT policy matched");
    }
    if verdict.allowed {
        return Ok(());
    }
    tracing::debug!(policy = ?verdict.policy, path = %req.uri().path(), "denied by AuthorizationPolicy");
    Err(Reason::Denied.into())
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
    let request = AuthzRequest {
        principal,
        source_ip: peer,
        remote_ip: peer,
        destination_ip: destination.map(|d| d.ip()),
        destination_port: port,
        sni,
        http: None,
    };
    // weft asks external authorizers about HTTP requests only: a TCP connection a CUSTOM
    // policy matches is refused rather than let through unasked.
    if let Some(provider) = authz.custom_provider(&request) {
        tracing::warn!(
            ?provider,
            "a CUSTOM policy matches a TCP connection, which weft does not send to an external authorizer: refused"
        );
        return false;
    }
    authz.decide(&request).allowed
}

/// Headers an external authorizer's allowing answer adds to the response to the client.
pub type ResponseHeaders = Vec<(http::HeaderName, http::HeaderValue)>;

/// The CUSTOM step, before DENY and ALLOW as in Istio: when a CUSTOM policy matches, its
/// provider decides; an allow may set and remove request headers (and name headers for
/// the response, returned), a denial is answered as the provider gave it. A provider no
/// mesh config defines, or CUSTOM policies naming several, deny the request (Istio fails
/// closed the same way). With `includeRequestBodyInCheck` the body is read first, up to
/// `maxRequestBytes` (a longer one is refused with 413 unless `allowPartialMessage`), and
/// goes on to the upstream whole.
pub async fn custom(
    snapshot: &Snapshot,
    providers: &super::ext_authz::Providers,
    req: &mut Request<Incoming>,
    caller: Caller<'_>,
    trusted_proxies: usize,
) -> Result<ResponseHeaders, LocalReply> {
    if snapshot.mesh.authz.custom.is_empty() {
        return Ok(Vec::new());
    }
    // Boxed: the provider's call only happens under CUSTOM policies, and inline its state
    // would be moved with every request's future.
    Box::pin(ask_provider(
        snapshot,
        providers,
        req,
        caller,
        trusted_proxies,
    ))
    .await
}

async fn ask_provider(
    snapshot: &Snapshot,
    providers: &super::ext_authz::Providers,
    req: &mut Request<Incoming>,
    caller: Caller<'_>,
    trusted_proxies: usize,
) -> Result<ResponseHeaders, LocalReply> {
    let authz = &snapshot.mesh.authz;
    let authority = super::headers::authority_of(req).unwrap_or_default();
    let host = weft_model::host::authority_host(&authority).to_ascii_lowercase();
    let chosen = {
        let headers = super::headers::HeaderView(req.headers());
        let request = http_request(req, caller, trusted_proxies, &host, &headers);
        authz
            .custom_provider(&request)
            .map(|r| r.map(str::to_string))
    };
    let name = match chosen {
        None => return Ok(Vec::new()),
        Some(Err(conflict)) => {
            tracing::warn!("{conflict}: denied");
            return Err(Reason::Denied.into());
        }
        Some(Ok(name)) => name,
    };
    let Some(provider) = providers.get(&name) else {
        tracing::warn!(provider = %name, "a CUSTOM policy names an extension provider the mesh config does not define: denied");
        return Err(Reason::Denied.into());
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let principal = caller.principal.map(|p| format!("spiffe://{p}"));
    let body = match &provider.provider.body {
        Some(limits) => Some(body_for_check(req, limits).await?),
        None => None,
    };
    let verdict = super::ext_authz::check(
        &provider,
        super::ext_authz::CheckRequest {
            method: req.method(),
            path: &path,
            host: &authority,
            scheme: req.uri().scheme_str().unwrap_or("http"),
            headers: req.headers(),
            body,
            source: (
                std::net::SocketAddr::new(caller.peer, 0),
                principal.as_deref().unwrap_or_default(),
            ),
            destination: caller
                .destination
                .unwrap_or_else(|| std::net::SocketAddr::new(caller.peer, caller.port)),
        },
    )
    .await;
    match verdict {
        super::ext_authz::Verdict::Allow {
            upstream,
            remove,
            downstream,
        } => {
            let h = req.headers_mut();
            for name in remove {
                h.remove(name);
            }
            for (name, value) in upstream {
                h.insert(name, value);
            }
            Ok(downstream)
        }
        super::ext_authz::Verdict::Deny {
            status,
            headers,
            body,
        } => Err(
            Reason::ExtAuthzDenied(Box::new(super::local_reply::ExtAuthzDenial {
                status,
                headers,
                body,
            }))
            .into(),
        ),
    }
}

/// The body an external authorizer's check carries: at most `maxRequestBytes` of it,
/// read ahead of forwarding (the request keeps it), and whether it was cut.
async fn body_for_check(
    req: &mut Request<Incoming>,
    limits: &weft_model::ext_authz::BodyInCheck,
) -> Result<super::ext_authz::CheckBody, LocalReply> {
    let max = limits.max_request_bytes as usize;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if !limits.allow_partial_message && declared.is_some_and(|n| n > max as u64) {
        return Err(Reason::PayloadTooLarge.into());
    }
    // One byte past the limit tells a body that is exactly `max` long from a longer one.
    let (read, whole) = super::body::read_ahead(req, max.saturating_add(1))
        .await
        .map_err(Reason::RequestBody)?;
    let longer = !whole || read.len() > max;
    if longer && !limits.allow_partial_message {
        return Err(Reason::PayloadTooLarge.into());
    }
    Ok(super::ext_authz::CheckBody {
        bytes: read.slice(..read.len().min(max)),
        partial: longer,
    })
}
