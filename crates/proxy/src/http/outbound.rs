//! The outbound side: a request from the local app (or, after admission, from a
//! gateway's client) routed by the VirtualServices. The stages, each a function here or
//! a module beside it:
//!
//! 1. [`serve`]: the route decision ([`weft_model::route`]) — no route is `404 NR`, a host
//!    outside the registry passes through ([`super::passthrough`]), `directResponse` and
//!    `redirect` are answered here ([`super::direct`]);
//! 2. [`before_sending`]: CORS preflights ([`super::cors`]) and fault injection
//!    ([`super::fault`]);
//! 3. [`choose_cluster`]: the weighted pick among the route's destinations;
//! 4. [`prepare`]: header operations, the consistent-hash key ([`super::hash`]) and the
//!    deadline (route timeout, capped by `grpc-timeout`);
//! 5. [`payload`]: the body kept for retries and mirrors, and the mirrors sent
//!    ([`super::mirror`]);
//! 6. [`super::forward::send`]: endpoint, retries, timeouts, circuit breaking;
//! 7. [`super::respond`]: the response made the downstream's, with the route's edits.

use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use tokio::time::Instant;
use weft_model::outbound::Outbound;
use weft_model::route::{Decision, Forward, RouteAction, WeightedCluster};
use weft_model::{Request as RouteRequest, route};

use super::body::{self, Body};
use super::call::{Call, Direction};
use super::forward::{self, Outgoing, Payload, SendPolicy};
use super::headers::{self, ClaimView, HeaderView, authority_of, port_of};
use super::local_reply::{LocalReply, Reason};
use super::passthrough::{self, Passthrough};
use super::respond::{self, Edits};
use super::{cors, direct, fault, hash, mirror, upgrade};
use crate::flags::ResponseFlags;
use crate::snapshot::ClusterRuntime;
use crate::target::Target;
use crate::telemetry::{Observation, PEER_HEADER};

/// Routes the request and answers it: from an upstream, or from the route itself.
pub async fn serve(
    call: Call<'_>,
    passthrough: &Passthrough,
    req: Request<Incoming>,
    obs: &mut Observation,
) -> Result<Response<Body>, LocalReply> {
    let authority = authority_of(&req).ok_or(Reason::MissingHost)?;
    // A redirected connection uses the listener (original destination) port, as in
    // Istio; a gateway listener uses its Gateway server port.
    let port = match call.direction {
        Direction::Gateway { port } => port,
        _ => call
            .down
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
    let view_headers = ClaimView {
        headers: HeaderView(req.headers()),
        auth: call.auth,
    };
    let view = RouteRequest {
        authority: &authority,
        path: &path,
        method: req.method().as_str(),
        scheme: req.uri().scheme_str().unwrap_or("http"),
        headers: &view_headers,
    };
    let decision = match call.snapshot.mesh.http_routes.get(&port) {
        Some(table) => route(table, &view),
        None => Decision::NoVirtualHost,
    };
    let (route, matched) = match decision {
        Decision::Route { route, matched, .. } => (route, matched),
        // A host outside the registry on a redirected connection goes where the app sent
        // it (Istio's ALLOW_ANY); a known host without a matching route is a 404, as in Istio.
        Decision::NoVirtualHost | Decision::NoRoute => {
            let dst = call
                .down
                .original_dst
                .or_else(|| requested_endpoint(&call, &req));
            if let (Decision::NoVirtualHost, Some(dst)) = (decision, dst) {
                return Box::pin(outside_registry(call, passthrough, dst, authority, req)).await;
            }
            return Err(Reason::NoRoute(format!("{authority}{path}")).into());
        }
    };
    if let Some(details) = &mut obs.details {
        details.route = Some(route.name.clone());
    }
    match &*route.action {
        RouteAction::DirectResponse(d) => Ok(direct::response(d)),
        RouteAction::Redirect(r) => Ok(direct::redirect(r, &authority, &path, matched, port)),
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
            let to = Destination {
                authority,
                path: rewritten,
            };
            forward_route(call, passthrough, f, req, to, obs).await
        }
    }
}

