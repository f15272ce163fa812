//! weft's data plane: the sidecar proxy.
//!
//! A connection arrives on a [`listener`]; its protocol is [`detect`]ed; HTTP goes
//! through [`http::proxy`] to [`http::inbound`] or [`http::outbound`] (route, fault, pick,
//! send with retries), TCP through [`tcp`].
//! Configuration comes from a [`source`] as an immutable [`snapshot`], swapped atomically.
//! [`balancer`] chooses endpoints and [`pool`] keeps upstream connections.

pub mod admin;
pub mod balancer;
pub mod circuit;
pub mod control_source;
pub mod detect;
pub mod flags;
pub mod health_check;
pub mod http;
pub mod identity;
pub mod io;
pub mod jwks;
pub mod listener;
pub mod orig_dst;
pub mod outlier;
pub mod pool;
pub mod ratelimit;
pub mod snapshot;
pub mod sni;
pub mod source;
pub mod target;
pub mod tcp;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use weft_model::ProxyScope;

use crate::http::call::{Direction, HttpSettings};
use crate::http::proxy::HttpProxy;
use crate::listener::ListenerSettings;
use crate::snapshot::SnapshotCell;
use crate::source::{ConfigError, FileSource};

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Istio YAML files or directories.
    pub config: Vec<PathBuf>,
    /// Outbound listener (Istio: 15001).
    pub outbound: SocketAddr,
    /// Inbound listener (Istio: 15006); used only with `app`.
    pub inbound: SocketAddr,
    /// Admin listener (Istio: 15000), loopback only.
    pub admin: SocketAddr,
    /// The local application the inbound listener fronts.
    pub app: Option<SocketAddr>,
    /// Gateway listeners: the Gateway servers of port `.0` are served at address `.1`.
    /// Only meaningful with a gateway scope (`scope.gateway`).
    pub gateways: Vec<(u16, SocketAddr)>,
    /// The proxy's namespace and workload labels.
    pub scope: ProxyScope,
    /// Protocol detection timeout.
    pub detect_timeout: Duration,
    /// Longest time in-flight requests get to finish on shutdown.
    pub drain: Duration,
    /// Get configuration from this control plane (`host:port`) instead of `config` files.
    pub control: Option<String>,
    /// The proxy's id on the control plane.
    pub id: String,
    /// The workload to register with the control plane.
    pub registration: Option<control_source::Registration>,
    /// Stats listener (Istio: 15020): `/stats/prometheus`, `/healthz/ready`.
    pub stats: Option<SocketAddr>,
    /// The workload this proxy serves, as telemetry labels name it (default: unknown
    /// name, the scope's namespace and labels).
    pub identity: Option<weft_model::service::WorkloadInfo>,
    /// Where spans go and how many are sampled; `None`: no tracing.
    pub tracing: Option<TracingOptions>,
    /// How request paths are normalized (Istio's `meshConfig.pathNormalization`).
    pub path_normalization: weft_model::authz::path::Normalization,
    /// Proxies in front whose `X-Forwarded-For` entries are trusted (Istio's
    /// `numTrustedProxies`, default 0).
    pub trusted_proxies: usize,
    /// The workload's bootstrap token for the control plane's CA; `None`: no certificate.
    pub ca_token: Option<String>,
    /// Access log destination and format; `None`: no access log.
    pub access_log: Option<(telemetry::access_log::Target, telemetry::access_log::Format)>,
    /// How often the keys of RequestAuthentication `jwksUri`s are fetched again.
    pub jwks_refresh: Duration,
    /// The external authorization providers CUSTOM policies may name, until a mesh
    /// config says otherwise.
    pub ext_authz: Vec<weft_model::ext_authz::ExtAuthzProvider>,
    /// Timeouts and limits of downstream connections (every listener).
    pub limits: listener::ConnectionLimits,
}

impl ProxyOptions {
    /// A proxy with every listener on an ephemeral loopback port, no configuration source
    /// yet and everything optional off (for embedding and tests; set what you need).
    pub fn ephemeral(id: &str) -> ProxyOptions {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ProxyOptions {
            config: Vec::new(),
            outbound: any,
            inbound: any,
            admin: any,
            app: None,
            gateways: Vec::new(),
            scope: ProxyScope::default(),
            detect_timeout: Duration::from_millis(100),
            drain: Duration::from_secs(1),
            control: None,
            id: id.to_string(),
            registration: None,
            stats: None,
            identity: None,
            tracing: None,
            path_normalization: Default::default(),
            trusted_proxies: 0,
            ca_token: None,
            access_log: None,
            ext_authz: Vec::new(),
            jwks_refresh: jwks::DEFAULT_REFRESH,
            limits: listener::ConnectionLimits::default(),
        }
    }
}

