//! The HTTP request lifecycle, top to bottom:
//! route (VirtualService) → fault → cluster (weighted pick) → headers and rewrite →
//! mirror → send with retries and timeouts → response headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HOST;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;
use weft_model::policy::{HashKey, LoadBalancer};
use weft_model::route::{
    AbortStatus, Decision, DirectResponse, Forward, Redirect, RedirectPort, RetryPolicy,
    RouteAction,
};
use weft_model::{Request as RouteRequest, route};

use super::body::{self, Body};
use super::forward::{self, Outgoing, Payload, SendPolicy};
use super::headers::{HeaderView, authority_of, port_of};
use super::{authorize, cors, fault, headers, local_reply, mirror, rate_limit, upgrade};
use crate::flags::ResponseFlags;
use crate::snapshot::{ClusterRuntime, Endpoint, Snapshot, SnapshotCell, Target};
use crate::telemetry::metrics::Reporter;
use crate::telemetry::spans::Kind as SpanKind;
use crate::telemetry::{Observation, ObservedBody, PEER_HEADER, RequestLine, Telemetry};

/// What `forward` needs of the request besides its head and body.
struct Call {
    down: Downstream,
    authority: String,
    path: Option<String>,
    upgrade: bool,
    grpc: bool,
}

/// Which side of the workload a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic from the local app to the mesh (routed by VirtualServices).
    Outbound,
    /// Traffic from the mesh to the local app.
    Inbound,
    /// Traffic entering the mesh at an ingress gateway, on the listener serving the
    /// Gateway servers of `port` (routed by the VirtualServices bound to them).
    Gateway {
        /// The Gateway server port.
        port: u16,
    },
}

/// Tunables of the HTTP path.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body kept in memory so it can be retried or mirrored.
    pub retry_buffer_limit: usize,
    /// How request paths are normalized (Istio's `pathNormalization`).
    pub path_normalization: weft_model::authz::path::Normalization,
    /// Proxies in front of this one whose `X-Forwarded-For` entries are trusted
    /// (Istio's `numTrustedProxies`); 0: `remote.ip` is the connection's peer.
    pub trusted_proxies: usize,
    /// The workload certificate, for mesh mTLS toward upstreams.
    pub identity: Option<crate::identity::IdentityCell>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            retry_buffer_limit: 64 * 1024,
            path_normalization: Default::default(),
            trusted_proxies: 0,
            identity: None,
        }
    }
}

/// What is known about the downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct Downstream {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client dialled, when the connection was redirected to us.
    pub original_dst: Option<SocketAddr>,
}

