//! Listeners: accept, find the original destination, detect the protocol, and hand
//! the connection to the HTTP proxy or the TCP proxy. Draining stops accepting and
//! lets connections finish (HTTP/1.1 gets `Connection: close`, HTTP/2 a GOAWAY).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::detect::{Detected, detect};
use crate::http::call::{Direction, Downstream};
use crate::http::proxy::HttpProxy;
use crate::snapshot::SnapshotCell;
use crate::{orig_dst, tcp};
use weft_model::peer_authn::Mode;

mod gateway;
mod http1;
pub mod limits;

pub use http1::HAND_BACK_AFTER;
pub use limits::ConnectionLimits;

/// The longest an inbound mTLS handshake may take (a stalled client holds nothing longer).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One listener's settings.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Outbound or inbound.
    pub direction: Direction,
    /// How long to wait for a client's first bytes before treating it as TCP.
    pub detect_timeout: Duration,
    /// Metrics.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The workload certificate: inbound, mesh mTLS is terminated with it; outbound, TCP
    /// to mesh endpoints is carried in mesh mTLS with it.
    pub identity: Option<crate::identity::IdentityCell>,
    /// The TLS server configuration, rebuilt when the certificate changes.
    pub tls: Arc<crate::tls::ServerTls>,
    /// A gateway's TLS server configurations (its Gateway servers' certificates).
    pub gateway_tls: Arc<crate::tls::GatewayTls>,
    /// Timeouts and limits of downstream connections.
    pub limits: ConnectionLimits,
}

/// Accepts connections on `listener` until `shutdown` turns true, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    snapshots: SnapshotCell,
    http: Arc<HttpProxy>,
    settings: ListenerSettings,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let settings = Arc::new(settings);
    let slots = settings
        .limits
        .max_connections
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over the limit, a new connection is closed at once; those open go on.
                    let slot = match &slots {
                        Some(s) => match s.clone().try_acquire_owned() {
                            Ok(permit) => Some(permit),
                            Err(_) => {
                                settings.telemetry.metrics.connection_overflow();
                                tracing::debug!(%peer, "connection limit reached: closed");
                                drop(stream);
                                continue;
                            }
                        },
                        None => None,
                    };
                    let conn = connection(stream, peer, snapshots.clone(), http.clone(), settings.clone(), &graceful, shutdown.clone());
                    tokio::spawn(async move {
                        conn.await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(?drain, "drain period over; closing remaining connections");
    }
}

fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    snapshots: SnapshotCell,
    http: Arc<HttpProxy>,
    settings: Arc<ListenerSettings>,
    graceful: &GracefulShutdown,
    drain: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let watcher = graceful.watcher();
    async move {
        let _ = stream.set_nodelay(true);
        // A gateway's clients dial the gateway itself; nothing is redirected to it.
        let original_dst = match settings.direction {
            Direction::Gateway { .. } => None,
            _ => orig_dst::original_dst(&stream),
        };
        let snapshot = snapshots.load();
        let reporter = match settings.direction {
            Direction::Inbound => crate::telemetry::metrics::Reporter::Destination,
            _ => crate::telemetry::metrics::Reporter::Source,
        };
        // A gateway port of TLS or TCP servers is served by its servers.
        if let Direction::Gateway { port } = settings.direction {
            if !gateway::served_as_http(snapshot.mesh.gateway.get(&port)) {
                let accepted = Accepted {
                    peer,
                    original_dst,
                    snapshot,
                    http,
                    settings,
                    watcher,
                    reporter,
                };
                return Box::pin(gateway::serve(stream, port, accepted)).await;
            }
        }
        // A port declared TCP skips detection: the client may wait for the server to speak.
        let service = original_dst.and_then(|dst| tcp::service_at(&snapshot, dst));
        // Inbound always looks: a sidecar's mTLS starts with its ClientHello.
        let declared_tcp = match (service, original_dst) {
            (Some(s), Some(dst)) if settings.direction != Direction::Inbound => {
                s.port(dst.port()).is_some_and(|p| !p.protocol.is_http())
            }
            _ => false,
        };
        let detected = if declared_tcp {
            Detected::Tcp
        } else {
            detect(&stream, settings.detect_timeout).await
        };
        // A ClientHello's SNI (for `tls` routes and `connection.sni`) and ALPN.
        let hello = match detected {
            Detected::Tls => peek_hello(&stream, settings.detect_timeout).await,
            _ => None,
        };
        // Inbound, the workload port: the app's port, where every inbound connection is
        // delivered whatever port was dialled; PeerAuthentication and authorization decide
        // for it, so dialling another port changes nothing.
        let workload_port = snapshot
            .inbound
            .as_ref()
            .map(|c| c.model.port)
            .or_else(|| original_dst.map(|d| d.port()))
            .unwrap_or(0);
        if settings.direction == Direction::Inbound {
            let port = workload_port;
            let mode = snapshot.mesh.peer_authn.mode_on(port);
            // Mesh mTLS: a sidecar's ClientHello (ALPN `istio*`), unless DISABLE passes it through.
            let mesh_hello = hello.as_deref().is_some_and(|h| {
                crate::sni::alpn(h)
                    .iter()
                    .any(|p| crate::tls::MESH_ALPN.contains(p))
            });
            let server_tls = match &settings.identity {
                Some(cell) if mesh_hello && mode != Mode::Disable => settings.tls.get(cell),
                _ => None,
            };
            if let Some(config) = server_tls {
                let accepted = Accepted {
                    peer,
                    original_dst,
                    snapshot,
                    http,
                    settings,
                    watcher,
                    reporter,
                };
                return Box::pin(serve_mesh_tls(stream, config, accepted, port, mode)).await;
            }
            if mode == Mode::Strict {
                tracing::debug!(%peer, port, "plaintext connection refused: PeerAuthentication STRICT");
                settings.telemetry.metrics.strict_refused();
                return;
            }
        }
        let sni = hello.as_deref().and_then(crate::sni::server_name);
        // A gateway's HTTP ports serve HTTP only: whatever else a client sends is answered
        // as a malformed HTTP/1 request (400), as Envoy's HTTP listener answers it.
        let looks_http1 = detected == Detected::Http1;
        let detected = match (settings.direction, detected) {
            (Direction::Gateway { .. }, Detected::Tcp | Detected::Tls) => Detected::Http1,
            (_, d) => d,
        };
        match detected {
            Detected::Http1 => {
                let down = Downstream {
                    peer,
                    original_dst,
                    tls: false,
                };
                let limits = settings.limits;
                // Boxed: until the protocol is known the task holds only detection's state.
                Box::pin(http1::serve(stream, down, http, drain, limits, looks_http1)).await;
            }
            Detected::Http2 => {
                let down = Downstream {
                    peer,
                    original_dst,
                    tls: false,
                };
                let limits = settings.limits;
                Box::pin(serve_http(stream, down, None, http, true, watcher, limits)).await;
            }
            Detected::Tcp | Detected::Tls => {
                let decision = match settings.direction {
                    Direction::Inbound => {
                        if !crate::http::authorize::check_tcp(
                            &snapshot,
                            peer.ip(),
                            original_dst,
                            workload_port,
                            sni.as_deref(),
                            None,
                        ) {
                            tracing::debug!(%peer, "TCP connection denied by AuthorizationPolicy");
                            return;
                        }
                        tcp::inbound(&snapshot)
                    }
                    // Gateway ports of TCP and TLS servers are served above.
                    Direction::Gateway { .. } => None,
                    Direction::Outbound => {
                        let port = original_dst.map_or(0, |d| d.port());
                        tcp::decide(&snapshot, service, sni.as_deref(), original_dst, port)
                    }
                };
                match decision {
                    Some(d) => {
                        let identity = settings.identity.as_ref();
                        // A plaintext inbound connection ends when STRICT comes to apply.
                        let port = workload_port;
                        let inbound = settings.direction == Direction::Inbound;
                        let telemetry = settings.telemetry.clone();
                        let stop = async {
                            if !inbound {
                                return std::future::pending().await;
                            }
                            snapshots
                                .until(|s| s.mesh.peer_authn.mode_on(port) == Mode::Strict)
                                .await;
                            telemetry.metrics.strict_refused();
                        };
                        let telemetry = &settings.telemetry;
                        let side = tcp::TcpSide {
                            reporter,
                            policy: snapshot.telemetry.clone(),
                        };
                        Box::pin(tcp::proxy_stream(
                            stream, d, telemetry, side, identity, stop, None,
                        ))
                        .await
                    }
                    None => tracing::debug!(%peer, "TCP connection with no destination closed"),
                }
            }
        }
    }
}