/// Tracing settings.
#[derive(Debug, Clone)]
pub struct TracingOptions {
    /// The OTLP/HTTP traces endpoint, `http://host:port/v1/traces`.
    pub endpoint: ::http::Uri,
    /// Percent of new traces sampled (Istio's default: 1); a caller's decision wins.
    pub sampling: f64,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The initial configuration was refused.
    #[error("configuration refused: {0}")]
    Config(#[from] ConfigError),
    /// The access log could not be opened.
    #[error("cannot open the access log {target:?}: {error}")]
    AccessLog {
        /// Where.
        target: telemetry::access_log::Target,
        /// Why.
        error: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// A started proxy.
#[derive(Debug)]
pub struct RunningProxy {
    /// Bound outbound address.
    pub outbound: SocketAddr,
    /// Bound inbound address, when an app is fronted.
    pub inbound: Option<SocketAddr>,
    /// Bound admin address.
    pub admin: SocketAddr,
    /// Bound gateway listeners (Gateway server port, address).
    pub gateways: Vec<(u16, SocketAddr)>,
    /// Bound stats listener.
    pub stats: Option<SocketAddr>,
    /// Metrics and the proxy's identity.
    pub telemetry: Arc<telemetry::Telemetry>,
    /// The workload certificate in force, when the CA issued one.
    pub identity: identity::IdentityCell,
    /// The configuration in force.
    pub snapshots: SnapshotCell,
    shutdown: Arc<watch::Sender<bool>>,
    tasks: JoinSet<()>,
}

/// Connections the kernel queues for a listener before they are accepted (Linux caps it at
/// `net.core.somaxconn`): a burst of clients waits in the queue instead of being reset.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let bound = (|| {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    })();
    bound.map_err(|error| StartError::Bind { addr, error })
}

/// Loads the configuration (refusing to start on an invalid one), binds the listeners and serves.
pub async fn start(opts: ProxyOptions) -> Result<RunningProxy, StartError> {
    let source = FileSource {
        paths: opts.config.clone(),
        scope: opts.scope.clone(),
        app: opts.app,
    };
    // From the control plane the proxy starts empty (version 0, not ready) until its first push.
    let (initial, fingerprint) = match &opts.control {
        None => {
            let (snapshot, fingerprint) = source.load(None)?;
            (snapshot, Some(fingerprint))
        }
        Some(_) => {
            let mesh = weft_model::Mesh::default();
            let waiting = crate::snapshot::Snapshot::build(
                mesh,
                opts.scope.clone(),
                0,
                "control plane (waiting)".into(),
                opts.app,
                None,
            );
            (waiting, None)
        }
    };
    let snapshots = SnapshotCell::new(initial);
    let (tx, rx) = watch::channel(false);
    let shutdown = Arc::new(tx);
    let mut tasks = JoinSet::new();

    let admin = admin::bind(opts.admin)
        .await
        .map_err(|error| StartError::Bind {
            addr: opts.admin,
            error,
        })?;
    let admin_addr = admin.local_addr().unwrap_or(opts.admin);
    let identity_cell: identity::IdentityCell = Default::default();
    tasks.spawn(admin::serve(
        admin,
        snapshots.clone(),
        shutdown.clone(),
        identity_cell.clone(),
        opts.ca_token.is_some(),
    ));
    if let (Some(control), Some(token)) = (&opts.control, &opts.ca_token) {
        tasks.spawn(identity::run(
            identity::IdentitySource {
                control: control.clone(),
                token: token.clone(),
                node_id: opts.id.clone(),
            },
            identity_cell.clone(),
            rx.clone(),
        ));
    }

    let identity = opts.identity.clone().unwrap_or_else(|| {
        weft_model::service::WorkloadInfo::new("", &opts.scope.namespace, "", &opts.scope.labels)
    });
    // Jaeger's service name is Istio's canonical service: `<app>.<namespace>`.
    let span_resource = vec![
        (
            "service.name",
            format!("{}.{}", identity.canonical_service, identity.namespace),
        ),
        ("istio.namespace", identity.namespace.clone()),
        ("istio.workload", identity.name.clone()),
        ("node_id", opts.id.clone()),
    ];
    let span_counters = Arc::new(telemetry::spans::SpanCounters::default());
    let tracer = opts.tracing.as_ref().map(|t| {
        telemetry::spans::Tracer::start(
            telemetry::spans::Exporter::new(t.endpoint.clone()),
            t.sampling,
            span_resource.clone(),
            span_counters.clone(),
        )
    });
    let access_log = match &opts.access_log {
        Some((target, format)) => Some(
            telemetry::access_log::AccessLog::start(target, *format).map_err(|error| {
                StartError::AccessLog {
                    target: target.clone(),
                    error,
                }
            })?,
        ),
        None => None,
    };
    let telemetry = Arc::new(telemetry::Telemetry::new(
        identity,
        opts.id.clone(),
        tracer,
        span_counters,
        access_log,
    ));
    let mut stats_addr = None;
    if let Some(addr) = opts.stats {
        let listener = bind(addr).await?;
        stats_addr = Some(listener.local_addr().unwrap_or(addr));
        tasks.spawn(telemetry::stats::serve(
            listener,
            snapshots.clone(),
            telemetry.clone(),
            rx.clone(),
        ));
    }
    let server_tls = Arc::new(tls::ServerTls::default());
    let gateway_tls = Arc::new(tls::GatewayTls::default());
    let listener_settings = |direction| ListenerSettings {
        direction,
        detect_timeout: opts.detect_timeout,
        telemetry: telemetry.clone(),
        identity: Some(identity_cell.clone()),
        tls: server_tls.clone(),
        gateway_tls: gateway_tls.clone(),
        limits: opts.limits,
    };
    let jwks_cache = jwks::JwksCache::new(opts.jwks_refresh);
    let ext_authz = http::ext_authz::Providers::new(opts.ext_authz.clone());
    let http_proxy = |direction| {
        Arc::new(HttpProxy::new(
            snapshots.clone(),
            direction,
            HttpSettings {
                path_normalization: opts.path_normalization,
                trusted_proxies: opts.trusted_proxies,
                identity: Some(identity_cell.clone()),
                jwks: jwks_cache.clone(),
                ext_authz: ext_authz.clone(),
                ..HttpSettings::default()
            },
            telemetry.clone(),
        ))
    };

    let outbound = bind(opts.outbound).await?;
    let outbound_addr = outbound.local_addr().unwrap_or(opts.outbound);
    let http = http_proxy(Direction::Outbound);
    let settings = listener_settings(Direction::Outbound);
    tasks.spawn(listener::serve(
        outbound,
        snapshots.clone(),
        http,
        settings,
        rx.clone(),
        opts.drain,
    ));

    let mut inbound_addr = None;
    if opts.app.is_some() {
        let inbound = bind(opts.inbound).await?;
        inbound_addr = Some(inbound.local_addr().unwrap_or(opts.inbound));
        let http = http_proxy(Direction::Inbound);
        let settings = listener_settings(Direction::Inbound);
        tasks.spawn(listener::serve(
            inbound,
            snapshots.clone(),
            http,
            settings,
            rx.clone(),
            opts.drain,
        ));
    }
    let mut gateway_addrs = Vec::new();
    for (port, addr) in &opts.gateways {
        let listener = bind(*addr).await?;
        gateway_addrs.push((*port, listener.local_addr().unwrap_or(*addr)));
        let direction = Direction::Gateway { port: *port };
        let http = http_proxy(direction);
        let settings = listener_settings(direction);
        tasks.spawn(listener::serve(
            listener,
            snapshots.clone(),
            http,
            settings,
            rx.clone(),
            opts.drain,
        ));
    }
    tasks.spawn(health_check::run(
        snapshots.clone(),
        identity_cell.clone(),
        rx.clone(),
    ));
    match (&opts.control, fingerprint) {
        (Some(address), _) => {
            let control = control_source::ControlSource {
                token: opts.ca_token.clone(),
                address: address.clone(),
                id: opts.id.clone(),
                scope: opts.scope.clone(),
                app: opts.app,
                registration: opts.registration.clone().map(|mut r| {
                    r.mesh_tls = opts.ca_token.is_some();
                    r
                }),
                admin: Some(admin_addr),
                stats: stats_addr,
                ext_authz: ext_authz.clone(),
                mesh_telemetry: Arc::new(telemetry::mesh::MeshTelemetry::new(
                    telemetry.clone(),
                    opts.tracing.is_some(),
                    opts.access_log.is_some(),
                    span_resource,
                )),
            };
            tasks.spawn(control.run(snapshots.clone(), rx));
        }
        (None, Some(fingerprint)) => {
            tasks.spawn(source.watch(snapshots.clone(), rx, fingerprint));
        }
        (None, None) => {}
    }
    let version = snapshots.load().version;
    tracing::info!(outbound = %outbound_addr, inbound = ?inbound_addr, gateways = ?gateway_addrs, stats = ?stats_addr, admin = %admin_addr, version, "proxy ready");
    Ok(RunningProxy {
        outbound: outbound_addr,
        inbound: inbound_addr,
        admin: admin_addr,
        gateways: gateway_addrs,
        stats: stats_addr,
        telemetry,
        identity: identity_cell,
        snapshots,
        shutdown,
        tasks,
    })
}

impl RunningProxy {
    /// Starts draining: listeners stop accepting and in-flight requests get the drain period.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves when a drain has been requested (signal or `/quitquitquit`).
    pub async fn drain_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until every listener has drained.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}
