//! Opaque TCP and unterminated TLS. A connection is routed by VirtualService `tls`
//! rules (SNI) or `tcp` rules (destination service, port, subnet), falls back to the
//! destination service's endpoints, and otherwise goes to its original destination
//! (Istio's ALLOW_ANY). weft's TCP fault extension can reset or delay connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use weft_model::host;
use weft_model::l4::TcpFault;
use weft_model::outbound::Outbound;
use weft_model::route::MILLION;
use weft_model::service::Service;

use crate::flags::ResponseFlags;
use crate::pool;
use crate::snapshot::{ClusterRuntime, Snapshot};
use crate::target::Target;

/// Connect timeout for destinations outside the registry.
const PASSTHROUGH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle timeout for connections outside the registry (Istio's default, 1h).
const PASSTHROUGH_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where one connection goes.
#[derive(Debug, Clone)]
pub struct TcpDecision {
    /// The endpoint.
    pub target: Target,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// The cluster, for its connection limits and counters (none for passthrough).
    pub cluster: Option<Arc<ClusterRuntime>>,
    /// Fault to apply.
    pub fault: Option<TcpFault>,
    /// The endpoint chosen (none for passthrough), for telemetry.
    pub endpoint: Option<Arc<crate::snapshot::Endpoint>>,
}

/// The service named `name` (any alias visible from the proxy's namespace) with `port`.
pub fn service_named<'s>(snapshot: &'s Snapshot, name: &str, port: u16) -> Option<&'s Service> {
    snapshot.mesh.services.values().find(|s| {
        s.port(port).is_some()
            && host::aliases(&s.hostname, &snapshot.scope.namespace)
                .iter()
                .any(|a| a == name)
    })
}

/// The service whose virtual IP and port a connection was sent to.
pub fn service_at(snapshot: &Snapshot, dst: SocketAddr) -> Option<&Service> {
    // `addresses` holds IPs or CIDR blocks.
    let covers = |a: &String| match a.parse::<ipnet::IpNet>() {
        Ok(net) => net.contains(&dst.ip()),
        Err(_) => a.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == dst.ip()),
    };
    snapshot
        .mesh
        .services
        .values()
        .find(|s| s.port(dst.port()).is_some() && s.addresses.iter().any(covers))
}

/// The default cluster of `service` on `port`.
pub fn default_cluster<'s>(
    snapshot: &'s Snapshot,
    service: &Service,
    port: u16,
) -> Option<&'s Arc<ClusterRuntime>> {
    snapshot.cluster(&weft_model::cluster_name(port, None, &service.hostname))
}

/// Decides where a connection goes. `service` is the destination service when known
/// (virtual IP or CONNECT authority), `sni` the TLS server name when the client sent one.
pub fn decide(
    snapshot: &Snapshot,
    service: Option<&Service>,
    sni: Option<&str>,
    original: Option<SocketAddr>,
    port: u16,
) -> Option<TcpDecision> {
    let dst_ip = original.map(|a| a.ip());
    if let Some(sni) = sni {
        if let Some(r) = snapshot.mesh.l4.tls(sni, dst_ip, port) {
            return route(snapshot, r, port);
        }
        if let Some(named) = service_named(snapshot, sni, port) {
            return endpoint_of(default_cluster(snapshot, named, port)?, None);
        }
    }
    // `resolution: NONE` means "connect where the app asked".
    let service = service.filter(|s| s.resolution != weft_model::service::Resolution::None);
    if let Some(service) = service {
        if let Some(r) = snapshot.mesh.l4.tcp(&service.hostname, dst_ip, port) {
            return route(snapshot, r, port);
        }
        return endpoint_of(default_cluster(snapshot, service, port)?, None);
    }
    let dst = original?;
    match &snapshot.mesh.outbound {
        Outbound::AllowAny => {}
        Outbound::RegistryOnly => {
            tracing::debug!(%dst, "connection outside the registry closed: REGISTRY_ONLY (BlackHoleCluster)");
            return None;
        }
        Outbound::EgressProxy(name) => return endpoint_of(snapshot.cluster(name)?, None),
    }
    Some(TcpDecision {
        target: Target::Socket(dst),
        connect_timeout: PASSTHROUGH_CONNECT_TIMEOUT,
        cluster: None,
        fault: None,
        endpoint: None,
    })
}