/// The HTTP proxy of one listener.
#[derive(Debug)]
pub struct HttpProxy {
    snapshots: SnapshotCell,
    direction: Direction,
    settings: HttpSettings,
    /// Endpoints for traffic to destinations outside the registry (Istio's PassthroughCluster).
    passthrough: Mutex<HashMap<Target, Arc<Endpoint>>>,
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
            passthrough: Mutex::new(HashMap::new()),
            telemetry,
        }
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
        let mut obs = self.telemetry.observe(reporter, grpc);
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
        if self.telemetry.wants_details() {
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
                .begin(&mut obs, req.headers_mut(), kind, line);
        }
        obs.mutual_tls = principal.is_some();
        let response = self
            .route_and_send(down, principal.as_deref(), req, grpc, &mut obs)
            .await;
        ObservedBody::wrap(response, Some(obs))
    }

    async fn route_and_send(
        &self,
        down: Downstream,
        principal: Option<&str>,
        mut req: Request<Incoming>,
        grpc: bool,
        obs: &mut Observation,
    ) -> Response<Body> {
        let snapshot = self.snapshots.load();
        if req.method() == Method::CONNECT {
            // Only the app's own sidecar tunnels for it: on a gateway or the inbound side a
            // tunnel would reach past the routes and the AuthorizationPolicies.
            if self.direction != Direction::Outbound {
                return local_reply::reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ResponseFlags::NONE,
                    "CONNECT is served only by the outbound listener",
                    grpc,
                );
            }
            return upgrade::connect(
                &snapshot,
                req,
                self.settings.identity.as_ref(),
                &self.telemetry,
            )
            .await;
        }
        // On the server side (inbound, gateways) one normalized path serves the decision,
        // the route and the upstream; what an app sends out is left as it wrote it.
        if self.direction != Direction::Outbound {
            if let Some(refused) =
                authorize::normalize_path(&mut req, self.settings.path_normalization, grpc)
            {
                return refused;
            }
        }
        let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let scheme = req.uri().scheme_str().unwrap_or("http").to_string();
        headers::strip_hop_by_hop(req.headers_mut(), upgrade);
        headers::ensure_forwarded_proto(req.headers_mut(), &scheme);
        if self.direction == Direction::Inbound {
            headers::append_forwarded_for(req.headers_mut(), down.peer.ip());
            obs.peer = self.telemetry.take_peer(req.headers_mut());
            // Over mTLS the certificate says who is calling; the header only adds labels.
            if let Some(p) = principal {
                if !obs.peer.has_principal(p) {
                    obs.peer = self.telemetry.peer_of_principal(p);
                }
            }
            // The service this workload serves, else the one the caller named.
            if let Some(service) = snapshot.local_service.clone().or_else(|| {
                authority_of(&req).and_then(|a| {
                    snapshot
                        .service_names
                        .get(weft_model::host::authority_host(&a))
                        .cloned()
                })
            }) {
                obs.service = service;
            }
            let Some(cluster) = snapshot.inbound.as_ref() else {
                return local_reply::reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ResponseFlags::NO_CLUSTER,
                    "no local application configured",
                    grpc,
                );
            };
            // A plaintext connection accepted before STRICT applied gets no more requests.
            if principal.is_none()
                && snapshot.mesh.peer_authn.mode_on(cluster.model.port)
                    == weft_model::peer_authn::Mode::Strict
            {
                self.telemetry.metrics.strict_refused();
                let mut refused = local_reply::reply(
                    StatusCode::FORBIDDEN,
                    ResponseFlags::NONE,
                    "plaintext refused: PeerAuthentication is STRICT",
                    grpc,
                );
                refused.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                return refused;
            }
            let caller = authorize::Caller {
                peer: down.peer.ip(),
                principal,
                destination: down.original_dst,
                port: cluster.model.port,
            };
            if let Some(refused) = self.admit(&snapshot, &req, caller, grpc) {
                return refused;
            }
            let authority = authority_of(&req).unwrap_or_default();
            if let Some(span) = &mut obs.details {
                span.cluster = Some(cluster.model.name.clone());
                span.port = Some(cluster.model.port);
            }
            let out = outgoing(&mut req, authority, None);
            return self.send_plain(cluster, out, req, upgrade, grpc).await;
        }
        if let Direction::Gateway { port } = self.direction {
            let caller = authorize::Caller {
                peer: down.peer.ip(),
                principal,
                destination: None,
                port,
            };
            if let Some(refused) = self.admit(&snapshot, &req, caller, grpc) {
                return refused;
            }
        }
        self.outbound(&snapshot, down, req, upgrade, grpc, obs)
            .await
    }

    /// The server side's admission: AuthorizationPolicy (403 RBAC), then RateLimit (429 RL).
    fn admit(
        &self,
        snapshot: &Snapshot,
        req: &Request<Incoming>,
        caller: authorize::Caller<'_>,
        grpc: bool,
    ) -> Option<Response<Body>> {
        let principal = caller.principal;
        authorize::check(snapshot, req, caller, grpc, self.settings.trusted_proxies)
            .or_else(|| rate_limit::check(snapshot, req, grpc, principal))
    }

    async fn outbound(
        &self,
        snapshot: &Snapshot,
        down: Downstream,
        req: Request<Incoming>,
        upgrade: bool,
        grpc: bool,
        obs: &mut Observation,
    ) -> Response<Body> {
        let Some(authority) = authority_of(&req) else {
            return local_reply::reply(
                StatusCode::BAD_REQUEST,
                ResponseFlags::NONE,
                "missing Host header",
                grpc,
            );
        };
        // A redirected connection uses the listener (original destination) port, as in
        // Istio; a gateway listener uses its Gateway server port.
        let port = match self.direction {
            Direction::Gateway { port } => port,
            _ => down
                .original_dst
                .map(|a| a.port())
                .or(port_of(&authority))
                .unwrap_or(80),
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let view_headers = HeaderView(req.headers());
        let view = RouteRequest {
            authority: &authority,
            path: &path,
            method: req.method().as_str(),
            scheme: req.uri().scheme_str().unwrap_or("http"),
            headers: &view_headers,
        };
        let decision = match snapshot.mesh.http_routes.get(&port) {
            Some(table) => route(table, &view),
            None => Decision::NoVirtualHost,
        };
        let (route, matched) = match decision {
            Decision::Route { route, matched, .. } => {
                if let Some(details) = &mut obs.details {
                    details.route = Some(route.name.clone());
                }
                (route, matched)
            }
            // A host outside the registry on a redirected connection goes where the app sent
            // it (Istio's ALLOW_ANY); a known host without a matching route is a 404, as in Istio.
            Decision::NoVirtualHost | Decision::NoRoute => {
                if let (Decision::NoVirtualHost, Some(dst)) = (decision, down.original_dst) {
                    return self
                        .passthrough(Target::Socket(dst), authority, req, upgrade, grpc)
                        .await;
                }
                return local_reply::reply(
                    StatusCode::NOT_FOUND,
                    ResponseFlags::NO_ROUTE,
                    &format!("no route for {authority}{path}"),
                    grpc,
                );
            }
        };
        match &*route.action {
            RouteAction::DirectResponse(d) => direct_response(d),
            RouteAction::Redirect(r) => redirect(r, &authority, &path, port),
            RouteAction::Forward(f) => {
                let rewritten = f
                    .rewrite
                    .as_ref()
                    .and_then(|r| r.apply_path(&path, matched));
                let authority = f
                    .rewrite
                    .as_ref()
                    .and_then(|r| r.authority.clone())
                    .unwrap_or(authority);
                let call = Call {
                    down,
                    authority,
                    path: rewritten,
                    upgrade,
                    grpc,
                };
                self.forward(snapshot, f, req, call, obs).await
            }
        }
    }

    async fn forward(
        &self,
        snapshot: &Snapshot,
        f: &Forward,
        mut req: Request<Incoming>,
        call: Call,
        obs: &mut Observation,
    ) -> Response<Body> {
        let Call {
            down,
            authority,
            path,
            upgrade,
            grpc,
        } = call;
        // Telemetry names the route's service even when a fault answers for it.
        if let Some(first) = f
            .clusters
            .entries
            .first()
            .and_then(|c| snapshot.cluster(&c.cluster))
        {
            obs.service = first.service.clone();
            // And its span: `<service>:<port>/*`, as Envoy names it.
            if let Some(span) = &mut obs.details {
                span.port = Some(first.model.port);
            }
        }
        let mut cors_origin = None;
        if let Some(cors) = &f.cors {
            match cors::on_request(cors, req.method(), req.headers()) {
                cors::Preflight::Answer(resp) => return resp,
                cors::Preflight::Forward(origin) => cors_origin = origin,
            }
        }
        let mut flags = ResponseFlags::NONE;
        if let Some(fault) = &f.fault {
            let injected = fault::decide(fault, |n| fastrand::u32(..n));
            if let Some(delay) = injected.delay {
                tokio::time::sleep(delay).await;
                flags |= ResponseFlags::DELAY_INJECTED;
            }
            match injected.abort {
                Some(AbortStatus::Http(code)) => {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return local_reply::reply(
                        status,
                        flags | ResponseFlags::FAULT_INJECTED,
                        "fault filter abort",
                        grpc,
                    );
                }
                Some(AbortStatus::Grpc(code)) => {
                    return local_reply::grpc_status(
                        code,
                        flags | ResponseFlags::FAULT_INJECTED,
                        "fault filter abort",
                    );
                }
                None => {}
            }
        }
        let Some(chosen) = f.clusters.pick(fastrand::u32(..f.clusters.total.max(1))) else {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                flags | ResponseFlags::NO_CLUSTER,
                "no destination",
                grpc,
            );
        };
        let Some(cluster) = snapshot.cluster(&chosen.cluster) else {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                flags | ResponseFlags::NO_CLUSTER,
                &format!("cluster not found: {}", chosen.cluster),
                grpc,
            );
        };
        // PASSTHROUGH balancing and `resolution: NONE` services forward to where the app
        // sent the request: the original destination, or the authority in explicit-proxy mode.
        if forwards_to_original(snapshot, cluster) {
            // A gateway never lets its client choose where it connects.
            if let Direction::Gateway { .. } = self.direction {
                return local_reply::reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    flags | ResponseFlags::NO_CLUSTER,
                    "a gateway does not forward to destinations the request names (PASSTHROUGH or resolution NONE)",
                    grpc,
                );
            }
            let target = match down.original_dst {
                Some(dst) => Target::Socket(dst),
                None => {
                    let host = weft_model::host::authority_host(&authority).to_string();
                    Target::Host(host, port_of(&authority).unwrap_or(cluster.model.port))
                }
            };
            return self
                .passthrough(target, authority, req, upgrade, grpc)
                .await;
        }
        obs.service = cluster.service.clone();
        if let Some(span) = &mut obs.details {
            span.port = Some(cluster.model.port);
        }
        if cluster.mesh_internal {
            // Who is calling, for the server sidecar's telemetry (Istio's metadata exchange).
            req.headers_mut()
                .insert(PEER_HEADER, self.telemetry.peer_header());
        }
        headers::apply(req.headers_mut(), &chosen.headers.request);
        headers::apply(req.headers_mut(), &f.headers.request);
        // Istio turns `headers.request.set.host` into an authority rewrite.
        let set_host = f
            .headers
            .request
            .set
            .iter()
            .chain(&chosen.headers.request.set)
            .find(|(k, _)| k == "host");
        let authority = set_host.map_or(authority, |(_, v)| v.clone());
        let hash = request_hash(cluster, &req, Some(down.peer));
        let out = outgoing(&mut req, authority, path);
        let http2 = cluster.http2().unwrap_or(req.version() == Version::HTTP_2);
        // `outgoing` moved the headers out of `req`: the client's grpc-timeout is in `out`.
        let deadline =
            timeout_of(f.timeout, &out.headers).and_then(|t| Instant::now().checked_add(t));
        if upgrade {
            return upgrade::websocket(cluster, out, req, self.settings.identity.as_ref()).await;
        }
        let needs_copy = f.retry.attempts > 0 || !f.mirrors.is_empty();
        let payload = if needs_copy && !req.body().is_end_stream() {
            match body::buffer(req.into_body(), self.settings.retry_buffer_limit).await {
                Ok((_, Some(buffered))) => Payload::Replayable(buffered),
                Ok((partial, None)) => Payload::Once(Some(partial)),
                Err(e) => {
                    return local_reply::reply(
                        StatusCode::BAD_REQUEST,
                        ResponseFlags::DOWNSTREAM_PROTOCOL_ERROR,
                        &format!("reading request body: {e}"),
                        grpc,
                    );
                }
            }
        } else if req.body().is_end_stream() {
            Payload::Replayable(Default::default())
        } else {
            Payload::Once(Some(Body::Streaming(req.into_body())))
        };
        if let Payload::Replayable(buffered) = &payload {
            for m in &f.mirrors {
                if fastrand::u32(..weft_model::route::MILLION) < m.per_million {
                    mirror::spawn(
                        snapshot,
                        &m.cluster,
                        &out,
                        buffered.clone(),
                        http2,
                        self.settings.identity.clone(),
                    );
                }
            }
        }
        let policy = SendPolicy {
            retry: &f.retry,
            deadline,
            http2,
            hash,
            identity: self.settings.identity.as_ref(),
        };
        match forward::send(cluster, &out, payload, policy).await {
            Ok(up) => {
                if let Some(workload) = up.endpoint.workload.load_full() {
                    obs.peer = workload;
                }
                if let Some(span) = &mut obs.details {
                    span.cluster = Some(cluster.model.name.clone());
                    span.port = Some(cluster.model.port);
                    span.upstream = Some(up.endpoint.key.clone());
                }
                let (mut parts, incoming) = up.response.into_parts();
                // The downstream connection's protocol decides the response's, not the upstream's.
                parts.version = Version::default();
                headers::strip_hop_by_hop(&mut parts.headers, false);
                // Flags are this proxy's own: never what the upstream (or its proxy) said.
                parts.headers.remove(headers::RESPONSE_FLAGS);
                headers::apply(&mut parts.headers, &chosen.headers.response);
                headers::apply(&mut parts.headers, &f.headers.response);
                if let (Some(cors), Some(origin)) = (&f.cors, cors_origin) {
                    cors::on_response(cors, origin, &mut parts.headers);
                }
                // Flags weft set on an upstream answer (URX when retries ran out) are shown too.
                if let (false, Ok(v)) = (
                    up.flags.is_empty(),
                    http::HeaderValue::from_str(&up.flags.to_string()),
                ) {
                    parts.headers.insert(headers::RESPONSE_FLAGS, v);
                }
                Response::from_parts(parts, Body::upstream(incoming, up.checkout, up.permits))
            }
            Err(failure) => local_reply::reply(
                failure.status,
                flags | failure.flags,
                &failure.message,
                grpc,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// Forwards as is, in the client's protocol, without retries or timeout (inbound and
    /// passthrough traffic, as Istio configures those).
    async fn send_plain(
        &self,
        cluster: &ClusterRuntime,
        out: Outgoing,
        req: Request<Incoming>,
        upgrade: bool,
        grpc: bool,
    ) -> Response<Body> {
        let http2 = req.version() == Version::HTTP_2;
        if upgrade {
            return upgrade::websocket(cluster, out, req, self.settings.identity.as_ref()).await;
        }
        let payload = if req.body().is_end_stream() {
            Payload::Replayable(Default::default())
        } else {
            Payload::Once(Some(Body::Streaming(req.into_body())))
        };
        let policy = SendPolicy {
            retry: &RetryPolicy::disabled(),
            deadline: None,
            http2,
            hash: None,
            identity: self.settings.identity.as_ref(),
        };
        match forward::send(cluster, &out, payload, policy).await {
            Ok(up) => {
                let (mut parts, incoming) = up.response.into_parts();
                // The downstream connection's protocol decides the response's, not the upstream's.
                parts.version = Version::default();
                headers::strip_hop_by_hop(&mut parts.headers, false);
                parts.headers.remove(headers::RESPONSE_FLAGS);
                if !up.flags.is_empty() {
                    if let Ok(v) = http::HeaderValue::from_str(&up.flags.to_string()) {
                        parts.headers.insert(headers::RESPONSE_FLAGS, v);
                    }
                }
                Response::from_parts(parts, Body::upstream(incoming, up.checkout, up.permits))
            }
            Err(failure) => {
                local_reply::reply(failure.status, failure.flags, &failure.message, grpc)
            }
        }
    }

    /// Istio's ALLOW_ANY: a redirected request for a host outside the registry goes to
    /// the address the app dialled.
    async fn passthrough(
        &self,
        dst: Target,
        authority: String,
        mut req: Request<Incoming>,
        upgrade: bool,
        grpc: bool,
    ) -> Response<Body> {
        let endpoint = {
            let Ok(mut map) = self.passthrough.lock() else {
                return local_reply::reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ResponseFlags::NONE,
                    "passthrough state poisoned",
                    grpc,
                );
            };
            // Bounded: past the limit, destinations with no request in flight (and their
            // pooled connections) are dropped.
            if map.len() >= MAX_PASSTHROUGH_DESTINATIONS && !map.contains_key(&dst) {
                map.retain(|_, e| Arc::strong_count(e) > 1);
            }
            map.entry(dst.clone())
                .or_insert_with(|| {
                    Arc::new(Endpoint {
                        key: dst.to_string(),
                        target: dst,
                        stats: Default::default(),
                        pool: Default::default(),
                        health: Default::default(),
                        workload: Default::default(),
                        mesh_tls: Default::default(),
                    })
                })
                .clone()
        };
        let cluster = crate::snapshot::single_endpoint_cluster("PassthroughCluster", endpoint);
        let out = outgoing(&mut req, authority, None);
        self.send_plain(&cluster, out, req, upgrade, grpc).await
    }
}

