//! Answers weft gives itself instead of an upstream's: one [`LocalReply`] type that knows,
//! for each reason, the status, the response flag and whether the request may be sent
//! again, and renders itself for HTTP (a short text body) or gRPC (trailers-only, as Envoy
//! sends). Each reply carries the `x-weft-response-flags` header, so a user can tell a mesh
//! failure from an app failure. The request path returns `Result<_, LocalReply>` and
//! answers with `?`; [`super::proxy`] renders the error once.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use weft_model::route::AbortStatus;

use super::body::Body;
use super::headers::RESPONSE_FLAGS;
use crate::flags::ResponseFlags;
use crate::pool::SendError;

/// Why the proxy answers a request itself.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// The request names no authority (HTTP/1.1 without `Host`).
    #[error("missing Host header")]
    MissingHost,
    /// The request target cannot be routed as a path (normalization refused it).
    #[error("{0}")]
    BadPath(&'static str),
    /// The request body could not be read from the client.
    #[error("reading request body: {0}")]
    RequestBody(hyper::Error),
    /// `CONNECT` on a listener that does not tunnel.
    #[error("CONNECT is served only by the outbound listener")]
    ConnectNotServed,
    /// `CONNECT` without `host:port`.
    #[error("CONNECT needs host:port")]
    ConnectTarget,
    /// A plaintext request on a port whose PeerAuthentication is STRICT.
    #[error("plaintext refused: PeerAuthentication is STRICT")]
    StrictPlaintext,
    /// AuthorizationPolicy denied the request.
    #[error("RBAC: access denied")]
    Denied,
    /// An external authorization service (a CUSTOM policy's provider) denied the request,
    /// or could not be asked: its answer goes to the client as it gave it.
    #[error("external authorization denied")]
    ExtAuthzDenied(Box<ExtAuthzDenial>),
    /// The body is longer than an external authorizer's `maxRequestBytes`, without
    /// `allowPartialMessage` (Envoy's buffer limit reply).
    #[error("Payload Too Large")]
    PayloadTooLarge,
    /// RequestAuthentication refused the request's token (Envoy's message as the body).
    #[error("{error}")]
    Jwt {
        /// Why the token was refused.
        error: weft_model::authn::JwtError,
        /// The request's URL, for `WWW-Authenticate`.
        realm: String,
    },
    /// A RateLimit's bucket is empty.
    #[error("local_rate_limited")]
    RateLimited {
        /// Requests the limit allows per window.
        requests: u32,
        /// The window, in seconds.
        window: u64,
        /// Seconds until a token is back.
        reset: u64,
    },
    /// No VirtualService route matched (a known host, or no passthrough possible).
    #[error("no route for {0}")]
    NoRoute(String),
    /// A destination outside the registry under `REGISTRY_ONLY` (Istio's `block_all`
    /// virtual host, a 502).
    #[error("{0} is not in the registry (outboundTrafficPolicy REGISTRY_ONLY)")]
    RegistryOnly(String),
    /// The inbound listener has no local application.
    #[error("no local application configured")]
    NoLocalApp,
    /// The route's destinations have no weight left to pick.
    #[error("no destination")]
    NoDestination,
    /// The route names a cluster the snapshot does not hold.
    #[error("cluster not found: {0}")]
    NoCluster(Arc<str>),
    /// A Gateway API backendRef that does not resolve: its share of requests gets 500.
    #[error("invalid backendRef: {0}")]
    InvalidBackend(Arc<str>),
    /// A gateway route that would forward where the client says.
    #[error(
        "a gateway does not forward to destinations the request names (PASSTHROUGH or resolution NONE)"
    )]
    GatewayPassthrough,
    /// Fault injection aborted the request.
    #[error("fault filter abort")]
    FaultAbort(AbortStatus),
    /// Fault injection reset a tunnel.
    #[error("connection reset by fault injection")]
    FaultReset,
    /// No endpoint of the cluster is available.
    #[error("no healthy upstream for {0}")]
    NoHealthyUpstream(Arc<str>),
    /// A circuit-breaker limit (`maxPendingRequests`, `maxConnections`, `http1MaxPendingRequests`) is full.
    #[error(
        "upstream connect error or disconnect/reset before headers. reset reason: overflow ({0})"
    )]
    Overflow(Arc<str>),
    /// TLS toward the upstream cannot be set up (no workload certificate, bad files).
    #[error("upstream connect error or disconnect/reset before headers. TLS error: {0}")]
    Tls(String),
    /// Connecting or sending to the endpoint failed.
    #[error(
        "upstream connect error or disconnect/reset before headers. reset reason: {} ({endpoint}: {error})",
        reset_reason(.error)
    )]
    Upstream {
        /// The endpoint tried last.
        endpoint: String,
        /// What failed.
        error: SendError,
    },
    /// The route's deadline (or the per-try timeout of the last try) passed.
    #[error("upstream request timeout")]
    Timeout,
}

