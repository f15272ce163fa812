//! `weft proxy`: the sidecar proxy, configured from Istio YAML files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use weft_model::ProxyScope;
use weft_proxy::ProxyOptions;

/// Arguments of `weft proxy`.
#[derive(clap::Args)]
pub struct Args {
    /// Istio YAML files or directories (read recursively). Watched: changes and SIGHUP reload.
    #[arg(short = 'c', long = "config", num_args = 1.., required_unless_present = "control", conflicts_with = "control")]
    config: Vec<PathBuf>,
    /// Get configuration from the control plane's proxy stream (e.g. 127.0.0.1:15010).
    #[arg(long)]
    control: Option<String>,
    /// The workload this proxy serves (its id on the control plane).
    #[arg(long, default_value = "workload")]
    workload: String,
    /// The workload's service account.
    #[arg(long, default_value = "default")]
    service_account: String,
    /// With --control: register the workload at this address, so ServiceEntries with a
    /// workloadSelector matching --labels route to it.
    #[arg(long, requires = "control")]
    address: Option<String>,
    /// A registered port, `NAME=PORT` (repeatable): the port other proxies dial for the
    /// service port of that name.
    #[arg(long = "port", value_parser = parse_port)]
    ports: Vec<(String, u32)>,
    /// Outbound listener: explicit-proxy, plain and redirected traffic from the app.
    #[arg(long, default_value = "127.0.0.1:15001")]
    outbound: SocketAddr,
    /// Inbound listener fronting the app (started only with --app).
    #[arg(long, default_value = "127.0.0.1:15006")]
    inbound: SocketAddr,
    /// Send spans (OTLP over HTTP, protobuf) to this endpoint, e.g.
    /// http://127.0.0.1:4318/v1/traces (the control plane's trace store). No tracing without it.
    #[arg(long)]
    trace_endpoint: Option<::http::Uri>,
    /// Percent of new traces sampled (Istio's default 1); a caller's decision is respected.
    #[arg(long, default_value_t = 1.0, value_parser = parse_percent)]
    trace_sampling: f64,
    /// Write an access log line per request and TCP connection: `-` for standard
    /// output, or a file (appended to). No access log without it.
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Access log format: `text` (Istio's default format, plus the trace id) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    access_log_format: String,
    /// How request paths are normalized before routing and authorization (Istio's
    /// pathNormalization): NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES.
    #[arg(long, default_value = "DECODE_AND_MERGE_SLASHES", value_parser = parse_normalization)]
    path_normalization: weft_model::authz::path::Normalization,
    /// A file holding the workload's bootstrap token for the control plane's CA (from
    /// `POST /ca/tokens`). The environment variable WEFT_CA_TOKEN may hold the token
    /// instead (`weft up` uses it). With --control, the proxy then gets and renews a
    /// SPIFFE certificate (admin `/certs`).
    #[arg(long, requires = "control")]
    ca_token_file: Option<PathBuf>,
    /// Proxies in front of this one whose X-Forwarded-For entries are trusted for
    /// `remote.ip` and `remoteIpBlocks` (Istio's numTrustedProxies); 0 uses the peer.
    #[arg(long, default_value_t = 0)]
    num_trusted_proxies: usize,
    /// Stats listener: /stats/prometheus (Istio's metrics) and /healthz/ready.
    #[arg(long, default_value = "127.0.0.1:15020")]
    stats: SocketAddr,
    /// Admin listener (/ready, /config_dump, /clusters, /quitquitquit); loopback only.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// The local application the inbound listener forwards to.
    #[arg(long)]
    app: Option<SocketAddr>,
    /// Run as an ingress gateway: serve the Gateway servers of PORT at ADDR, `PORT=ADDR`
    /// (repeatable, e.g. 80=127.0.0.1:8000). Routes then come from the Gateways whose
    /// selector matches --labels and the VirtualServices bound to them.
    #[arg(long = "gateway", value_parser = parse_gateway)]
    gateways: Vec<(u16, SocketAddr)>,
    /// The proxy's namespace: short host names and exportTo are relative to it.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The workload's labels, `key=value,...` (for sourceLabels and workloadSelector).
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
    /// How long to wait for a client's first bytes before treating the connection as TCP.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    protocol_detection_timeout: Duration,
    /// How long in-flight requests may take to finish on SIGTERM or /quitquitquit.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    drain: Duration,
    /// How often the keys of RequestAuthentication jwksUris are fetched again (the last
    /// good keys stay when a fetch fails).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    jwks_refresh: Duration,
    /// How long a request's headers may take to arrive, from their first byte; a slower
    /// client is disconnected.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    request_header_timeout: Duration,
    /// A downstream connection that moves no byte for this long is closed (Envoy's
    /// idle_timeout).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    idle_timeout: Duration,
    /// Most connections open at once on each listener; more are closed as soon as they are
    /// accepted and counted in weft_downstream_cx_overflow_total. Default: no limit.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Worker threads (Envoy's --concurrency); default: one per core. 1 runs on the current thread.
    #[arg(long)]
    concurrency: Option<usize>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    weft_api::duration::parse_duration(s)
}

fn parse_normalization(s: &str) -> Result<weft_model::authz::path::Normalization, String> {
    weft_model::authz::path::Normalization::parse(s).ok_or(format!(
        "{s:?}: use NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES"
    ))
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 100"))
    }
}

