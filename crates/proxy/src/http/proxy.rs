//! The HTTP proxy of one listener, the conductor of a request's stages: it observes the
//! request (metrics, access log, span), frames it (request id, normalized path on the
//! server side, hop-by-hop headers), hands it to its side — [`super::inbound`] (admission,
//! then the local app), [`super::outbound`] (route, then a cluster), or on a gateway
//! admission then routing — and renders the [`LocalReply`] when a stage answers itself.
//! `CONNECT` goes to [`super::upgrade`].

use std::sync::Arc;

use http::header::HOST;
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use super::body::Body;
use super::call::{Call, Direction, Downstream, HttpSettings};
use super::local_reply::{LocalReply, Reason};
use super::passthrough::Passthrough;
use super::{authenticate, authorize, headers, inbound, outbound, upgrade};
use crate::snapshot::SnapshotCell;
use crate::telemetry::metrics::Reporter;
use crate::telemetry::spans::Kind as SpanKind;
use crate::telemetry::{Observation, ObservedBody, PEER_HEADER, RequestLine, Telemetry};

/// The HTTP proxy of one listener.
#[derive(Debug)]
pub struct HttpProxy {
    snapshots: SnapshotCell,
    direction: Direction,
    settings: HttpSettings,
    /// Endpoints for traffic to destinations outside the registry (Istio's PassthroughCluster).
    passthrough: Passthrough,
    telemetry: Arc<Telemetry>,
}

impl HttpProxy {
    /// A proxy for `direction` reading configuration from `snapshots`.
    pub fn new(
        snapshots: SnapshotCell,
        direction: Direction,
        settings: HttpSettings,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        HttpProxy {
            snapshots,
            direction,
            settings,
            passthrough: Passthrough::default(),
            telemetry,
        }
    }

    /// The listener's telemetry.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Handles one request; never fails (failures become local replies). The response
    /// body records the request's telemetry when it ends.
    /// `principal` is the caller's identity when it came over mutual TLS.
    pub async fn handle(
        &self,
        down: Downstream,
        principal: Option<Arc<str>>,
        mut req: Request<Incoming>,
    ) -> Response<ObservedBody> {
        let grpc = headers::is_grpc(req.headers());
        // Once, before anything reads it (access log, spans, the upstream).
        headers::ensure_request_id(req.headers_mut());
        let reporter = match self.direction {
            Direction::Inbound => Reporter::Destination,
            _ => Reporter::Source,
        };
        // The configuration in force now: the request keeps it (and its Telemetry policy).
        let snapshot = self.snapshots.load();
        let policy = snapshot.telemetry.clone();
        let mut obs = self.telemetry.observe(reporter, grpc, policy);
        if reporter == Reporter::Source {
            // Only this proxy says who is calling; never what the client claims.
            req.headers_mut().remove(PEER_HEADER);
        }
        obs.request_bytes = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let kind = match self.direction {
            Direction::Inbound => SpanKind::Server,
            _ => SpanKind::Client,
        };
        if let Some(sinks) = self.telemetry.detail_sinks(&obs) {
            // Cheap clones (shared bytes); the strings are built only when needed.
            let (method, uri, version) = (req.method().clone(), req.uri().clone(), req.version());
            let host = req.headers().get(HOST).cloned();
            let agent = req.headers().get(http::header::USER_AGENT).cloned();
            let line = move || {
                let authority = uri
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .or_else(|| host.and_then(|h| h.to_str().ok().map(str::to_string)))
                    .unwrap_or_default();
                RequestLine {
                    method: method.to_string(),
                    url: format!(
                        "{}://{authority}{}",
                        uri.scheme_str().unwrap_or("http"),
                        uri.path_and_query().map_or("/", |p| p.as_str())
                    ),
                    authority,
                    protocol: match version {
                        Version::HTTP_2 => "HTTP/2",
                        Version::HTTP_10 => "HTTP/1.0",
                        _ => "HTTP/1.1",
                    },
                    user_agent: agent
                        .and_then(|a| a.to_str().ok().map(str::to_string))
                        .unwrap_or_default(),
                    peer: down.peer.to_string(),
                    local: down
                        .original_dst
                        .map_or_else(String::new, |a| a.to_string()),
                    path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
                }
            };
            self.telemetry
                .begin(&mut obs, req.headers_mut(), kind, sinks, line);
        }
        obs.mutual_tls = principal.is_some();
        let response = self
            .serve(snapshot, down, principal.as_deref(), req, grpc, &mut obs)
            .await
            .unwrap_or_else(|reply| reply.render(grpc));
        ObservedBody::wrap(response, Some(obs))
    }

