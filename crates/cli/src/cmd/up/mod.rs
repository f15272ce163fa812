//! `weft up`, `weft status`, `weft down`: a whole mesh on one machine.
//!
//! `weft up -f mesh.yaml` starts a control plane (unless one runs), every workload of the
//! [`manifest`] beside its own sidecar, and an ingress gateway; each service becomes a
//! ServiceEntry selecting its workloads by the label `app=<service>`. Workloads join the
//! mesh in one of two modes:
//!
//! - [`netns`] (Linux, root; the default when possible): each workload in its own
//!   network namespace, its TCP intercepted by iptables, service names resolved by a
//!   hosts file to virtual IPs. The app sees a plain network.
//! - loopback (no root): each workload gets its own 127.0.10.N address; its app is
//!   started with HTTP_PROXY pointing at its sidecar, whose inbound listener fronts it.
//!
//! What was started is written down as it goes ([`state`]), so `weft down` (safe to run
//! twice, or after a crash) removes exactly that.
//!
//! This module holds the arguments and the order of the steps; each step lives with its
//! concern: [`control`] (the control plane), [`services`] (the services' ServiceEntries),
//! [`workloads`] (apps, sidecars and the ingress gateway), [`gateways`] (a proxy per
//! Gateway API Gateway), [`deployer`](mod@deployer) (which keeps them in step with the
//! Gateways afterwards), [`status`](mod@status) (readiness and what is printed) and
//! [`down`](mod@down).

mod control;
mod deployer;
mod down;
mod gateways;
pub mod kube;
pub mod manifest;
pub mod netns;
mod services;
pub mod state;
mod status;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use self::manifest::Manifest;
use self::state::State;

pub use self::deployer::{DeployerArgs, deployer};
pub use self::down::down;
pub use self::status::{status, wait_for_config};

/// Arguments of `weft up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// The mesh manifest.
    #[arg(short = 'f', long = "filename")]
    pub(crate) file: PathBuf,
    /// How workloads join the mesh: `namespace` (root: network namespaces and iptables),
    /// `loopback` (HTTP_PROXY on 127.0.10.N), or `auto` (namespace when possible).
    #[arg(long, default_value = "auto", value_parser = ["auto", "namespace", "loopback"])]
    pub(crate) mode: String,
    /// Where state and logs go.
    #[arg(long, default_value = ".weft/up")]
    pub(crate) state_dir: PathBuf,
    /// The control plane's resource API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub(crate) api: SocketAddr,
    /// The control plane's proxy stream (in namespace mode it listens on the bridge
    /// address 198.18.0.1 with this port, so the namespaces reach it).
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub(crate) xds: SocketAddr,
    /// Where the ingress gateway listens (overrides the manifest's `ingress.address`).
    #[arg(long)]
    pub(crate) ingress: Option<SocketAddr>,
    /// The control plane's OTLP trace receiver, where the proxies send spans (in namespace
    /// mode it listens on the bridge address with this port).
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub(crate) otlp: SocketAddr,
    /// The control plane's Jaeger query API (`weft traces` reads it).
    #[arg(long, default_value = "127.0.0.1:16686")]
    pub(crate) query: SocketAddr,
    /// The control plane's dashboard (`weft dashboard` opens it).
    #[arg(long, default_value = "127.0.0.1:15080")]
    pub(crate) dashboard: SocketAddr,
}

/// Arguments of `weft status` and `weft down`.
#[derive(clap::Args)]
pub struct StateArgs {
    /// Where `weft up` keeps its state.
    #[arg(long, default_value = ".weft/up")]
    pub(crate) state_dir: PathBuf,
}

/// Which mode to run in, and why when `auto` fell back to loopback.
fn choose_mode(requested: &str) -> anyhow::Result<(bool, Option<String>)> {
    match (requested, netns::unavailable()) {
        ("loopback", _) => Ok((false, None)),
        (_, None) => Ok((true, None)),
        ("namespace", Some(why)) => bail!("{why}; use --mode loopback to run without it"),
        (_, Some(why)) => Ok((false, Some(why))),
    }
}

/// Starts the control plane, every workload with its sidecar, the ingress gateway, the
/// services and resources. On failure, removes what it had started.
pub fn up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let manifest = manifest::read(&args.file)?;
    if State::load(&args.state_dir)?.is_some_and(|s| s.is_up()) {
        bail!(
            "a mesh is already up (state in {}); run `weft down` first",
            args.state_dir.display()
        );
    }
    let (namespaces, fallback) = choose_mode(&args.mode)?;
    if let Some(why) = fallback {
        println!("▸ loopback mode ({why})");
    }
    let logs = args.state_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut state = State {
        mode: if namespaces { "namespace" } else { "loopback" }.into(),
        api: args.api.to_string(),
        ..State::default()
    };
    state.save(&args.state_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let token = control::api_token(&args.state_dir)?;
    crate::credentials::hand_over(&args.api.to_string(), &token);
    let mut starting = Starting {
        args,
        token,
        manifest: &manifest,
        logs,
        state: &mut state,
        runtime: &runtime,
        mesh_config_pushed: false,
    };
    match starting.run() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("✘ {e:#}\n▸ removing what was started");
            drop(starting);
            let _ = down(&StateArgs {
                state_dir: args.state_dir.clone(),
            });
            Err(e)
        }
    }
}

/// One `weft up` in progress; every step records what it created before the next. The
/// steps are methods defined in the module of their concern.
struct Starting<'a> {
    args: &'a UpArgs,
    /// The API's bearer token (in `<state dir>/api-token`).
    token: String,
    manifest: &'a Manifest,
    logs: PathBuf,
    state: &'a mut State,
    runtime: &'a tokio::runtime::Runtime,
    /// The control plane was started here with the manifest's tracing as its mesh config,
    /// so the proxies take tracing from it (one already running keeps its own: the proxies
    /// then get the manifest's tracing as flags).
    mesh_config_pushed: bool,
}

impl Starting<'_> {
    fn save(&mut self) -> anyhow::Result<()> {
        self.state.save(&self.args.state_dir)
    }

    fn namespaces(&self) -> bool {
        self.state.mode == "namespace"
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let weft = std::env::current_exe().context("finding the weft binary")?;
        if self.namespaces() {
            self.create_bridge(&weft)?;
        }
        self.start_control_plane(&weft)?;
        self.state.proxy_flags = self.tracing_args();
        self.save()?;
        let kubeconfig = super::kubeconfig::write(
            &self.args.state_dir,
            &self.args.api.to_string(),
            &self.token,
            &self.api_ca()?,
        )?;
        println!("▸ kubeconfig for kubectl at {}", kubeconfig.display());
        let vips = self.create_services()?;
        for (i, w) in self.manifest.workloads.iter().enumerate() {
            let placement = self.place(i, w, &vips)?;
            let started = self.start_workload(&weft, w, placement)?;
            println!(
                "▸ workload {} at {} (app pid {}, sidecar pid {})",
                w.name, started.address, started.app_pid, started.sidecar_pid
            );
            self.state.workloads.push(started);
            self.save()?;
        }
        self.start_ingress(&weft)?;
        self.start_gateways(&weft)?;
        self.wait_ready()?;
        self.apply_resources(&weft)?;
        self.start_deployer(&weft)?;
        status::print_up(self.state, &super::kubeconfig::path(&self.args.state_dir));
        Ok(())
    }
}
