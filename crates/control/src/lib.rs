//! weft's control plane: the resource store ([`store`], persisted crash-safely) behind
//! the Kubernetes-style resource API ([`api`]) that `weft apply/get/delete` use; the
//! proxy stream ([`xds`]); the certificate authority ([`ca`]); the trace store
//! ([`traces`]); the metrics history collected from the proxies ([`history`]); and the
//! dashboard ([`dashboard`]).

pub mod api;
pub mod api_tls;
pub mod ca;
pub mod dashboard;
pub mod history;
pub mod jwks;
pub mod mesh;
pub mod metrics;
pub mod query;
pub mod store;
pub mod traces;
pub mod xds;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::store::{Store, StoreError};

/// How to run the control plane.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Where resources are persisted.
    pub state_dir: PathBuf,
    /// The resource API address (Istio's 15014).
    pub api: SocketAddr,
    /// The proxy stream address (Istio's 15010).
    pub xds: SocketAddr,
    /// How long a disconnected proxy's registered workload is kept.
    pub registration_grace: std::time::Duration,
    /// The OTLP/HTTP trace receiver (4318); `None`: no trace store.
    pub otlp: Option<SocketAddr>,
    /// Jaeger's query API (16686), over the trace store.
    pub query: Option<SocketAddr>,
    /// Most spans the trace store keeps.
    pub trace_spans: usize,
    /// About the most bytes the trace store keeps.
    pub trace_bytes: usize,
    /// The certificate authority; `None`: off.
    pub ca: Option<CaOptions>,
    /// The dashboard's address (15080); `None`: off.
    pub dashboard: Option<SocketAddr>,
    /// Host names the dashboard answers besides addresses and `localhost`.
    pub dashboard_hosts: Vec<String>,
    /// A Prometheus server the dashboard queries instead of the control plane's own
    /// metrics history (`http://host:port`).
    pub prometheus: Option<String>,
    /// The metrics history's bounds.
    pub history: history::HistoryLimits,
    /// The API's bearer token: writes (and reads from other hosts) need it; `None`: the
    /// API is open.
    pub api_token: Option<api::auth::ApiToken>,
    /// The operator's mesh config (`--mesh-config`); `None`: Istio's defaults. Either way
    /// proxies trace into the trace store unless it names a default tracing provider.
    pub mesh_config: Option<weft_api::mesh_config::MeshConfig>,
    /// How often the keys of RequestAuthentication `jwksUri`s are fetched again (istiod's
    /// 20 minutes by default).
    pub jwks_refresh: std::time::Duration,
}

impl ControlOptions {
    /// A control plane keeping its state in `state_dir`, its API and proxy stream on
    /// ephemeral loopback ports, without trace store or CA (for embedding and tests).
    pub fn ephemeral(state_dir: &std::path::Path) -> ControlOptions {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ControlOptions {
            state_dir: state_dir.to_path_buf(),
            api: any,
            xds: any,
            registration_grace: std::time::Duration::from_secs(1),
            otlp: None,
            query: None,
            trace_spans: 1000,
            trace_bytes: 1 << 20,
            ca: None,
            dashboard: None,
            dashboard_hosts: Vec::new(),
            prometheus: None,
            history: history::HistoryLimits::default(),
            api_token: None,
            mesh_config: None,
            jwks_refresh: jwks::DEFAULT_REFRESH,
        }
    }
}