/// What an external authorization service answered a denied request with.
#[derive(Debug)]
pub struct ExtAuthzDenial {
    /// The status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Its body.
    pub body: bytes::Bytes,
}

fn reset_reason(e: &SendError) -> &'static str {
    match e {
        SendError::Connect(_) | SendError::ConnectTimeout(_) => "connection failure",
        SendError::RefusedStream => "remote refused stream reset",
        SendError::ResetBeforeRequest(_) | SendError::Reset(_) | SendError::Stale(_) => {
            "connection termination"
        }
        SendError::RequestBody(_) => "downstream protocol error",
    }
}

impl Reason {
    /// The HTTP status of the reply.
    pub fn status(&self) -> StatusCode {
        match self {
            Reason::MissingHost
            | Reason::BadPath(_)
            | Reason::RequestBody(_)
            | Reason::Upstream {
                error: SendError::RequestBody(_),
                ..
            }
            | Reason::ConnectTarget => StatusCode::BAD_REQUEST,
            Reason::ConnectNotServed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::StrictPlaintext | Reason::Denied => StatusCode::FORBIDDEN,
            Reason::ExtAuthzDenied(d) => d.status,
            Reason::Jwt { error, .. } => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            Reason::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reason::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::NoRoute(_) => StatusCode::NOT_FOUND,
            Reason::RegistryOnly(_) => StatusCode::BAD_GATEWAY,
            Reason::FaultAbort(AbortStatus::Http(code)) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Reason::FaultAbort(AbortStatus::Grpc(_)) => StatusCode::OK,
            Reason::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::InvalidBackend(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reason::NoLocalApp
            | Reason::NoDestination
            | Reason::NoCluster(_)
            | Reason::GatewayPassthrough
            | Reason::FaultReset
            | Reason::NoHealthyUpstream(_)
            | Reason::Overflow(_)
            | Reason::Tls(_)
            | Reason::Upstream { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response flag Envoy reports for this reason.
    pub fn flag(&self) -> ResponseFlags {
        match self {
            Reason::MissingHost
            | Reason::ConnectNotServed
            | Reason::ConnectTarget
            | Reason::StrictPlaintext
            | Reason::RegistryOnly(_)
            | Reason::PayloadTooLarge
            | Reason::Jwt { .. } => ResponseFlags::NONE,
            Reason::BadPath(_) | Reason::RequestBody(_) => ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            Reason::Denied => ResponseFlags::RBAC_ACCESS_DENIED,
            Reason::ExtAuthzDenied(_) => ResponseFlags::UNAUTHORIZED_EXTERNAL_SERVICE,
            Reason::RateLimited { .. } => ResponseFlags::RATE_LIMITED,
            Reason::NoRoute(_) => ResponseFlags::NO_ROUTE,
            Reason::NoLocalApp
            | Reason::NoDestination
            | Reason::NoCluster(_)
            | Reason::InvalidBackend(_)
            | Reason::GatewayPassthrough => ResponseFlags::NO_CLUSTER,
            Reason::FaultAbort(_) | Reason::FaultReset => ResponseFlags::FAULT_INJECTED,
            Reason::NoHealthyUpstream(_) => ResponseFlags::NO_HEALTHY_UPSTREAM,
            Reason::Overflow(_) => ResponseFlags::UPSTREAM_OVERFLOW,
            Reason::Tls(_) => ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            Reason::Timeout => ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
            Reason::Upstream { error, .. } => match error {
                SendError::Connect(_) | SendError::ConnectTimeout(_) => {
                    ResponseFlags::UPSTREAM_CONNECTION_FAILURE
                }
                SendError::RefusedStream => ResponseFlags::UPSTREAM_REMOTE_RESET,
                SendError::ResetBeforeRequest(_) | SendError::Reset(_) | SendError::Stale(_) => {
                    ResponseFlags::UPSTREAM_CONNECTION_TERMINATION
                }
                SendError::RequestBody(_) => ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
            },
        }
    }

    /// True when no upstream has seen the request, so sending it again (to another endpoint,
    /// or after the cause is fixed) cannot run it twice. A timeout or a reset after the
    /// request left may have reached the app: only the route's retry policy decides those.
    pub fn retry_safe(&self) -> bool {
        match self {
            Reason::Upstream { error, .. } => error.never_reached_upstream(),
            Reason::Timeout => false,
            _ => true,
        }
    }
}

/// A reply the proxy generates: its reason, and the flags collected before it
/// (`DI` when a delay was injected, `URX` when retries ran out).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct LocalReply {
    /// Why.
    pub reason: Reason,
    /// Flags added on the way, besides the reason's own.
    pub also: ResponseFlags,
}

impl From<Reason> for LocalReply {
    fn from(reason: Reason) -> Self {
        LocalReply {
            reason,
            also: ResponseFlags::NONE,
        }
    }
}

impl LocalReply {
    /// The same reply with `flags` reported too.
    pub fn with_flags(mut self, flags: ResponseFlags) -> Self {
        self.also |= flags;
        self
    }

    /// Every flag the reply reports.
    pub fn flags(&self) -> ResponseFlags {
        self.reason.flag() | self.also
    }

    /// The response, as gRPC trailers-only when the request was gRPC.
    pub fn render(&self, grpc: bool) -> Response<Body> {
        let message = self.reason.to_string();
        let mut resp = match &self.reason {
            Reason::ExtAuthzDenied(d) if !grpc => {
                let mut r = Response::new(Body::from_bytes(d.body.clone()));
                *r.status_mut() = d.status;
                r
            }
            Reason::FaultAbort(AbortStatus::Grpc(code)) => grpc_reply(*code, &message),
            _ if grpc => grpc_reply(grpc_status_for(self.reason.status()), &message),
            _ => reply(self.reason.status(), &message),
        };
        let flags = self.flags();
        if !flags.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&flags.to_string()) {
                resp.headers_mut().insert(RESPONSE_FLAGS, v);
            }
        }
        let h = resp.headers_mut();
        match self.reason {
            // The authorization service's headers for the client (headersToDownstreamOnDeny).
            Reason::ExtAuthzDenied(ref d) => {
                for (name, value) in &d.headers {
                    h.append(name.clone(), value.clone());
                }
            }
            // The connection was accepted before STRICT applied: it gets no more requests;
            // after a body that broke off, nothing more on it is read.
            Reason::StrictPlaintext
            | Reason::RequestBody(_)
            | Reason::Upstream {
                error: SendError::RequestBody(_),
                ..
            }
            | Reason::MissingHost => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // As Envoy's jwt_authn filter names the failure for the client.
            Reason::Jwt { ref realm, .. } => {
                let value = format!("Bearer realm=\"{realm}\", error=\"invalid_token\"");
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            // As Envoy's local rate limit filter tells the client when to come back.
            Reason::RateLimited {
                requests,
                window,
                reset,
            } => {
                let mut set = |name: &'static str, value: String| {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        h.insert(name, v);
                    }
                };
                set(
                    "x-ratelimit-limit",
                    format!("{requests}, {requests};w={window}"),
                );
                set("x-ratelimit-remaining", "0".into());
                set("x-ratelimit-reset", reset.to_string());
                set("retry-after", reset.to_string());
            }
            _ => {}
        }
        resp
    }
}

