//! `weft`: the service mesh's single binary.
// The binary's job is to talk to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod cmd;
mod credentials;
mod input;
mod logging;
mod yaml;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// weft: a service mesh that speaks Istio's API.
#[derive(Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check Istio resources as Istio's admission webhook would; exit 1 when any is invalid.
    Validate(cmd::validate::Args),
    /// Find problems across resources (missing subsets, unknown hosts, dead rules), like `istioctl analyze`.
    Analyze(cmd::analyze::Args),
    /// Run the sidecar proxy, configured from Istio YAML files.
    Proxy(cmd::proxy::Args),
    /// Run the control plane: resource store and API.
    Control(cmd::control::Args),
    /// Create or update resources on the control plane (like kubectl apply).
    Apply(cmd::resources::ApplyArgs),
    /// List or show resources on the control plane (like kubectl get).
    Get(cmd::resources::GetArgs),
    /// Delete resources from the control plane (like kubectl delete).
    Delete(cmd::resources::DeleteArgs),
    /// The proxies connected to the control plane: versions ACKed, NACKs and why.
    ProxyStatus(cmd::resources::ProxyStatusArgs),
    /// A connected proxy's configuration: routes, clusters, endpoints or all.
    ProxyConfig(cmd::resources::ProxyConfigArgs),
    /// Describe a service: routes and weights, subsets, endpoints and health, policies, proxies.
    Describe(cmd::resources::DescribeArgs),
    /// The seed scenario as a narrated walkthrough: split, 10/90, fault, back to even.
    Demo(cmd::demo::Args),
    /// Run a whole mesh on this machine from a manifest: control plane, apps, sidecars.
    Up(cmd::up::UpArgs),
    /// Show what `weft up` started and whether each sidecar is ready.
    Status(cmd::up::StateArgs),
    /// Stop everything `weft up` started (safe to run twice).
    Down(cmd::up::StateArgs),
    /// Keep a `weft up` mesh's gateway proxies in step with its Gateways (started by `weft up`).
    #[command(hide = true)]
    GatewayDeployer(cmd::up::DeployerArgs),
    /// Explain whether a request would be allowed: `check authz --from SA --to SERVICE`.
    Check(cmd::check::Args),
    /// Search traces like the Jaeger UI (service, tags, duration, lookback); `show ID` for one.
    Traces(cmd::traces::Args),
    /// Live request rate, success rate and p50/p99 per service and version (from the proxies).
    Top(cmd::top::Args),
    /// Print the dashboard's URL (graph, traces, metrics, config, traffic) and open it.
    Dashboard(cmd::dashboard::Args),
    /// Print the path of the kubeconfig `weft up` wrote, for kubectl: `export KUBECONFIG=$(weft kubeconfig)`.
    Kubeconfig(cmd::kubeconfig::Args),
    /// Write a Prometheus configuration scraping every proxy of the mesh `weft up` started.
    PrometheusConfig(cmd::prometheus::Args),
    /// Print the version.
    Version,
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// A closed stdout (`weft status | head`) ends the process quietly with the status a
/// shell gives a process SIGPIPE ended (141), as for other Unix tools, instead of the
/// panic `println!` raises on the failed write. Every other panic is reported as before.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_on_closed_stdout();
    logging::init();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Analyze(args) => cmd::analyze::run(&args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Control(args) => cmd::control::run(args),
        Command::Apply(args) => cmd::resources::apply(&args),
        Command::Get(args) => cmd::resources::get(&args),
        Command::Delete(args) => cmd::resources::delete(&args),
        Command::ProxyStatus(args) => cmd::resources::proxy_status(&args),
        Command::ProxyConfig(args) => cmd::resources::proxy_config(&args),
        Command::Describe(args) => cmd::resources::describe(&args),
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Up(args) => cmd::up::up(&args),
        Command::Status(args) => cmd::up::status(&args),
        Command::Down(args) => cmd::up::down(&args),
        Command::GatewayDeployer(args) => cmd::up::deployer(&args),
        Command::PrometheusConfig(args) => cmd::prometheus::run(&args),
        Command::Traces(args) => cmd::traces::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Top(args) => cmd::top::run(&args),
        Command::Dashboard(args) => cmd::dashboard::run(&args),
        Command::Kubeconfig(args) => cmd::kubeconfig::run(&args),
        Command::Version => {
            println!("weft {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