/// Answers a first request whose head Envoy's codec refuses as Envoy does, and closes
/// (nothing after it on the connection is trusted).
async fn refuse_head(mut stream: TcpStream, refusal: crate::detect::HeadRefusal) {
    use tokio::io::AsyncWriteExt;
    let (status, body) = match refusal {
        crate::detect::HeadRefusal::AmbiguousLength => (
            "400 Bad Request",
            "both Content-Length and Transfer-Encoding: the request's length is ambiguous\n",
        ),
        crate::detect::HeadRefusal::UnsupportedTransferEncoding => (
            "501 Not Implemented",
            "Transfer-Encoding other than chunked is not supported\n",
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-weft-response-flags: DPE\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read what the client already sent, so closing does not reset the reply away.
    let mut sink = [0u8; 4096];
    let drain = async {
        while matches!(
            tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await,
            Ok(n) if n > 0
        ) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// What one accepted connection carries along to the code that serves it.
struct Accepted {
    peer: SocketAddr,
    original_dst: Option<SocketAddr>,
    snapshot: Arc<crate::snapshot::Snapshot>,
    http: Arc<HttpProxy>,
    settings: Arc<ListenerSettings>,
    watcher: hyper_util::server::graceful::Watcher,
    reporter: crate::telemetry::metrics::Reporter,
}

/// Terminates a mesh peer's mTLS and serves what it carries: HTTP by its ALPN, else what
/// the first bytes inside say, for the workload `port` under PeerAuthentication `mode`.
async fn serve_mesh_tls(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    a: Accepted,
    port: u16,
    mode: Mode,
) {
    let reporter = a.reporter;
    let limits = a.settings.limits;
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(peer = %a.peer, error = %e, "inbound mTLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %a.peer, "inbound mTLS handshake timed out");
            return;
        }
    };
    let session = tls.get_ref().1;
    let principal: Option<Arc<str>> = session
        .peer_certificates()
        .and_then(crate::tls::peer_principal)
        .map(Arc::from);
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let down = Downstream {
        peer: a.peer,
        original_dst: a.original_dst,
        tls: false,
    };
    match alpn.as_deref() {
        Some(crate::tls::ALPN_H2) => {
            serve_http(tls, down, principal, a.http, true, a.watcher, limits).await
        }
        Some(crate::tls::ALPN_HTTP1) => {
            serve_http(tls, down, principal, a.http, false, a.watcher, limits).await
        }
        // `istio` (TCP): what the bytes inside say decides, as on plaintext,
        // so HTTP never escapes HTTP's policies by asking for a tunnel.
        _ => {
            let (inner, seen) = crate::io::detect_read(&mut tls, a.settings.detect_timeout).await;
            let tls = crate::io::Rewound::new(seen, tls);
            // A mesh peer always has an identity; without one STRICT holds.
            if principal.is_none() && mode == Mode::Strict {
                a.settings.telemetry.metrics.strict_refused();
                return;
            }
            if matches!(inner, Detected::Http1 | Detected::Http2) {
                let h2 = inner == Detected::Http2;
                serve_http(tls, down, principal, a.http, h2, a.watcher, limits).await;
                return;
            }
            if !crate::http::authorize::check_tcp(
                &a.snapshot,
                a.peer.ip(),
                a.original_dst,
                port,
                None,
                principal.as_deref(),
            ) {
                tracing::debug!(peer = %a.peer, "TCP connection denied by AuthorizationPolicy");
                return;
            }
            if let Some(d) = tcp::inbound(&a.snapshot) {
                let stop = std::future::pending();
                let caller = principal.as_deref();
                let telemetry = &a.settings.telemetry;
                let side = tcp::TcpSide {
                    reporter,
                    policy: a.snapshot.telemetry.clone(),
                };
                tcp::proxy_stream(tls, d, telemetry, side, None, stop, caller).await
            }
        }
    }
}

/// Serves HTTP on `io` (the protocol is known, so hyper need not sniff it again), within
/// the listener's `limits`.
async fn serve_http<I>(
    io: I,
    down: Downstream,
    principal: Option<Arc<str>>,
    http: Arc<HttpProxy>,
    h2: bool,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ConnectionLimits,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = down.peer;
    let telemetry = http.telemetry().clone();
    // HTTP/1 request heads are timed here, from their first byte (hyper's own timer
    // would also cut idle keep-alive connections).
    let activity = limits::Activity::new(!h2);
    let marks = activity.clone();
    let handle = move |req| {
        let (http, principal, marks) = (http.clone(), principal.clone(), marks.clone());
        async move {
            marks.request_started();
            let resp = http.handle(down, principal, req).await;
            marks.request_answered(
                resp.status() == http::StatusCode::SWITCHING_PROTOCOLS,
                false,
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    };
    let io = TokioIo::new(limits::Active::new(io, activity.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits::MAX_REQUEST_HEADER_BYTES);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(limits::MAX_REQUEST_HEADER_BYTES as u32)
        .max_concurrent_streams(limits::MAX_CONCURRENT_STREAMS);
    // One connection served with `service`, cut by the listener's limits.
    macro_rules! serve_with {
        ($builder:expr, $service:expr) => {{
            let builder = $builder;
            let conn = builder.serve_connection_with_upgrades(io, $service);
            let served = watcher.watch(conn.into_owned());
            let mut result = None;
            let cut = limits::watch(async { result = Some(served.await) }, &activity, limits).await;
            (cut, result)
        }};
    }
    // HTTP/2 runs each stream as a task of its own, which tokio moves whole: with the
    // request's (large) future boxed the task stays small (bench/callgrind: half the
    // instructions per request). HTTP/1 keeps the future inline, where boxing would only
    // add a copy of it per request.
    let (cut, result) = if h2 {
        let service = service_fn(move |req| Box::pin(handle(req)));
        serve_with!(builder.http2_only(), service)
    } else {
        serve_with!(builder.http1_only(), service_fn(handle))
    };
    if let Some(cut) = cut {
        report_cut(&telemetry, peer, cut, &limits);
    }
    if let Some(Err(e)) = result {
        tracing::debug!(%peer, error = %e, "downstream connection ended");
    }
}

/// Counts and logs a connection the listener's `limits` cut.
fn report_cut(
    telemetry: &crate::telemetry::Telemetry,
    peer: SocketAddr,
    cut: limits::Cut,
    limits: &ConnectionLimits,
) {
    match cut {
        limits::Cut::Idle => {
            telemetry.metrics.idle_timeout();
            tracing::debug!(%peer, idle = ?limits.idle_timeout, "idle downstream connection closed");
        }
        limits::Cut::SlowHead => {
            telemetry.metrics.header_timeout();
            tracing::debug!(%peer, timeout = ?limits.header_timeout, "request headers too slow: connection closed");
        }
    }
}

/// Peeks until the ClientHello's first record is buffered (or `timeout`) and returns it.
async fn peek_hello(stream: &TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if crate::sni::client_hello(&buf[..n]) != crate::sni::Hello::Incomplete {
            buf.truncate(n);
            return Some(buf);
        }
        if n == buf.len() || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
