//! The gateway deployer: what Istio's deployment controller does for a cluster, done for
//! the machine `weft up` runs a mesh on. `weft up` starts a gateway proxy for each
//! Gateway in its manifest and then leaves this process running
//! (`weft gateway-deployer --state-dir DIR`, hidden from `--help`); each second it reads
//! the Gateways and GatewayClasses from the control plane and
//!
//! - starts a proxy for a Gateway of a class weft serves that has none (applied later,
//!   or its class now served),
//! - restarts a Gateway's proxy when its class or listener ports change (the ports are
//!   the proxy's flags; hostnames, TLS and routes reach it from the control plane),
//! - stops the proxy of a Gateway deleted (or no longer of a class weft serves),
//! - starts another when a proxy exits,
//!
//! recording each step in the state before the next, so `weft status` shows it and
//! `weft down` (which stops this process first) removes exactly what runs. A Gateway it
//! cannot start a proxy for is listed with why in `weft status`, and in its log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use weft_api::Kind;
use weft_model::gateway::kubernetes::served_gateways;

use super::down::stop;
use super::gateways::{describe, free_address, start_gateway, still_fits, workload_of};
use super::state::State;
use super::workloads::ca_token;

/// How often the deployer looks at the Gateways.
const PERIOD: Duration = Duration::from_secs(1);

/// Arguments of `weft gateway-deployer`.
#[derive(clap::Args)]
pub struct DeployerArgs {
    /// The state directory of the `weft up` whose gateway proxies it manages.
    #[arg(long)]
    pub(crate) state_dir: PathBuf,
}

/// Runs until TERM, or until the mesh's state is gone (`weft down`).
pub fn deployer(args: &DeployerArgs) -> anyhow::Result<ExitCode> {
    let weft = std::env::current_exe().context("finding the weft binary")?;
    let dir = &args.state_dir;
    let token = super::control::api_token(dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut last_error = String::new();
        loop {
            // TERM is taken only between passes: a pass never stops between starting a
            // proxy and writing it down.
            tokio::select! {
                _ = term.recv() => return Ok(ExitCode::SUCCESS),
                () = tokio::time::sleep(PERIOD) => {}
            }
            let Some(mut state) = State::load(dir)? else {
                return Ok(ExitCode::SUCCESS);
            };
            crate::credentials::hand_over(&state.api, &token);
            match pass(&weft, dir, &mut state).await {
                Ok(()) => last_error.clear(),
                Err(e) => {
                    let e = format!("{e:#}");
                    if e != last_error {
                        eprintln!("✘ {e}");
                        last_error = e;
                    }
                }
            }
        }
    })
}

/// One look at the Gateways: stops the proxies no Gateway wants as they run, then starts
/// the missing ones.
async fn pass(weft: &Path, dir: &Path, state: &mut State) -> anyhow::Result<()> {
    let resources =
        crate::client::list(&state.api, &[Kind::GatewayClass, Kind::KubernetesGateway]).await?;
    let wanted = served_gateways(&resources);
    let unfit: Vec<usize> = (0..state.gateways.len())
        .filter(|&i| {
            let s = &state.gateways[i];
            !state.ours(s.pid)
                || !wanted
                    .iter()
                    .find(|g| g.metadata.namespace() == s.namespace && g.metadata.name == s.name)
                    .is_some_and(|g| still_fits(s, g))
        })
        .collect();
    for i in unfit.into_iter().rev() {
        let s = &state.gateways[i];
        if state.ours(s.pid) {
            println!(
                "▸ Gateway {}/{}: stopping its proxy (pid {}); the Gateway was deleted or changed",
                s.namespace, s.name, s.pid
            );
            stop(state, &[s.pid]);
        } else {
            eprintln!(
                "✘ Gateway {}/{}: its proxy (pid {}) exited; starting another (see logs/gateway-{}-{}.log)",
                s.namespace, s.name, s.pid, s.namespace, s.name
            );
        }
        state.gateways.remove(i);
        state.save(dir)?;
    }
    let logs = dir.join("logs");
    let mut problems = std::collections::BTreeMap::new();
    for g in wanted {
        let (ns, name) = (g.metadata.namespace(), &g.metadata.name);
        if state
            .gateways
            .iter()
            .any(|s| s.namespace == ns && &s.name == name)
        {
            continue;
        }
        // A Gateway that cannot get a proxy (no address, no CA token, no process) is that
        // Gateway's problem only: the others are still started in this pass.
        let started = match (
            free_address(&state.gateways),
            ca_token(&state.api, ns, &workload_of(g)).await,
        ) {
            (Ok(address), Ok(token)) => start_gateway(weft, &logs, state, g, address, token),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match started {
            Ok(started) => {
                println!("{}", describe(&started, g));
                state.gateways.push(started);
                state.save(dir)?;
            }
            Err(e) => {
                problems.insert(format!("{ns}/{name}"), format!("{e:#}"));
            }
        }
    }
    if problems != state.gateway_problems {
        for (gateway, why) in &problems {
            eprintln!("✘ Gateway {gateway}: no proxy started: {why}");
        }
        state.gateway_problems = problems;
        state.save(dir)?;
    }
    Ok(())
}