/// How many passthrough destinations keep their connection pools.
const MAX_PASSTHROUGH_DESTINATIONS: usize = 1024;

/// True when requests to `cluster` go to their original destination rather than an endpoint.
fn forwards_to_original(snapshot: &Snapshot, cluster: &ClusterRuntime) -> bool {
    matches!(
        cluster.model.policy.load_balancer,
        LoadBalancer::Passthrough
    ) || (cluster.endpoints.is_empty()
        && snapshot
            .mesh
            .services
            .get(&cluster.model.service)
            .is_some_and(|s| s.resolution == weft_model::service::Resolution::None))
}

/// The request as it will be sent upstream (URI parts and headers).
fn outgoing(req: &mut Request<Incoming>, authority: String, path: Option<String>) -> Outgoing {
    let path = path.unwrap_or_else(|| {
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string()
    });
    Outgoing {
        method: req.method().clone(),
        authority,
        path,
        headers: std::mem::take(req.headers_mut()),
    }
}

/// The route timeout, capped by the client's `grpc-timeout` (Istio's `max_grpc_timeout`).
fn timeout_of(route: Option<Duration>, headers: &HeaderMap) -> Option<Duration> {
    let grpc = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match (route, grpc) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    }
}

/// Parses gRPC's `grpc-timeout` (`100m`, `5S`, ...).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    // The spec allows at most 8 ASCII digits.
    if num.is_empty() || num.len() > 8 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The consistent-hash key of a request, when the cluster hashes.