/// A text reply with `status`.
fn reply(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// A gRPC trailers-only reply with `code`.
fn grpc_reply(code: u32, message: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    r
}

/// Envoy's mapping of HTTP status to gRPC status for local replies.
pub fn grpc_status_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_knows_its_status_flag_and_retry_safety() {
        let refused = Reason::Upstream {
            endpoint: "10.0.0.1:80".into(),
            error: SendError::Connect("refused".into()),
        };
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.flag(), ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        assert!(refused.retry_safe());
        assert_eq!(
            refused.to_string(),
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure (10.0.0.1:80: connection failure: refused)"
        );
        let reset = Reason::Upstream {
            endpoint: "e".into(),
            error: SendError::Reset("eof".into()),
        };
        assert_eq!(reset.flag(), ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        assert!(!reset.retry_safe(), "the app may have seen it");
        assert!(!Reason::Timeout.retry_safe());
        assert_eq!(Reason::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            Reason::NoRoute("a/b".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(Reason::Denied.flag(), ResponseFlags::RBAC_ACCESS_DENIED);
    }

    #[test]
    fn renders_for_http_and_grpc_with_every_flag() {
        let r = LocalReply::from(Reason::FaultAbort(AbortStatus::Http(500)))
            .with_flags(ResponseFlags::DELAY_INJECTED);
        let http = r.render(false);
        assert_eq!(http.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let flags = http.headers()[RESPONSE_FLAGS]
            .to_str()
            .expect("ASCII")
            .to_string();
        assert!(flags.contains("FI") && flags.contains("DI"), "{flags}");
        let grpc = LocalReply::from(Reason::NoHealthyUpstream("c".into())).render(true);
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "14");
        assert_eq!(grpc.headers()["grpc-message"], "no healthy upstream for c");
        let aborted = LocalReply::from(Reason::FaultAbort(AbortStatus::Grpc(8))).render(false);
        assert_eq!(
            aborted.headers()["grpc-status"],
            "8",
            "a gRPC abort is gRPC"
        );
        let strict = LocalReply::from(Reason::StrictPlaintext).render(false);
        assert_eq!(strict.status(), StatusCode::FORBIDDEN);
        assert_eq!(strict.headers()[header::CONNECTION], "close");
    }
}