/// Certificate authority settings.
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// The trust domain (`spiffe://<trust domain>/...`).
    pub trust_domain: String,
    /// Lifetime of the certificates issued.
    pub ttl: std::time::Duration,
    /// The operator's root, instead of one generated in `<state dir>/ca`.
    pub supplied: Option<ca::SuppliedRoot>,
    /// More roots the proxies trust (PEM), e.g. the previous root during a rotation.
    pub extra_roots: Vec<String>,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory could not be opened.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The certificate authority could not start.
    #[error("certificate authority: {0}")]
    Ca(#[from] ca::CaError),
    /// `--prometheus` is not a URL weft can query.
    #[error("{0}")]
    Prometheus(String),
    /// The API's TLS could not be set up.
    #[error("{0}")]
    ApiTls(#[from] api_tls::ApiTlsError),
    /// The mesh config cannot be used.
    #[error("mesh config: {0}")]
    MeshConfig(#[from] mesh::MeshConfigError),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// A started control plane.
#[derive(Debug)]
pub struct RunningControl {
    /// The API's bound address.
    pub api: SocketAddr,
    /// The proxy stream's bound address.
    pub xds: SocketAddr,
    /// Connected proxies.
    pub proxies: Arc<xds::Proxies>,
    /// The store.
    pub store: Arc<Store>,
    /// The trace store.
    pub traces: Arc<traces::TraceStore>,
    /// The certificate authority, when on.
    pub ca: Option<Arc<ca::Ca>>,
    /// The bound OTLP receiver address.
    pub otlp: Option<SocketAddr>,
    /// The bound Jaeger query address.
    pub query: Option<SocketAddr>,
    /// The bound dashboard address.
    pub dashboard: Option<SocketAddr>,
    /// The API's CA certificate (PEM), which its HTTPS certificate chains to.
    pub api_ca: String,
    /// The metrics history the dashboard reads (when no Prometheus is named).
    pub history: Arc<history::History>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningControl {
    /// Stops serving.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Opens the store and serves the API.
pub async fn start(opts: ControlOptions) -> Result<RunningControl, StartError> {
    let prometheus = match &opts.prometheus {
        Some(url) => Some(Arc::new(
            dashboard::source::Prometheus::new(url).map_err(StartError::Prometheus)?,
        )),
        None => None,
    };
    if let (Some(mesh), Some(ca)) = (&opts.mesh_config, &opts.ca) {
        mesh::check_trust_domain(mesh, &ca.trust_domain)?;
    }
    let store = Arc::new(Store::open(&opts.state_dir)?);
    let authority = match &opts.ca {
        Some(c) => Some(Arc::new(ca::Ca::open(
            &opts.state_dir.join("ca"),
            &c.trust_domain,
            c.ttl,
            c.supplied.as_ref(),
            c.extra_roots.clone(),
        )?)),
        None => None,
    };
    let listener = TcpListener::bind(opts.api)
        .await
        .map_err(|error| StartError::Bind {
            addr: opts.api,
            error,
        })?;
    let api = listener.local_addr().unwrap_or(opts.api);
    let tls = api_tls::ApiTls::open(&opts.state_dir.join("api-tls"), api.ip())?;
    let api_ca = tls.ca_pem.clone();
    let token = opts.api_token.clone().map(Arc::new);
    let proxies = Arc::new(xds::Proxies::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let xds_listener = TcpListener::bind(opts.xds)
        .await
        .map_err(|error| StartError::Bind {
            addr: opts.xds,
            error,
        })?;
    let xds_addr = xds_listener.local_addr().unwrap_or(opts.xds);
    let mut tasks = Vec::new();
    let trace_store = Arc::new(traces::TraceStore::new(opts.trace_spans, opts.trace_bytes));
    let otlp = match opts.otlp {
        Some(addr) => {
            let (bound, t) =
                serve_http(addr, trace_store.clone(), traces::receiver::handle).await?;
            tasks.push(t);
            Some(bound)
        }
        None => None,
    };
    let mesh_config = mesh::effective(opts.mesh_config.as_ref(), otlp)?;
    let service = weft_proto::discovery::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer::new(
        xds::Xds::new(
            store.clone(),
            proxies.clone(),
            stop_rx,
            opts.registration_grace,
            &mesh_config,
            jwks::JwksResolver::new(opts.jwks_refresh),
            authority.clone(),
        ),
    );
    let ca_service = authority.clone().map(ca::Service);
    let xds_task = tokio::spawn(async move {
        let incoming = futures_util::stream::unfold(xds_listener, |l| async move {
            let accepted = l.accept().await.map(|(s, _)| s);
            Some((accepted, l))
        });
        // Keepalive pings end the stream of a proxy that vanished without closing it,
        // so its registered workload leaves after the grace period.
        let certificates = ca_service
            .map(weft_proto::ca::certificate_service_server::CertificateServiceServer::new);
        if let Err(e) = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
            .add_service(service)
            .add_optional_service(certificates)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(error = %e, "proxy stream server stopped");
        }
    });
    let (served, known, signer) = (store.clone(), proxies.clone(), authority.clone());
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (store, proxies, ca) = (served.clone(), known.clone(), signer.clone());
            let (tls, token) = (tls.clone(), token.clone());
            let api_ca: Arc<str> = tls.ca_pem.as_str().into();
            tokio::spawn(async move {
                let stream = match tls.accept(stream).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "API connection: TLS handshake failed");
                        return;
                    }
                };
                let service = service_fn(move |req| {
                    let (store, proxies, ca) = (store.clone(), proxies.clone(), ca.clone());
                    let api_ca = api_ca.clone();
                    let allowed = api::auth::authorize(token.as_deref(), &req, peer.ip());
                    async move {
                        Ok::<_, std::convert::Infallible>(match allowed {
                            Ok(()) if req.uri().path() == "/ca/api" => api::api_ca(&api_ca),
                            Ok(()) => api::handle(store, proxies, ca, req).await,
                            Err(refused) => refused.response(),
                        })
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tasks.push(task);
    tasks.push(xds_task);
    let query = match opts.query {
        Some(addr) => {
            let (bound, t) = serve_http(addr, trace_store.clone(), traces::jaeger::handle).await?;
            tasks.push(t);
            Some(bound)
        }
        None => None,
    };
    let history = Arc::new(history::History::new(opts.history));
    let dashboard = match opts.dashboard {
        Some(addr) => {
            let metrics = match prometheus {
                Some(p) => dashboard::source::MetricsSource::Prometheus(p),
                None => {
                    tasks.push(tokio::spawn(history::scrape::run(
                        history.clone(),
                        proxies.clone(),
                        stop.subscribe(),
                    )));
                    dashboard::source::MetricsSource::Local(history.clone())
                }
            };
            let state = Arc::new(dashboard::Dashboard {
                store: store.clone(),
                proxies: proxies.clone(),
                traces: trace_store.clone(),
                metrics,
                allowed_hosts: opts.dashboard_hosts.clone(),
            });
            let (bound, t) = serve_http(addr, state, dashboard::handle).await?;
            tasks.push(t);
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%api, xds = %xds_addr, ?otlp, ?query, ?dashboard, state_dir = %opts.state_dir.display(), "control plane ready");
    Ok(RunningControl {
        api,
        xds: xds_addr,
        proxies,
        store,
        traces: trace_store,
        ca: authority,
        otlp,
        query,
        dashboard,
        api_ca,
        history,
        tasks,
        stop,
    })
}

/// Serves `handle` over HTTP/1.1 and HTTP/2 on `addr`.
async fn serve_http<T, F, Fut, B>(
    addr: SocketAddr,
    store: Arc<T>,
    handle: F,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, hyper::Request<hyper::body::Incoming>) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| StartError::Bind { addr, error })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, for instance: wait and go on serving.
                    tracing::warn!(%addr, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let store = store.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(store, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}