    /// Frames the request and hands it to the listener's side.
    async fn serve(
        &self,
        snapshot: Arc<crate::snapshot::Snapshot>,
        down: Downstream,
        principal: Option<&str>,
        mut req: Request<Incoming>,
        grpc: bool,
        obs: &mut Observation,
    ) -> Result<Response<Body>, LocalReply> {
        if req.version() < Version::HTTP_2 {
            check_http1_framing(&req)?;
        }
        if req.method() == Method::CONNECT {
            // Only the app's own sidecar tunnels for it: on a gateway or the inbound side a
            // tunnel would reach past the routes and the AuthorizationPolicies.
            if self.direction != Direction::Outbound {
                return Err(Reason::ConnectNotServed.into());
            }
            let identity = self.settings.identity.as_ref();
            return Box::pin(upgrade::connect(&snapshot, req, identity, &self.telemetry)).await;
        }
        // On the server side (inbound, gateways) one normalized path serves the decision,
        // the route and the upstream; what an app sends out is left as it wrote it.
        if self.direction != Direction::Outbound {
            authorize::normalize_path(&mut req, self.settings.path_normalization)?;
        }
        let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let scheme = match req.uri().scheme_str() {
            _ if down.tls => "https".to_string(),
            Some(s) => s.to_string(),
            None => "http".to_string(),
        };
        headers::strip_hop_by_hop(req.headers_mut(), upgrade);
        headers::ensure_forwarded_proto(req.headers_mut(), &scheme);
        let call = Call {
            snapshot: &snapshot,
            direction: self.direction,
            settings: &self.settings,
            telemetry: &self.telemetry,
            down,
            principal,
            upgrade,
            grpc,
            auth: None,
        };
        match self.direction {
            Direction::Inbound => inbound::serve(call, req, obs).await,
            // Boxed: a gateway's stages (end-user auth, CUSTOM authorization) add state
            // that inline would be moved with every sidecar request's future too.
            Direction::Gateway { port } => Box::pin(self.gateway(call, port, req, obs)).await,
            Direction::Outbound => outbound::serve(call, &self.passthrough, req, obs).await,
        }
    }

    /// A gateway's request: end-user authentication, CUSTOM then ALLOW/DENY
    /// authorization as on a server sidecar, then routing as a client.
    async fn gateway(
        &self,
        call: Call<'_>,
        port: u16,
        mut req: Request<Incoming>,
        obs: &mut Observation,
    ) -> Result<Response<Body>, LocalReply> {
        let snapshot = call.snapshot;
        let auth = authenticate::check(snapshot, &self.settings.jwks, &mut req).await?;
        let caller = authorize::Caller {
            peer: call.down.peer.ip(),
            principal: call.principal,
            destination: None,
            port,
            auth: auth.as_ref(),
        };
        let (providers, trusted) = (&self.settings.ext_authz, self.settings.trusted_proxies);
        let allowed = authorize::custom(snapshot, providers, &mut req, caller, trusted).await?;
        inbound::admit(call, &req, caller)?;
        let call = Call {
            auth: auth.as_ref(),
            ..call
        };
        let resp = outbound::serve(call, &self.passthrough, req, obs).await?;
        Ok(inbound::with_headers(resp, allowed))
    }
}

/// What Envoy's HTTP/1 codec refuses and hyper lets through once it has parsed the
/// head: HTTP/1.1 naming no host (neither `Host` nor an absolute-form target). Both lengths
/// never get here (hyper drops `Content-Length`): the listener refuses them from the raw
/// head (`detect::head_refusal`).
fn check_http1_framing<B>(req: &Request<B>) -> Result<(), Reason> {
    let h = req.headers();
    if req.version() == http::Version::HTTP_11 && req.uri().authority().is_none() {
        let host = h.get(HOST).map(|v| v.as_bytes());
        if host.is_none_or(<[u8]>::is_empty) {
            return Err(Reason::MissingHost);
        }
    }
    Ok(())
}
