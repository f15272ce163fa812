//! What `weft up` waits for and prints: every proxy ready, every proxy on the current
//! configuration, the mesh's entry points once up, and `weft status`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use http::Method;

use super::state::{Started, State, alive};
use super::{Starting, StateArgs, netns};
use crate::client::{call, get_status};

impl Starting<'_> {
    /// Waits (at most 30 s) until every sidecar and the ingress gateway are ready; fails
    /// when one of the processes exits meanwhile.
    pub(super) fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let total = self.state.workloads.len();
        let mut last = usize::MAX;
        loop {
            let ready = self
                .state
                .workloads
                .iter()
                .filter(|w| sidecar_ready(self.runtime, w))
                .count();
            let ready_at = |admin: &str| {
                self.runtime
                    .block_on(get_status(admin, "/ready"))
                    .is_ok_and(|s| s.is_success())
            };
            let ingress = self
                .state
                .ingress
                .as_ref()
                .is_none_or(|i| ready_at(&i.admin))
                && self.state.gateways.iter().all(|g| ready_at(&g.admin));
            if ready != last {
                println!("▸ sidecars ready: {ready}/{total}");
                last = ready;
            }
            let all_ready = ready == total && ingress;
            if all_ready {
                // A process that could not bind its ports exits at once; another mesh's
                // proxy on the same address may have answered for it.
                std::thread::sleep(Duration::from_millis(300));
            }
            for pid in self.state.pids() {
                if !alive(pid) {
                    bail!(
                        "process {pid} exited while the mesh was starting (another mesh on the same addresses?); see the logs in {}",
                        self.logs.display()
                    );
                }
            }
            if all_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not every sidecar became ready (ingress ready: {ingress}); see the logs in {}",
                    self.logs.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Tells what is up and how to use it.
pub(super) fn print_up(state: &State, kubeconfig: &std::path::Path) {
    println!(
        "✔ mesh up ({} workloads, {} mode). Try:",
        state.workloads.len(),
        state.mode
    );
    if let Some(ingress) = &state.ingress {
        println!(
            "    open http://{}/            # the ingress gateway (bff-service's page in the seed)",
            ingress.address
        );
    }
    for g in &state.gateways {
        for (port, address) in &g.ports {
            println!(
                "    {address}     # Gateway {}/{} port {port}",
                g.namespace, g.name
            );
        }
    }
    println!(
        "    open http://{}/            # the dashboard: graph, traces, metrics, config, traffic",
        state.dashboard
    );
    println!(
        "    export KUBECONFIG={}    kubectl get vs,dr,se,svc -A",
        // Absolute, so the line works from any directory.
        kubeconfig
            .canonicalize()
            .unwrap_or_else(|_| kubeconfig.to_path_buf())
            .display()
    );
    println!("    weft status    weft get se    weft prometheus-config    weft down");
}

/// Waits (at most 10 s) until every proxy in `ids` has acknowledged the control
/// plane's current configuration, so what was just applied is in force. Returns false,
/// after saying so, when some did not in time.
pub fn wait_for_config(runtime: &tokio::runtime::Runtime, api: &str, ids: &[String]) -> bool {
    let current = runtime
        .block_on(call(
            api,
            Method::GET,
            "/apis/networking.istio.io/v1/serviceentries",
            None,
        ))
        .ok()
        .and_then(|a| {
            a.body["metadata"]["resourceVersion"]
                .as_str()?
                .parse::<u64>()
                .ok()
        });
    let Some(current) = current else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let proxies = runtime
            .block_on(crate::client::proxies(api))
            .unwrap_or_default();
        let acked = |id: &String| {
            proxies
                .iter()
                .any(|p| p.id == *id && p.acked_config_version().is_some_and(|v| v >= current))
        };
        if ids.iter().all(acked) {
            return true;
        }
        if Instant::now() > deadline {
            println!("▸ not every proxy confirmed the configuration yet; it may take a moment");
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sidecar has its configuration (and certificate) and its app accepts connections
/// (asked of the sidecar, which runs where the app does: `/app-health`).
fn sidecar_ready(runtime: &tokio::runtime::Runtime, w: &Started) -> bool {
    let ask = |path: &str| match &w.netns {
        Some(ns) => w
            .admin
            .parse()
            .ok()
            .and_then(|admin| netns::probe(ns, admin, path)),
        None => runtime
            .block_on(get_status(&w.admin, path))
            .ok()
            .map(|s| s.as_u16()),
    };
    ask("/ready") == Some(200) && matches!(ask("/app-health"), Some(200 | 404))
}

/// Lists the workloads `weft up` started, their addresses and sidecar readiness.
pub fn status(args: &StateArgs) -> anyhow::Result<ExitCode> {
    let Some(state) = State::load(&args.state_dir)? else {
        println!("No mesh is up (no state in {}).", args.state_dir.display());
        return Ok(ExitCode::from(1));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let proxies = runtime.block_on(crate::client::proxies(&state.api)).ok();
    println!("mode: {}", state.mode);
    match state.control_pid {
        Some(pid) => println!(
            "control plane: {} (pid {pid}, {})",
            state.api,
            if alive(pid) { "running" } else { "stopped" }
        ),
        None => println!(
            "control plane: {} (already running when the mesh came up; {})",
            state.api,
            if proxies.is_some() {
                "reachable"
            } else {
                "unreachable"
            }
        ),
    }
    if let Some(ingress) = &state.ingress {
        let ready = runtime
            .block_on(get_status(&ingress.admin, "/ready"))
            .is_ok_and(|s| s.is_success());
        println!(
            "ingress gateway: http://{}/ ({})",
            ingress.address,
            if ready { "ready" } else { "not ready" }
        );
    }
    for g in &state.gateways {
        let ready = runtime
            .block_on(get_status(&g.admin, "/ready"))
            .is_ok_and(|s| s.is_success());
        let ports: Vec<String> = g.ports.iter().map(|(p, a)| format!("{p} at {a}")).collect();
        println!(
            "Gateway {}/{}: {} ({})",
            g.namespace,
            g.name,
            ports.join(", "),
            if ready { "ready" } else { "not ready" }
        );
    }
    for (gateway, why) in &state.gateway_problems {
        println!("Gateway {gateway}: no proxy: {why}");
    }
    if let Some(pid) = state.deployer_pid {
        if !state.ours(pid) {
            println!(
                "gateway deployer (pid {pid}) is not running: Gateways applied now get no proxy"
            );
        }
    }
    // Each workload's mutual TLS mode, resolved from the PeerAuthentications in force.
    let peer_policies = runtime
        .block_on(crate::client::list(
            &state.api,
            &[weft_api::Kind::PeerAuthentication],
        ))
        .unwrap_or_default();
    let peers = weft_model::peer_authn::PeerPolicies::new(&peer_policies);
    println!(
        "{:<24} {:<24} {:<14} {:<10} {:<10} {:<11} CONFIG VERSION",
        "WORKLOAD", "SERVICE", "ADDRESS", "APP", "SIDECAR", "MTLS"
    );
    for w in &state.workloads {
        let ready = sidecar_ready(&runtime, w);
        let id = weft_proto::node_id(false, &w.name, &w.namespace);
        let proxy = proxies
            .as_ref()
            .and_then(|list| list.iter().find(|p| p.id == id));
        let version = proxy
            .and_then(|p| p.acked_version.clone())
            .unwrap_or_else(|| "-".into());
        // The labels the sidecar registered (the manifest's, with app=<service>).
        let labels: BTreeMap<String, String> = proxy
            .and_then(|p| p.workload.as_ref())
            .and_then(|w| serde_json::from_value(w["spec"]["labels"].clone()).ok())
            .unwrap_or_default();
        let mtls = match peers.resolve(&w.namespace, &labels).mode {
            weft_model::peer_authn::Mode::Strict => "STRICT",
            weft_model::peer_authn::Mode::Permissive => "PERMISSIVE",
            weft_model::peer_authn::Mode::Disable => "DISABLE",
        };
        println!(
            "{:<24} {:<24} {:<14} {:<10} {:<10} {mtls:<11} {version}",
            w.name,
            w.service,
            w.address,
            if alive(w.app_pid) {
                "running"
            } else {
                "stopped"
            },
            if ready { "ready" } else { "not ready" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