fn request_hash<B>(
    cluster: &ClusterRuntime,
    req: &Request<B>,
    peer: Option<SocketAddr>,
) -> Option<u64> {
    let LoadBalancer::ConsistentHash { key, .. } = &cluster.model.policy.load_balancer else {
        return None;
    };
    let h = |b: &[u8]| Some(crate::balancer::hash_key(b));
    match key {
        HashKey::Header(name) => req
            .headers()
            .get(name.as_str())
            .and_then(|v| h(v.as_bytes())),
        HashKey::SourceIp => peer.and_then(|p| h(p.ip().to_string().as_bytes())),
        HashKey::QueryParameter(name) => req
            .uri()
            .query()
            .and_then(|q| {
                q.split('&').find_map(|pair| {
                    pair.split_once('=')
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v)
                })
            })
            .and_then(|v| h(v.as_bytes())),
        HashKey::Cookie { name, .. } => req
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .split_once('=')
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.to_string())
            })
            .and_then(|v| h(v.as_bytes())),
    }
}

fn direct_response(d: &DirectResponse) -> Response<Body> {
    let mut resp = Response::new(Body::from_bytes(d.body.clone()));
    *resp.status_mut() = StatusCode::from_u16(d.status).unwrap_or(StatusCode::OK);
    headers::apply(resp.headers_mut(), &d.headers);
    resp
}