/// Where a forwarded request goes, after the route's rewrite.
struct Destination {
    authority: String,
    /// The rewritten path, when the route rewrites it.
    path: Option<String>,
}

/// Stages 2 to 7 for a route that forwards.
async fn forward_route(
    call: Call<'_>,
    passthrough: &Passthrough,
    f: &Forward,
    mut req: Request<Incoming>,
    to: Destination,
    obs: &mut Observation,
) -> Result<Response<Body>, LocalReply> {
    name_the_service(call, f, obs);
    let (cors_origin, flags) = match before_sending(f, &req).await? {
        Before::Answer(resp) => return Ok(resp),
        Before::Send { cors_origin, flags } => (cors_origin, flags),
    };
    let add_flags = |reply: LocalReply| reply.with_flags(flags);
    let (chosen, cluster) = choose_cluster(call, f).map_err(add_flags)?;
    // PASSTHROUGH balancing and `resolution: NONE` services forward to where the app
    // sent the request: the original destination, or the authority in explicit-proxy mode.
    if passthrough::forwards_to_original(call.snapshot, cluster) {
        // A gateway never lets its client choose where it connects.
        if let Direction::Gateway { .. } = call.direction {
            return Err(add_flags(Reason::GatewayPassthrough.into()));
        }
        let target = match call.down.original_dst {
            Some(dst) => Target::Socket(dst),
            None => {
                let host = weft_model::host::authority_host(&to.authority).to_string();
                Target::Host(host, port_of(&to.authority).unwrap_or(cluster.model.port))
            }
        };
        return Box::pin(pass_through(call, passthrough, target, to.authority, req)).await;
    }
    obs.service = cluster.service.clone();
    if let Some(span) = &mut obs.details {
        span.port = Some(cluster.model.port);
    }
    let prepared = prepare(call, f, chosen, cluster, &mut req, to);
    if call.upgrade {
        return Box::pin(upgrade::websocket(
            cluster,
            prepared.out,
            req,
            call.identity(),
        ))
        .await;
    }
    let payload = payload(call, f, req).await.map_err(add_flags)?;
    send_mirrors(call, f, &prepared, &payload);
    let policy = SendPolicy {
        retry: &f.retry,
        deadline: prepared.deadline,
        http2: prepared.http2,
        hash: prepared.hash,
        identity: call.identity(),
    };
    let up = forward::send(cluster, &prepared.out, payload, policy)
        .await
        .map_err(add_flags)?;
    if let Some(workload) = up.endpoint.workload.load_full() {
        obs.peer = workload;
    }
    if let Some(span) = &mut obs.details {
        span.cluster = Some(cluster.model.name.clone());
        span.port = Some(cluster.model.port);
        span.upstream = Some(up.endpoint.key.clone());
    }
    let edits = Edits {
        headers: [Some(&chosen.headers.response), Some(&f.headers.response)],
        cors: f.cors.as_ref().zip(cors_origin),
    };
    Ok(respond::respond(up, edits))
}

/// Telemetry names the route's service even when a fault answers for it, and its span
/// `<service>:<port>/*`, as Envoy names it.
fn name_the_service(call: Call<'_>, f: &Forward, obs: &mut Observation) {
    if let Some(first) = f
        .clusters
        .entries
        .first()
        .and_then(|c| call.snapshot.cluster(&c.cluster))
    {
        obs.service = first.service.clone();
        if let Some(span) = &mut obs.details {
            span.port = Some(first.model.port);
        }
    }
}

/// What happens before a cluster is chosen.
enum Before {
    /// A CORS preflight answered by the proxy.
    Answer(Response<Body>),
    /// Go on; with the allowed CORS origin and the flags of an injected delay.
    Send {
        cors_origin: Option<HeaderValue>,
        flags: ResponseFlags,
    },
}

