//! Asking an external authorization service (Istio's CUSTOM action) about one request,
//! as Envoy's ext_authz filter asks it: over HTTP (the request's method and
//! `<pathPrefix><path>`, its Host, Method, Path and Content-Length headers and those the
//! provider includes, and the body when it asks for it; 200 allows, anything else is the
//! denial the client gets) or over gRPC (`envoy.service.auth.v3.Authorization/Check`;
//! status OK allows with the headers the answer sets, removes and adds to the response,
//! any other is a denial). An unreachable service, a timeout
//! or a malformed answer is an error: the request goes through with `failOpen`, else it is
//! answered `statusOnError`.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use weft_model::ext_authz::{ExtAuthzKind, ExtAuthzProvider, HttpProvider, any_matches};
use weft_proto::ext_authz as pb;

/// Most bytes of an HTTP authorization service's denial body passed to the client (and
/// read of an allowing answer's, which is dropped).
const MAX_DENIAL_BODY: usize = 64 * 1024;

/// What the check is about.
#[derive(Debug, Clone)]
pub struct CheckRequest<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// Path and query.
    pub path: &'a str,
    /// Host (`:authority`).
    pub host: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The body (as much as the provider asked for), when it asked for it.
    pub body: Option<CheckBody>,
    /// The caller's address and mTLS principal (empty without).
    pub source: (SocketAddr, &'a str),
    /// The address called.
    pub destination: SocketAddr,
}

/// The request body as a check carries it.
#[derive(Debug, Clone)]
pub struct CheckBody {
    /// At most the provider's `maxRequestBytes`.
    pub bytes: Bytes,
    /// The body is longer (`allowPartialMessage`): Envoy's `x-envoy-auth-partial-body`.
    pub partial: bool,
}

/// The header telling the service whether the body it got is cut (Envoy's name).
const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

/// What the service decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Let the request through, changed so.
    Allow {
        /// Headers to set on the request sent upstream.
        upstream: Vec<(HeaderName, HeaderValue)>,
        /// Headers to remove from it.
        remove: Vec<HeaderName>,
        /// Headers to add to the response to the client.
        downstream: Vec<(HeaderName, HeaderValue)>,
    },
    /// Answer the client this instead.
    Deny {
        /// The status.
        status: StatusCode,
        /// Headers of the answer.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// Its body.
        body: Bytes,
    },
}

impl Verdict {
    fn allow() -> Verdict {
        Verdict::Allow {
            upstream: Vec::new(),
            remove: Vec::new(),
            downstream: Vec::new(),
        }
    }
}

/// Most idle HTTP/1.1 connections kept to one HTTP provider.
const MAX_IDLE_HTTP: usize = 32;