fn redirect(r: &Redirect, authority: &str, path: &str, request_port: u16) -> Response<Body> {
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let host = r
        .authority
        .clone()
        .unwrap_or_else(|| weft_model::host::authority_host(authority).to_string());
    let host = weft_model::host::authority_host(&host).to_string();
    let port = match r.port {
        Some(RedirectPort::Fixed(p)) => Some(p),
        Some(RedirectPort::FromRequestPort) => Some(request_port),
        Some(RedirectPort::FromProtocolDefault) => None,
        None => port_of(authority).filter(|_| r.authority.is_none()),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host_port = match port.filter(|p| *p != default_port) {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let new_path = match &r.path {
        Some(p) => match path.split_once('?') {
            Some((_, q)) if !p.contains('?') => format!("{p}?{q}"),
            _ => p.clone(),
        },
        None => path.to_string(),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = http::HeaderValue::from_str(&format!("{scheme}://{host_port}{new_path}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    headers::apply(resp.headers_mut(), &r.headers);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_grpc_timeouts() {
        assert_eq!(port_of("a:8080"), Some(8080));
        assert_eq!(port_of("a"), None);
        assert_eq!(port_of("[::1]:80"), Some(80));
        assert_eq!(port_of("[::1]"), None);
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(
            parse_grpc_timeout("18446744073709551615S"),
            None,
            "at most 8 digits"
        );
        assert_eq!(parse_grpc_timeout("+5S"), None);
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn timeouts_take_the_smaller_of_route_and_grpc() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", http::HeaderValue::from_static("50m"));
        assert_eq!(
            timeout_of(Some(Duration::from_secs(1)), &h),
            Some(Duration::from_millis(50))
        );
        assert_eq!(timeout_of(None, &HeaderMap::new()), None);
    }
}