fn parse_port(s: &str) -> Result<(String, u32), String> {
    let (name, port) = s
        .split_once('=')
        .ok_or(format!("port {s:?} is not NAME=PORT"))?;
    let port: u32 = port
        .parse()
        .map_err(|_| format!("port {s:?}: {port:?} is not a number"))?;
    Ok((name.to_string(), port))
}

fn parse_gateway(s: &str) -> Result<(u16, SocketAddr), String> {
    let (port, addr) = s.split_once('=').ok_or(format!(
        "gateway {s:?} is not PORT=ADDRESS (e.g. 80=127.0.0.1:8000)"
    ))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("gateway {s:?}: {port:?} is not a port number"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("gateway {s:?}: {addr:?} is not an address like 127.0.0.1:8000"))?;
    Ok((port, addr))
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or(format!("label {p:?} is not key=value"))
        })
        .collect()
}

/// Runs the proxy until SIGTERM, SIGINT or `/quitquitquit`, then drains and exits.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = match args.concurrency {
        // One worker: everything on this thread, no cross-thread wake-ups (Envoy's --concurrency 1).
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("starting the runtime")?;
    let gateway = !args.gateways.is_empty();
    let id = weft_proto::node_id(gateway, &args.workload, &args.namespace);
    let registration =
        args.address
            .clone()
            .map(|address| weft_proxy::control_source::Registration {
                workload: args.workload.clone(),
                service_account: args.service_account.clone(),
                address,
                ports: args.ports.iter().cloned().collect(),
                mesh_tls: false,
            });
    let ca_token = match &args.ca_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the CA token {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("WEFT_CA_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty() && args.control.is_some())
            .map(|t| t.trim().to_string()),
    };
    let identity = weft_model::service::WorkloadInfo::new(
        &args.workload,
        &args.namespace,
        &args.service_account,
        &args.labels,
    );
    runtime.block_on(async move {
        let opts = ProxyOptions {
            identity: Some(identity),
            id,
            registration,
            config: args.config,
            outbound: args.outbound,
            inbound: args.inbound,
            admin: args.admin,
            app: args.app,
            gateways: args.gateways,
            scope: ProxyScope {
                namespace: args.namespace,
                labels: args.labels,
                gateway,
            },
            detect_timeout: args.protocol_detection_timeout,
            drain: args.drain,
            control: args.control,
            stats: Some(args.stats),
            path_normalization: args.path_normalization,
            trusted_proxies: args.num_trusted_proxies,
            jwks_refresh: args.jwks_refresh,
            limits: weft_proxy::listener::ConnectionLimits {
                header_timeout: args.request_header_timeout,
                idle_timeout: args.idle_timeout,
                max_connections: args.max_connections,
            },
            ext_authz: Vec::new(),
            ca_token,
            access_log: args.access_log.map(|path| {
                use weft_proxy::telemetry::access_log::{Format, Target};
                let target = if path.as_os_str() == "-" {
                    Target::Stdout
                } else {
                    Target::File(path)
                };
                let format = if args.access_log_format == "json" {
                    Format::Json
                } else {
                    Format::Text
                };
                (target, format)
            }),
            tracing: args
                .trace_endpoint
                .map(|endpoint| weft_proxy::TracingOptions {
                    endpoint,
                    sampling: args.trace_sampling,
                }),
        };
        let proxy = match weft_proxy::start(opts).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        tokio::select! {
            _ = terminate() => proxy.shutdown(),
            _ = proxy.drain_requested() => {}
        }
        tracing::info!("draining");
        proxy.wait().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn terminate() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