/// Stage 2: CORS preflights, then fault injection (a delay, then maybe an abort).
async fn before_sending(f: &Forward, req: &Request<Incoming>) -> Result<Before, LocalReply> {
    let mut cors_origin = None;
    if let Some(policy) = &f.cors {
        match cors::on_request(policy, req.method(), req.headers()) {
            cors::Preflight::Answer(resp) => return Ok(Before::Answer(resp)),
            cors::Preflight::Forward(origin) => cors_origin = origin,
        }
    }
    let mut flags = ResponseFlags::NONE;
    if let Some(rule) = &f.fault {
        let injected = fault::decide(rule, |n| fastrand::u32(..n));
        if let Some(delay) = injected.delay {
            tokio::time::sleep(delay).await;
            flags |= ResponseFlags::DELAY_INJECTED;
        }
        if let Some(abort) = injected.abort {
            return Err(LocalReply::from(Reason::FaultAbort(abort)).with_flags(flags));
        }
    }
    Ok(Before::Send { cors_origin, flags })
}

/// Stage 3: the destination picked by weight, and its cluster.
fn choose_cluster<'s>(
    call: Call<'s>,
    f: &'s Forward,
) -> Result<(&'s WeightedCluster, &'s ClusterRuntime), LocalReply> {
    let chosen = f
        .clusters
        .pick(fastrand::u32(..f.clusters.total.max(1)))
        .ok_or(Reason::NoDestination)?;
    if let Some(why) = &chosen.unresolved {
        return Err(Reason::InvalidBackend(why.clone()).into());
    }
    let cluster = call
        .snapshot
        .cluster(&chosen.cluster)
        .ok_or_else(|| Reason::NoCluster(chosen.cluster.clone()))?;
    Ok((chosen, cluster))
}

/// A request ready to send: what goes upstream and how.
struct Prepared {
    out: Outgoing,
    hash: Option<u64>,
    deadline: Option<Instant>,
    http2: bool,
}

/// Stage 4: the peer header toward mesh workloads, header operations (`set: host` is an
/// authority rewrite, as in Istio), the hash key, the protocol and the deadline.
fn prepare(
    call: Call<'_>,
    f: &Forward,
    chosen: &WeightedCluster,
    cluster: &ClusterRuntime,
    req: &mut Request<Incoming>,
    to: Destination,
) -> Prepared {
    if cluster.mesh_internal {
        // Who is calling, for the server sidecar's telemetry (Istio's metadata exchange).
        req.headers_mut()
            .insert(PEER_HEADER, call.telemetry.peer_header());
    }
    headers::apply(req.headers_mut(), &chosen.headers.request);
    headers::apply(req.headers_mut(), &f.headers.request);
    let set_host = f
        .headers
        .request
        .set
        .iter()
        .chain(&chosen.headers.request.set)
        .find(|(k, _)| k == "host");
    let authority = set_host.map_or(to.authority, |(_, v)| v.clone());
    let hash = hash::request_hash(cluster, req, Some(call.down.peer));
    let http2 = cluster.http2().unwrap_or(req.version() == Version::HTTP_2);
    let out = Outgoing::from_request(req, authority, to.path);
    // The headers moved into `out`: the client's grpc-timeout is read there.
    let deadline =
        headers::timeout_of(f.timeout, &out.headers).and_then(|t| Instant::now().checked_add(t));
    Prepared {
        out,
        hash,
        deadline,
        http2,
    }
}