/// Where a connection matched by `route` goes: one of its weighted destinations
/// (port 0 there standing for the listener's `port`).
pub fn route(
    snapshot: &Snapshot,
    route: &weft_model::l4::L4Route,
    port: u16,
) -> Option<TcpDecision> {
    let chosen = route
        .clusters
        .pick(fastrand::u32(..route.clusters.total.max(1)))?;
    if let Some(why) = &chosen.unresolved {
        // A Gateway API backend that does not resolve: its share of connections refused.
        tracing::debug!(%why, "TCP route to a backend that does not resolve");
        return None;
    }
    // A destination without a port (and no port to infer) means the listener's port.
    let name = match chosen.cluster.strip_prefix("outbound|0|") {
        Some(rest) => std::borrow::Cow::Owned(format!("outbound|{port}|{rest}")),
        None => std::borrow::Cow::Borrowed(&*chosen.cluster),
    };
    let Some(cluster) = snapshot.cluster(&name) else {
        tracing::debug!(cluster = %chosen.cluster, "TCP route to a cluster that does not exist (NC)");
        return None;
    };
    endpoint_of(cluster, route.fault.clone())
}

/// One endpoint of `cluster`, with `fault` to apply.
pub fn endpoint_of(cluster: &Arc<ClusterRuntime>, fault: Option<TcpFault>) -> Option<TcpDecision> {
    let endpoint = cluster.pick_any()?;
    Some(TcpDecision {
        target: endpoint.target.clone(),
        connect_timeout: cluster.model.policy.pool.connect_timeout,
        fault,
        cluster: Some(cluster.clone()),
        endpoint: Some(endpoint.clone()),
    })
}

/// Applies the fault extension: waits out an injected delay; false when the
/// connection must be reset instead.
pub async fn survives_fault(fault: Option<&TcpFault>) -> bool {
    let Some(f) = fault else { return true };
    if f.abort_per_million > 0 && fastrand::u32(..MILLION) < f.abort_per_million {
        return false;
    }
    if let Some((delay, share)) = f.delay {
        if share > 0 && fastrand::u32(..MILLION) < share {
            tokio::time::sleep(delay).await;
        }
    }
    true
}

/// A downstream connection: plain TCP, or mesh mTLS the inbound side terminated.
pub trait TcpDownstream: AsyncRead + AsyncWrite + Unpin {
    /// The TCP connection underneath.
    fn tcp(&self) -> &tokio::net::TcpStream;
}

impl TcpDownstream for tokio::net::TcpStream {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self
    }
}

impl TcpDownstream for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self.get_ref().0
    }
}

impl TcpDownstream for crate::io::Rewound<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self.get_ref().get_ref().0
    }
}

/// Which side a TCP connection is on, and the Telemetry policy of the configuration it
/// was decided under.
#[derive(Debug, Clone)]
pub struct TcpSide {
    /// Source (outbound) or destination (inbound).
    pub reporter: crate::telemetry::metrics::Reporter,
    /// The configuration's Telemetry decisions.
    pub policy: Arc<crate::telemetry::policy::TelemetryPolicy>,
}

/// Proxies a TCP connection per `decision`, applying its fault and the cluster's
/// `maxConnections` (over the limit the connection is reset: `UO`). Toward a mesh
/// endpoint the connection is carried in mesh mTLS (`identity` is the certificate).
pub async fn proxy_stream<S: TcpDownstream>(
    downstream: S,
    decision: TcpDecision,
    telemetry: &crate::telemetry::Telemetry,
    side: TcpSide,
    identity: Option<&crate::identity::IdentityCell>,
    stop: impl std::future::Future<Output = ()>,
    caller: Option<&str>,
) {
    let (_slot, _open) = match &decision.cluster {
        Some(c) => match crate::circuit::try_tcp_slot(&c.state, &c.limits) {
            Ok(slot) => (slot, Some(crate::circuit::hold_tcp(&c.state))),
            Err(_) => {
                tracing::debug!(cluster = %c.model.name, "TCP connection over maxConnections (UO)");
                let _ = downstream.tcp().set_zero_linger();
                return;
            }
        },
        None => (None, None),
    };
    if !survives_fault(decision.fault.as_ref()).await {
        // SO_LINGER 0 makes close() send a RST, as a crashed peer would.
        let _ = downstream.tcp().set_zero_linger();
        return;
    }
    let tls = match originate(&decision, identity) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::warn!(target = %decision.target, "TCP connection closed: TLS error: {e}");
            return;
        }
    };
    let idle = idle_timeout(&decision);
    let reporter = side.reporter;
    let peers = telemetry.tcp_peers(
        reporter,
        decision.cluster.as_deref(),
        decision.endpoint.as_deref(),
        caller,
    );
    let side_policy = side
        .policy
        .side(reporter == crate::telemetry::metrics::Reporter::Source);
    telemetry.metrics.tcp_opened(&peers, &side_policy.metrics);
    let started = (std::time::SystemTime::now(), tokio::time::Instant::now());
    let addresses = (
        downstream.tcp().peer_addr().ok(),
        downstream.tcp().local_addr().ok(),
    );
    let target = decision.target.to_string();
    let (received, sent, connected) = proxy_counted(
        downstream,
        decision.target,
        decision.connect_timeout,
        idle,
        tls.as_deref(),
        stop,
    )
    .await;
    telemetry
        .metrics
        .tcp_closed(&peers, sent, received, &side_policy.metrics);
    let sinks = telemetry.sinks.load();
    let log_policy = side_policy;
    // A filter reads a request's attributes: a connection has none to satisfy it (the
    // evaluation fails, and the line is not written there).
    let mut written: Vec<&Arc<crate::telemetry::access_log::AccessLog>> = Vec::new();
    for (log, _) in sinks.logs_for(log_policy).filter(|(_, f)| f.is_none()) {
        if written.iter().any(|w| Arc::ptr_eq(w, log)) {
            continue;
        }
        written.push(log);
        let show =
            |a: Option<std::net::SocketAddr>| a.map_or_else(|| "-".into(), |a| a.to_string());
        log.connection(&crate::telemetry::access_log::Connection {
            start: started.0,
            duration: started.1.elapsed(),
            received,
            sent,
            upstream: &target,
            cluster: decision
                .cluster
                .as_ref()
                .map_or("PassthroughCluster", |c| &c.model.name),
            peer: &show(addresses.0),
            local: &show(addresses.1),
            flags: if connected {
                ResponseFlags::NONE
            } else {
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE
            },
        });
    }
}

