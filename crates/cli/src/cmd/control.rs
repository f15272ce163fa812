//! `weft control`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `weft control`.
#[derive(clap::Args)]
pub struct Args {
    /// Where resources are persisted (one JSON file each, written atomically).
    #[arg(long, default_value = ".weft/state")]
    state_dir: PathBuf,
    /// The resource API address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    api: SocketAddr,
    /// The proxy stream (delta xDS over gRPC) address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: SocketAddr,
    /// How long a disconnected proxy's registered workload is kept.
    #[arg(long, value_parser = weft_api::duration::parse_duration, default_value = "10s")]
    registration_grace: std::time::Duration,
    /// The OTLP/HTTP trace receiver (POST /v1/traces, protobuf), Jaeger's and the
    /// OpenTelemetry collector's 4318. `off` disables the trace store.
    #[arg(long, default_value = "127.0.0.1:4318", value_parser = parse_listen)]
    otlp: Listen,
    /// Jaeger's HTTP query API over the trace store (Jaeger's 16686). `off` disables it.
    #[arg(long, default_value = "127.0.0.1:16686", value_parser = parse_listen)]
    query: Listen,
    /// Most spans the trace store keeps (the oldest go first).
    #[arg(long, default_value_t = 200_000)]
    trace_store_spans: usize,
    /// Most memory the trace store uses, in MiB (the oldest spans go first).
    #[arg(long, default_value_t = 256)]
    trace_store_mib: usize,
    /// The certificate authority's trust domain (`spiffe://<trust domain>/ns/..`); default:
    /// the mesh config's `trustDomain`, else `cluster.local`.
    #[arg(long)]
    trust_domain: Option<String>,
    /// Lifetime of the workload certificates issued (renewed at 80 %).
    #[arg(long, value_parser = weft_api::duration::parse_duration, default_value = "24h")]
    cert_ttl: std::time::Duration,
    /// The operator's CA certificate (PEM), instead of a root generated in <state-dir>/ca:
    /// a root, or an intermediate (then followed by any further intermediates, and
    /// --ca-root names the root).
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// The root --ca-cert chains to, when --ca-cert is an intermediate (PEM).
    #[arg(long, requires = "ca_cert")]
    ca_root: Option<PathBuf>,
    /// The key of --ca-cert (PEM, PKCS#8).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// The dashboard (service graph, traces, metrics, config, traffic editor) on its own
    /// port, Istio's 15080. `off` disables it. Keep it on loopback: writes from the page
    /// change the mesh's routing.
    #[arg(long, default_value = "127.0.0.1:15080", value_parser = parse_listen)]
    dashboard: Listen,
    /// A host name the dashboard answers to, besides IP addresses and `localhost` (which
    /// it always answers): the name it is reached by when exposed. Repeatable.
    #[arg(long = "dashboard-host")]
    dashboard_hosts: Vec<String>,
    /// A Prometheus server (`http://host:port`) the dashboard queries with PromQL instead
    /// of the control plane's own metrics history (which then collects nothing).
    #[arg(long)]
    prometheus: Option<String>,
    /// Most series the metrics history keeps (each at most an hour of 10 s ticks,
    /// about 36 KiB when busy every tick).
    #[arg(long, default_value_t = 4096)]
    metrics_max_series: usize,
    /// More roots the proxies trust (a PEM bundle): during a root rotation, the previous
    /// root, so certificates from both stay valid until the old ones expire.
    #[arg(long)]
    ca_extra_roots: Option<PathBuf>,
    /// A file holding the API's bearer token: writes, and reads from other hosts, need
    /// `Authorization: Bearer <token>` (kubectl sends it over the API's HTTPS). Without
    /// it the API is open to anyone who can reach it. `weft up` always passes one.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Istio's mesh config (its YAML, or Istio's ConfigMap with it under `data.mesh`),
    /// pushed to every proxy: tracing, its providers, the default providers. Without
    /// it, or without a default tracing provider in it, proxies trace into the trace store
    /// (at Istio's default 1 % unless `defaultConfig.tracing.sampling` says otherwise).
    #[arg(long)]
    mesh_config: Option<PathBuf>,
    /// How often the keys of RequestAuthentication jwksUris are fetched again; the control
    /// plane pushes them inline, and the last good keys stay when a fetch fails.
    #[arg(long, value_parser = weft_api::duration::parse_duration, default_value = "20m")]
    jwks_refresh: std::time::Duration,
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Listen(Option<SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:4318 (or off)"))
}

/// Runs the control plane until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let extra_roots = match &args.ca_extra_roots {
        Some(path) => {
            let bundle = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            weft_control::ca::pem_certificates(&bundle)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let mesh_config = match &args.mesh_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let loaded =
                weft_api::mesh_config::load_mesh_config(&path.display().to_string(), &text);
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            match loaded.config {
                Some(config) => Some(config),
                None => {
                    tracing::error!(file = %path.display(), "the mesh config has errors; not starting");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        None => None,
    };
    let from_mesh = mesh_config.as_ref().and_then(|m| m.trust_domain.clone());
    let trust_domain = match (args.trust_domain, from_mesh) {
        (Some(flag), Some(mesh)) if flag != mesh => {
            tracing::error!(
                "--trust-domain {flag} and the mesh config's trustDomain {mesh} differ; give one"
            );
            return Ok(ExitCode::from(1));
        }
        (flag, mesh) => flag.or(mesh).unwrap_or_else(|| "cluster.local".into()),
    };
    let api_token = match &args.api_token_file {
        Some(path) => {
            Some(weft_control::api::auth::ApiToken::read(path).map_err(anyhow::Error::msg)?)
        }
        None => {
            tracing::warn!(api = %args.api, "no --api-token-file: the API accepts writes from anyone who can reach it");
            None
        }
    };
    runtime.block_on(async move {
        let control = match weft_control::start(weft_control::ControlOptions {
            state_dir: args.state_dir,
            api: args.api,
            xds: args.xds,
            registration_grace: args.registration_grace,
            otlp: args.otlp.0,
            query: args.query.0,
            trace_spans: args.trace_store_spans,
            trace_bytes: args.trace_store_mib.saturating_mul(1 << 20),
            ca: Some(weft_control::CaOptions {
                trust_domain,
                ttl: args.cert_ttl,
                supplied: args.ca_cert.zip(args.ca_key).map(|(cert, key)| {
                    weft_control::ca::SuppliedRoot {
                        cert,
                        key,
                        root: args.ca_root,
                    }
                }),
                extra_roots,
            }),
            dashboard: args.dashboard.0,
            dashboard_hosts: args.dashboard_hosts,
            prometheus: args.prometheus,
            history: weft_control::history::HistoryLimits {
                max_series: args.metrics_max_series,
            },
            api_token,
            mesh_config,
            jwks_refresh: args.jwks_refresh,
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        super::proxy::terminate().await;
        control.stop();
        Ok(ExitCode::SUCCESS)
    })
}
