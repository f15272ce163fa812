//! RequestAuthentication on the server side (inbound, gateways), before AuthorizationPolicy
//! as Envoy's `jwt_authn` filter runs before RBAC: a client's copies of the output headers
//! are removed, the token is verified ([`weft_model::authn`]), a refused token is answered
//! `401` (`403` for its audience) with Envoy's message, and a verified one gets its output
//! headers and, unless `forwardOriginalToken`, loses its header.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue, Request};
use hyper::body::Incoming;
use weft_model::authn::{KeySource, Outcome, RequestAuth, TokenSource};

use super::local_reply::{LocalReply, Reason};
use crate::jwks::JwksCache;
use crate::snapshot::Snapshot;

/// What the token verification reads of a request.
struct Tokens<'a>(&'a Request<Incoming>);

impl TokenSource for Tokens<'_> {
    fn header(&self, name: &str) -> Option<String> {
        let mut values = self
            .0
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let first = values.next()?.to_string();
        // HTTP/2 clients may send each cookie in its own header.
        if name == "cookie" {
            return Some(values.fold(first, |all, v| format!("{all}; {v}")));
        }
        Some(first)
    }

    fn query(&self) -> Option<&str> {
        self.0.uri().query()
    }
}

/// Authenticates the request's end-user token: `Ok(Some)` when one verified, `Ok(None)`
/// when no rule applies or the request carries none.
pub async fn check(
    snapshot: &Snapshot,
    jwks: &Arc<JwksCache>,
    req: &mut Request<Incoming>,
) -> Result<Option<RequestAuth>, LocalReply> {
    if snapshot.mesh.authn.is_empty() {
        return Ok(None);
    }
    // Boxed: verifying (a JWKS fetch among it) only happens under RequestAuthentication,
    // and inline its state would be moved with every request's future.
    Box::pin(verify(snapshot, jwks, req)).await
}

async fn verify(
    snapshot: &Snapshot,
    jwks: &Arc<JwksCache>,
    req: &mut Request<Incoming>,
) -> Result<Option<RequestAuth>, LocalReply> {
    let authn = &snapshot.mesh.authn;
    // Only the proxy may write these: a client's own copy would pass for a verified claim.
    for name in authn.output_headers() {
        req.headers_mut().remove(name);
    }
    let found = authn.find_tokens(&Tokens(req));
    if found.is_empty() {
        return Ok(None);
    }
    // Keys not fetched yet are waited for, for the rules that read a token here only.
    for p in &authn.providers {
        let KeySource::Remote { uri, timeout } = &p.keys else {
            continue;
        };
        if found.iter().any(|f| p.locations.contains(&f.location)) && jwks.get(uri).is_none() {
            jwks.ready(uri, *timeout).await;
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keys = |uri: &str| jwks.get(uri);
    match authn.authenticate(&Tokens(req), &keys, now) {
        Outcome::Unauthenticated => Ok(None),
        Outcome::Refused { error, location } => {
            tracing::debug!(%error, %location, path = %req.uri().path(), "JWT refused");
            // Envoy's realm is the request's original URL.
            let host = super::headers::authority_of(req).unwrap_or_default();
            let scheme = req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("http");
            Err(Reason::Jwt {
                error,
                realm: format!("{scheme}://{host}{}", req.uri().path()),
            }
            .into())
        }
        Outcome::Authenticated(ok) => {
            let headers = req.headers_mut();
            for name in &ok.remove_headers {
                headers.remove(name.as_str());
            }
            for (name, value) in &ok.set_headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    headers.insert(name, value);
                }
            }
            Ok(Some(ok.auth))
        }
    }
}