/// The TLS a connection per `decision` is carried in (mesh mTLS to a mesh endpoint, or
/// the DestinationRule's origination); `None` for plaintext.
pub fn originate(
    decision: &TcpDecision,
    identity: Option<&crate::identity::IdentityCell>,
) -> Result<Option<Arc<crate::tls::Originate>>, String> {
    match (&decision.cluster, &decision.endpoint) {
        (Some(c), Some(e)) => c.tls.originate(
            e.mesh_tls.load(std::sync::atomic::Ordering::Relaxed),
            identity,
            crate::tls::Purpose::Tcp,
        ),
        _ => Ok(None),
    }
}

/// Where inbound TCP goes: the local application.
pub fn inbound(snapshot: &Snapshot) -> Option<TcpDecision> {
    endpoint_of(snapshot.inbound.as_ref()?, None)
}

/// Copies bytes between `downstream` and `target` (secured with `tls`) until both sides
/// close, nothing has moved for `idle_timeout` (`connectionPool.tcp.idleTimeout`, default
/// 1h), or `stop` resolves; returns the bytes received from and sent to the downstream,
/// and whether the upstream was reached.
async fn proxy_counted<S: AsyncRead + AsyncWrite + Unpin>(
    downstream: S,
    target: Target,
    connect_timeout: Duration,
    idle_timeout: Duration,
    tls: Option<&crate::tls::Originate>,
    stop: impl std::future::Future<Output = ()>,
) -> (u64, u64, bool) {
    let upstream = match pool::connect_secured(&target, connect_timeout, tls).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%target, error = %e, "TCP upstream connect failed (UF)");
            return (0, 0, false);
        }
    };
    let (received, sent) = splice(downstream, upstream, idle_timeout, &target, stop).await;
    (received, sent, true)
}

/// The idle timeout of a decision's cluster (Istio's 1h default otherwise).
pub fn idle_timeout(decision: &TcpDecision) -> Duration {
    decision
        .cluster
        .as_ref()
        .map_or(PASSTHROUGH_IDLE_TIMEOUT, |c| {
            c.model.policy.pool.tcp_idle_timeout
        })
}

/// Copies between two connected streams until both close or they stay idle for `idle_timeout`.
/// Copies both ways until both sides close (or idle); returns the bytes read from the
/// downstream and from the upstream.
pub async fn splice<D, U>(
    downstream: D,
    upstream: U,
    idle_timeout: Duration,
    target: &Target,
    stop: impl std::future::Future<Output = ()>,
) -> (u64, u64)
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(std::sync::atomic::AtomicU64::new(crate::outlier::now_ms()));
    let mut down = Active {
        inner: downstream,
        activity: activity.clone(),
        read: 0,
    };
    let mut up = Active {
        inner: upstream,
        activity: activity.clone(),
        read: 0,
    };
    let idle_ms = idle_timeout.as_millis() as u64;
    let watchdog = async {
        loop {
            let last = activity.load(std::sync::atomic::Ordering::Relaxed);
            let wait = (last + idle_ms).saturating_sub(crate::outlier::now_ms());
            if wait == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    };
    tokio::select! {
        copied = copy_bidirectional(&mut down, &mut up) => {
            if let Err(e) = copied {
                tracing::debug!(%target, error = %e, "TCP connection ended");
            }
        }
        _ = watchdog => tracing::debug!(%target, ?idle_timeout, "TCP connection idle too long; closed"),
        _ = stop => tracing::debug!(%target, "TCP connection closed: the configuration no longer allows it"),
    }
    (down.read, up.read)
}

/// A stream that records when bytes last moved.
struct Active<S> {
    inner: S,
    activity: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes read from this side.
    read: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read += (buf.filled().len() - before) as u64;
            self.activity.store(
                crate::outlier::now_ms(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
