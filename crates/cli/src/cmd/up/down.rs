//! `weft down`: stops what one `weft up` started and removes what it created, from its
//! state; what is already gone is skipped, and what could not be removed stays in the
//! state for another `weft down`.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;

use super::state::State;
use super::{StateArgs, netns};
use crate::client::call;

/// Stops everything `weft up` started, removes its namespaces and rules and its state;
/// safe to run twice.
pub fn down(args: &StateArgs) -> anyhow::Result<ExitCode> {
    let file = args.state_dir.join("state.json");
    let Some(mut state) = State::load(&args.state_dir)? else {
        println!(
            "Nothing to stop (no state in {}).",
            args.state_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if state.mode == "namespace" {
        if let Some(why) = netns::unavailable() {
            bail!("stopping a namespace-mode mesh: {why}");
        }
    }
    if let Some(deployer) = state.deployer_pid.filter(|p| state.ours(*p)) {
        // First the deployer, which may start a gateway proxy at any moment; then read
        // the state again, with whatever it started or stopped meanwhile.
        stop(&state, &[deployer]);
        state = State::load(&args.state_dir)?.unwrap_or(state);
    }
    let pids: Vec<u32> = state
        .pids()
        .into_iter()
        .filter(|p| state.ours(*p))
        .collect();
    if state.control_pid.is_none() && !state.services.is_empty() {
        // The control plane stays up: take back the services this mesh added to it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for (ns, name) in &state.services {
            let path = crate::client::path(weft_api::Kind::ServiceEntry, Some(ns), Some(name));
            match runtime.block_on(call(&state.api, Method::DELETE, &path, None)) {
                Ok(a) if a.status.is_success() || a.status == http::StatusCode::NOT_FOUND => {}
                Ok(a) => eprintln!(
                    "warning: deleting ServiceEntry {ns}/{name}: {}",
                    a.message()
                ),
                Err(e) => eprintln!("warning: deleting ServiceEntry {ns}/{name}: {e:#}"),
            }
        }
    }
    stop(&state, &pids);
    let survivors: Vec<u32> = pids.iter().copied().filter(|p| state.ours(*p)).collect();
    let mut problems = netns::remove(&mut state.network);
    if !survivors.is_empty() {
        problems.push(format!("processes {survivors:?} did not stop"));
    }
    if !problems.is_empty() {
        // Keep what is left in the state so another `weft down` can finish the job.
        state
            .workloads
            .retain(|w| survivors.contains(&w.app_pid) || survivors.contains(&w.sidecar_pid));
        if state
            .ingress
            .as_ref()
            .is_some_and(|i| !survivors.contains(&i.pid))
        {
            state.ingress = None;
        }
        state.gateways.retain(|g| survivors.contains(&g.pid));
        state.deployer_pid = state.deployer_pid.filter(|p| survivors.contains(p));
        if state.control_pid.is_some_and(|p| !survivors.contains(&p)) {
            state.control_pid = None;
        }
        state.services.clear();
        state.save(&args.state_dir)?;
        bail!(
            "the mesh is not completely down:\n  {}",
            problems.join("\n  ")
        );
    }
    std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    let _ = std::fs::remove_dir_all(args.state_dir.join("control"));
    println!(
        "✔ mesh down ({} processes stopped{})",
        pids.len(),
        if state.mode == "namespace" {
            ", namespaces, bridge and rules removed"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Stops the processes `pids` `state` started, with their process groups: TERM, at most
/// 8 s to exit, then KILL.
pub(super) fn stop(state: &State, pids: &[u32]) {
    // Each process leads its own group: signal the group, so an app's children go too.
    let signal = |sig: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    };
    for pid in pids {
        signal("-TERM", *pid);
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while pids.iter().any(|p| state.ours(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids {
        signal("-KILL", *pid);
    }
    std::thread::sleep(Duration::from_millis(100));
}
