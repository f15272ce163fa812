//! Tunnels: HTTP/1.1 Upgrade (WebSocket) and `CONNECT`. After the handshake the proxy
//! copies bytes both ways until either side closes.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::copy_bidirectional;

use super::body::Body;
use super::forward::{Outgoing, build_request};
use super::local_reply;
use crate::flags::ResponseFlags;
use crate::snapshot::{ClusterRuntime, Snapshot, Target};
use crate::{pool, tcp};

/// Forwards an Upgrade request on a fresh connection; on `101` joins the two sides.
pub async fn websocket(
    cluster: &ClusterRuntime,
    out: Outgoing,
    mut req: Request<Incoming>,
    identity: Option<&crate::identity::IdentityCell>,
) -> Response<Body> {
    let Some(endpoint) = cluster.pick_any().cloned() else {
        return local_reply::reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlags::NO_HEALTHY_UPSTREAM,
            "no healthy upstream",
            false,
        );
    };
    let downstream = hyper::upgrade::on(&mut req);
    // Secured as the cluster's requests are (mesh mTLS to a sidecar, DestinationRule tls).
    let mesh = endpoint.mesh_tls.load(std::sync::atomic::Ordering::Relaxed);
    let tls = match cluster
        .tls
        .originate(mesh, identity, crate::tls::Purpose::Http1)
    {
        Ok(tls) => tls,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                &format!("TLS error: {e}"),
                false,
            );
        }
    };
    let timeout = cluster.model.policy.pool.connect_timeout;
    let connected = match pool::connect(&endpoint.target, timeout).await {
        Ok(s) => pool::secure(s, tls.as_deref(), timeout).await,
        Err(e) => Err(e),
    };
    let stream = match connected {
        Ok(s) => s,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                &e.to_string(),
                false,
            );
        }
    };
    let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                &e.to_string(),
                false,
            );
        }
    };
    tokio::spawn(conn.with_upgrades());
    let upstream_req = build_request(&out, Body::Streaming(req.into_body()), false);
    let mut resp = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
                &e.to_string(),
                false,
            );
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        return Response::from_parts(parts, Body::upstream(body, None, Default::default()));
    }
    let upstream = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match (downstream.await, upstream.await) {
            (Ok(d), Ok(u)) => {
                let (mut d, mut u) = (TokioIo::new(d), TokioIo::new(u));
                if let Err(e) = copy_bidirectional(&mut d, &mut u).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            (d, u) => tracing::debug!(
                downstream = d.is_ok(),
                upstream = u.is_ok(),
                "upgrade failed"
            ),
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Body::empty())
}

/// Answers `CONNECT host:port`: to a mesh service when the host is one (balanced over
/// its endpoints), otherwise straight to the named host (Istio's ALLOW_ANY).
pub async fn connect(
    snapshot: &Snapshot,
    req: Request<Incoming>,
    identity: Option<&crate::identity::IdentityCell>,
    telemetry: &std::sync::Arc<crate::telemetry::Telemetry>,
) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
        return local_reply::reply(
            StatusCode::BAD_REQUEST,
            ResponseFlags::NONE,
            "CONNECT needs host:port",
            false,
        );
    };
    let Some(port) = super::headers::port_of(&authority) else {
        return local_reply::reply(
            StatusCode::BAD_REQUEST,
            ResponseFlags::NONE,
            "CONNECT needs host:port",
            false,
        );
    };
    let host = weft_model::host::authority_host(&authority).to_ascii_lowercase();
    let routed = tcp::service_named(snapshot, &host, port)
        .filter(|s| s.resolution != weft_model::service::Resolution::None);
    let decision = match routed {
        Some(service) => match tcp::decide(snapshot, Some(service), None, None, port) {
            Some(d) => d,
            None => {
                return local_reply::reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ResponseFlags::NO_HEALTHY_UPSTREAM,
                    "no healthy upstream",
                    false,
                );
            }
        },
        None => tcp::TcpDecision {
            target: Target::Host(host, port),
            connect_timeout: std::time::Duration::from_secs(10),
            fault: None,
            cluster: None,
            endpoint: None,
        },
    };
    if !tcp::survives_fault(decision.fault.as_ref()).await {
        return local_reply::reply(
            StatusCode::SERVICE_UNAVAILABLE,
            ResponseFlags::FAULT_INJECTED,
            "connection reset by fault injection",
            false,
        );
    }
    let tls = match tcp::originate(&decision, identity) {
        Ok(tls) => tls,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                &format!("TLS error: {e}"),
                false,
            );
        }
    };
    let connected = match pool::connect(&decision.target, decision.connect_timeout).await {
        Ok(s) => pool::secure(s, tls.as_deref(), decision.connect_timeout).await,
        Err(e) => Err(e),
    };
    let upstream = match connected {
        Ok(s) => s,
        Err(e) => {
            return local_reply::reply(
                StatusCode::SERVICE_UNAVAILABLE,
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                &e.to_string(),
                false,
            );
        }
    };
    let idle = tcp::idle_timeout(&decision);
    // The tunnel is a TCP connection: counted in Istio's TCP metrics like any other.
    let telemetry = telemetry.clone();
    let peers = telemetry.tcp_peers(
        crate::telemetry::metrics::Reporter::Source,
        decision.cluster.as_deref(),
        decision.endpoint.as_deref(),
        None,
    );
    telemetry.metrics.tcp_opened(&peers);
    tokio::spawn(async move {
        let (received, sent) = match hyper::upgrade::on(req).await {
            Ok(d) => {
                let stop = std::future::pending();
                tcp::splice(TokioIo::new(d), upstream, idle, &decision.target, stop).await
            }
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                (0, 0)
            }
        };
        telemetry.metrics.tcp_closed(&peers, sent, received);
    });
    Response::new(Body::empty())
}
