//! Tunnels: HTTP/1.1 Upgrade (WebSocket) and `CONNECT`. After the handshake the proxy
//! copies bytes both ways until either side closes.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::copy_bidirectional;

use super::body::Body;
use super::forward::{Outgoing, build_request};
use super::local_reply::{LocalReply, Reason};
use crate::pool::SendError;
use crate::snapshot::{ClusterRuntime, Snapshot};
use crate::target::Target;
use crate::{pool, tcp};

/// Forwards an Upgrade request on a fresh connection; on `101` joins the two sides.
pub async fn websocket(
    cluster: &ClusterRuntime,
    out: Outgoing,
    mut req: Request<Incoming>,
    identity: Option<&crate::identity::IdentityCell>,
) -> Result<Response<Body>, LocalReply> {
    let Some(endpoint) = cluster.pick_any().cloned() else {
        return Err(Reason::NoHealthyUpstream(cluster.model.name.clone()).into());
    };
    let downstream = hyper::upgrade::on(&mut req);
    // Secured as the cluster's requests are (mesh mTLS to a sidecar, DestinationRule tls).
    let mesh = endpoint.mesh_tls.load(std::sync::atomic::Ordering::Relaxed);
    let tls = cluster
        .tls
        .originate(mesh, identity, crate::tls::Purpose::Http1)
        .map_err(|e| Reason::Tls(e.to_string()))?;
    let timeout = cluster.model.policy.pool.connect_timeout;
    let failed = |error| Reason::Upstream {
        endpoint: endpoint.key.clone(),
        error,
    };
    let stream = pool::connect_secured(&endpoint.target, timeout, tls.as_deref())
        .await
        .map_err(failed)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(SendError::Connect(format!("HTTP/1.1 handshake: {e}"))))?;
    tokio::spawn(conn.with_upgrades());
    let upstream_req = build_request(&out, super::body::request_body(req), false);
    let mut resp = sender
        .send_request(upstream_req)
        .await
        .map_err(|e| failed(SendError::Reset(e.to_string())))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(
            parts,
            Body::upstream(body, None, Default::default()),
        ));
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
    Ok(Response::from_parts(parts, Body::empty()))
}

/// Answers `CONNECT host:port`: to a mesh service when the host is one (balanced over
/// its endpoints), otherwise straight to the named host (Istio's ALLOW_ANY).
pub async fn connect(
    snapshot: &Snapshot,
    req: Request<Incoming>,
    identity: Option<&crate::identity::IdentityCell>,
    telemetry: &std::sync::Arc<crate::telemetry::Telemetry>,
) -> Result<Response<Body>, LocalReply> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .ok_or(Reason::ConnectTarget)?;
    let port = super::headers::port_of(&authority).ok_or(Reason::ConnectTarget)?;
    let host = weft_model::host::authority_host(&authority).to_ascii_lowercase();
    let routed = tcp::service_named(snapshot, &host, port)
        .filter(|s| s.resolution != weft_model::service::Resolution::None);
    let decision = match routed {
        Some(service) => tcp::decide(snapshot, Some(service), None, None, port)
            .ok_or_else(|| Reason::NoHealthyUpstream(service.hostname.as_str().into()))?,
        None => tcp::TcpDecision {
            target: Target::Host(host, port),
            connect_timeout: std::time::Duration::from_secs(10),
            fault: None,
            cluster: None,
            endpoint: None,
        },
    };
    if !tcp::survives_fault(decision.fault.as_ref()).await {
        return Err(Reason::FaultReset.into());
    }
    let tls = tcp::originate(&decision, identity).map_err(|e| Reason::Tls(e.to_string()))?;
    let upstream =
        pool::connect_secured(&decision.target, decision.connect_timeout, tls.as_deref())
            .await
            .map_err(|error| Reason::Upstream {
                endpoint: decision.target.to_string(),
                error,
            })?;
    let idle = tcp::idle_timeout(&decision);
    // The tunnel is a TCP connection: counted in Istio's TCP metrics like any other.
    let telemetry = telemetry.clone();
    let peers = telemetry.tcp_peers(
        crate::telemetry::metrics::Reporter::Source,
        decision.cluster.as_deref(),
        decision.endpoint.as_deref(),
        None,
    );
    // A tunnel is the app's own outbound connection: the client side's metrics.
    let policy = snapshot.telemetry.clone();
    telemetry.metrics.tcp_opened(&peers, &policy.client.metrics);
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
        telemetry
            .metrics
            .tcp_closed(&peers, sent, received, &policy.client.metrics);
    });
    Ok(Response::new(Body::empty()))
}