/// Stage 5: the body, in memory when retries or mirrors need copies of it (up to the
/// retry buffer limit; past it the request streams and is sent once).
async fn payload(
    call: Call<'_>,
    f: &Forward,
    req: Request<Incoming>,
) -> Result<Payload, LocalReply> {
    let needs_copy = f.retry.attempts > 0 || !f.mirrors.is_empty();
    if body::request_ended(&req) {
        return Ok(Payload::Replayable(Default::default()));
    }
    if !needs_copy {
        return Ok(Payload::Once(Some(body::request_body(req))));
    }
    match body::buffer(req, call.settings.retry_buffer_limit).await {
        Ok((_, Some(buffered))) => Ok(Payload::Replayable(buffered)),
        Ok((partial, None)) => Ok(Payload::Once(Some(partial))),
        Err(e) => Err(Reason::RequestBody(e).into()),
    }
}

/// Stage 5, continued: each mirror gets a copy of a replayable request, at its percentage.
fn send_mirrors(call: Call<'_>, f: &Forward, prepared: &Prepared, payload: &Payload) {
    let Payload::Replayable(buffered) = payload else {
        return;
    };
    for m in &f.mirrors {
        if fastrand::u32(..weft_model::route::MILLION) < m.per_million {
            mirror::spawn(
                call.snapshot,
                &m.cluster,
                &prepared.out,
                buffered.clone(),
                prepared.http2,
                call.settings.identity.clone(),
            );
        }
    }
}

/// The endpoint address an app using its sidecar explicitly (`HTTP_PROXY`: an HTTP/1
/// absolute-form request) asked for: an IP address and port of one of the registry's
/// endpoints, dialled directly (a pod IP), which is then the app's original destination
/// as a redirected connection's would be. Nothing else: not on gateways (whose clients
/// are not the mesh's apps), not over HTTP/2 (whose requests always carry an authority),
/// not an address the registry does not hold (the proxy's own listeners, loopback
/// services, the cloud's metadata address).
fn requested_endpoint<B>(call: &Call<'_>, req: &Request<B>) -> Option<std::net::SocketAddr> {
    if call.direction != super::call::Direction::Outbound || req.version() >= http::Version::HTTP_2
    {
        return None;
    }
    let uri = req.uri();
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    let addr = std::net::SocketAddr::new(ip, uri.port_u16().unwrap_or(80));
    let target = crate::target::Target::Socket(addr);
    let known = call
        .snapshot
        .clusters
        .values()
        .any(|c| c.endpoints.iter().any(|e| e.target == target));
    known.then_some(addr)
}

/// A request for a host outside the registry, as the outbound traffic policy says:
/// to where the app sent it (`ALLOW_ANY`), through the Sidecar's `egressProxy`, or
/// refused with 502 (`REGISTRY_ONLY`).
async fn outside_registry(
    call: Call<'_>,
    passthrough: &Passthrough,
    dst: std::net::SocketAddr,
    authority: String,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, LocalReply> {
    match &call.snapshot.mesh.outbound {
        Outbound::AllowAny => {
            pass_through(call, passthrough, Target::Socket(dst), authority, req).await
        }
        Outbound::RegistryOnly => Err(Reason::RegistryOnly(authority).into()),
        Outbound::EgressProxy(name) => {
            let cluster = call
                .snapshot
                .cluster(name)
                .ok_or_else(|| Reason::NoCluster(name.clone()))?;
            let out = Outgoing::from_request(&mut req, authority, None);
            if call.upgrade {
                return Box::pin(upgrade::websocket(cluster, out, req, call.identity())).await;
            }
            let up = forward::send_once(cluster, &out, req, call.identity()).await?;
            Ok(respond::respond(up, Edits::default()))
        }
    }
}

/// Istio's ALLOW_ANY and PASSTHROUGH: the request goes as it came to `target`.
async fn pass_through(
    call: Call<'_>,
    passthrough: &Passthrough,
    target: Target,
    authority: String,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, LocalReply> {
    let cluster = passthrough.cluster(target);
    let out = Outgoing::from_request(&mut req, authority, None);
    if call.upgrade {
        return upgrade::websocket(&cluster, out, req, call.identity()).await;
    }
    let up = forward::send_once(&cluster, &out, req, call.identity()).await?;
    Ok(respond::respond(up, Edits::default()))
}