type HttpSender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A provider, with the connections its checks share: the gRPC channel (made on first
/// use; it reconnects by itself) or idle HTTP/1.1 connections, so a check costs a request
/// on an open connection, not a new one.
#[derive(Debug)]
pub struct Authorizer {
    /// The provider.
    pub provider: ExtAuthzProvider,
    grpc: std::sync::OnceLock<tonic::transport::Channel>,
    /// Idle HTTP connections; the lock is this provider's, held only to push or pop.
    idle: std::sync::Mutex<Vec<HttpSender>>,
}

impl Authorizer {
    /// An authorizer asking `provider`.
    pub fn new(provider: ExtAuthzProvider) -> Authorizer {
        Authorizer {
            provider,
            grpc: std::sync::OnceLock::new(),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// An idle HTTP connection still open, else a new one.
    async fn http_sender(&self, target: &str) -> Result<HttpSender, String> {
        loop {
            let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match popped {
                Some(s) if s.is_ready() => return Ok(s),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(target)
            .await
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {target}: {e}"))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Keeps `sender` for the next check when it can take one.
    fn http_done(&self, sender: HttpSender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_HTTP {
            idle.push(sender);
        }
    }

    fn channel(&self) -> Result<tonic::transport::Channel, String> {
        if let Some(c) = self.grpc.get() {
            return Ok(c.clone());
        }
        let target = format!("http://{}:{}", self.provider.service, self.provider.port);
        let channel = tonic::transport::Endpoint::from_shared(target.clone())
            .map_err(|e| format!("{target}: {e}"))?
            .connect_lazy();
        Ok(self.grpc.get_or_init(|| channel).clone())
    }
}

/// Asks `authorizer`'s provider about `req`.
pub async fn check(authorizer: &Authorizer, req: CheckRequest<'_>) -> Verdict {
    let provider = &authorizer.provider;
    let asked = async {
        match &provider.kind {
            ExtAuthzKind::Http(http) => check_http(authorizer, http, &req).await,
            ExtAuthzKind::Grpc => check_grpc(authorizer, &req).await,
        }
    };
    let outcome = match tokio::time::timeout(provider.timeout, asked).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {:?}", provider.timeout)),
    };
    match outcome {
        Ok(verdict) => verdict,
        Err(why) => {
            tracing::warn!(provider = %provider.name, error = %why, fail_open = provider.fail_open, "external authorization failed");
            if provider.fail_open {
                Verdict::allow()
            } else {
                Verdict::Deny {
                    status: StatusCode::from_u16(provider.status_on_error)
                        .unwrap_or(StatusCode::FORBIDDEN),
                    headers: Vec::new(),
                    body: Bytes::new(),
                }
            }
        }
    }
}

fn copied(headers: &HeaderMap, wanted: impl Fn(&str) -> bool) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(n, _)| wanted(n.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

async fn check_http(
    authorizer: &Authorizer,
    http: &HttpProvider,
    req: &CheckRequest<'_>,
) -> Result<Verdict, String> {
    let provider = &authorizer.provider;
    let target = format!("{}:{}", provider.service, provider.port);
    let mut sender = authorizer.http_sender(&target).await?;
    let body = req
        .body
        .as_ref()
        .map(|b| b.bytes.clone())
        .unwrap_or_default();
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(format!("{}{}", http.path_prefix, req.path))
        .header(http::header::HOST, req.host)
        .header(http::header::CONTENT_LENGTH, body.len());
    for (name, value) in req.headers {
        let n = name.as_str();
        let always = n == "content-length" || n == "host";
        if !always && any_matches(&http.include_request_headers, n) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in &http.include_additional_headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(b) = &req.body {
        builder = builder.header(PARTIAL_BODY, if b.partial { "true" } else { "false" });
    }
    let check = builder
        .body(Full::new(body))
        .map_err(|e| format!("building the check request: {e}"))?;
    let answer = sender
        .send_request(check)
        .await
        .map_err(|e| format!("asking {target}: {e}"))?;
    let status = answer.status();
    let headers = answer.headers().clone();
    if status == StatusCode::OK {
        // The connection is free again once the answer's body is read.
        let rest = http_body_util::Limited::new(answer.into_body(), MAX_DENIAL_BODY);
        if rest.collect().await.is_ok() {
            authorizer.http_done(sender);
        }
        return Ok(Verdict::Allow {
            upstream: copied(&headers, |n| {
                any_matches(&http.headers_to_upstream_on_allow, n)
            }),
            remove: Vec::new(),
            downstream: copied(&headers, |n| {
                any_matches(&http.headers_to_downstream_on_allow, n)
            }),
        });
    }
    let body = match http_body_util::Limited::new(answer.into_body(), MAX_DENIAL_BODY)
        .collect()
        .await
    {
        Ok(b) => {
            authorizer.http_done(sender);
            b.to_bytes()
        }
        Err(_) => Bytes::new(),
    };
    Ok(Verdict::Deny {
        status,
        headers: copied(&headers, |n| {
            any_matches(&http.headers_to_downstream_on_deny, n)
        }),
        body,
    })
}

fn address(a: SocketAddr) -> pb::Address {
    pb::Address {
        socket_address: Some(pb::SocketAddress {
            protocol: 0,
            address: a.ip().to_string(),
            port_value: u32::from(a.port()),
        }),
    }
}

fn options(list: &[pb::HeaderValueOption]) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    list.iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| {
            let name = HeaderName::try_from(h.key.as_str())
                .map_err(|_| format!("the answer names an invalid header {:?}", h.key))?;
            let value = HeaderValue::try_from(h.value.as_str())
                .map_err(|_| format!("the answer's header {} has an invalid value", h.key))?;
            Ok((name, value))
        })
        .collect()
}

async fn check_grpc(authorizer: &Authorizer, req: &CheckRequest<'_>) -> Result<Verdict, String> {
    let provider = &authorizer.provider;
    let target = format!("{}:{}", provider.service, provider.port);
    let mut client = pb::authorization_client::AuthorizationClient::new(authorizer.channel()?);
    let mut headers: HashMap<String, String> = req
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    if let Some(b) = &req.body {
        headers.insert(PARTIAL_BODY.into(), b.partial.to_string());
    }
    let pack_as_bytes = provider.body.as_ref().is_some_and(|b| b.pack_as_bytes);
    let body = req
        .body
        .as_ref()
        .map(|b| b.bytes.clone())
        .unwrap_or_default();
    let http = pb::attribute_context::HttpRequest {
        method: req.method.as_str().to_string(),
        headers,
        path: req.path.to_string(),
        host: req.host.to_string(),
        scheme: req.scheme.to_string(),
        // Envoy leaves `query` empty: the query is in `path`.
        size: i64::try_from(body.len()).unwrap_or(i64::MAX),
        protocol: "HTTP/1.1".to_string(),
        body: if pack_as_bytes {
            String::new()
        } else {
            String::from_utf8_lossy(&body).into_owned()
        },
        raw_body: if pack_as_bytes {
            body.to_vec()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let asked = pb::CheckRequest {
        attributes: Some(pb::AttributeContext {
            source: Some(pb::attribute_context::Peer {
                address: Some(address(req.source.0)),
                principal: req.source.1.to_string(),
                ..Default::default()
            }),
            destination: Some(pb::attribute_context::Peer {
                address: Some(address(req.destination)),
                ..Default::default()
            }),
            request: Some(pb::attribute_context::Request { http: Some(http) }),
            context_extensions: HashMap::new(),
        }),
    };
    let answer = client
        .check(asked)
        .await
        .map_err(|e| format!("Check on {target}: {e}"))?
        .into_inner();
    let code = answer.status.as_ref().map_or(0, |s| s.code);
    if code == 0 {
        let (upstream, remove, downstream) = match &answer.http_response {
            Some(pb::check_response::HttpResponse::OkResponse(ok)) => (
                options(&ok.headers)?,
                ok.headers_to_remove
                    .iter()
                    .filter_map(|h| HeaderName::try_from(h.as_str()).ok())
                    .collect(),
                options(&ok.response_headers_to_add)?,
            ),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        return Ok(Verdict::Allow {
            upstream,
            remove,
            downstream,
        });
    }
    let (status, headers, body) = match &answer.http_response {
        Some(pb::check_response::HttpResponse::DeniedResponse(d)) => (
            d.status
                .as_ref()
                .and_then(|s| u16::try_from(s.code).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::FORBIDDEN),
            options(&d.headers)?,
            Bytes::from(d.body.clone()),
        ),
        _ => (StatusCode::FORBIDDEN, Vec::new(), Bytes::new()),
    };
    Ok(Verdict::Deny {
        status,
        headers,
        body,
    })
}

/// The external authorization providers a proxy knows, by name (MeshConfig's
/// `extensionProviders`), replaced whole when the mesh config changes; a request reads
/// them with one lock-free load.
#[derive(Debug, Default)]
pub struct Providers(arc_swap::ArcSwap<HashMap<String, std::sync::Arc<Authorizer>>>);

impl Providers {
    /// Providers `list` holds.
    pub fn new(list: Vec<ExtAuthzProvider>) -> std::sync::Arc<Providers> {
        let p = std::sync::Arc::new(Providers::default());
        p.set(list);
        p
    }

    /// Replaces the providers with `list`.
    pub fn set(&self, list: Vec<ExtAuthzProvider>) {
        let map = list
            .into_iter()
            .map(|p| (p.name.clone(), std::sync::Arc::new(Authorizer::new(p))))
            .collect();
        self.0.store(std::sync::Arc::new(map));
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<std::sync::Arc<Authorizer>> {
        self.0.load().get(name).cloned()
    }
}
