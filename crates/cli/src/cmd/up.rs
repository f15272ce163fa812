//! `weft up`, `weft status`, `weft down`: a whole mesh on one machine.
//!
//! Loopback mode (this module; no root needed): each workload gets its own 127.0.10.N
//! address. Its app listens there (HOST/PORT in its environment) and is started with
//! HTTP_PROXY pointing at its sidecar's outbound listener; its sidecar's inbound
//! listener (N:15006) fronts the app and is registered with the control plane, so every
//! service becomes a ServiceEntry selecting its workloads by the label `app=<service>`.
//! What was started is written to a state file, so `weft down` (safe to run twice)
//! stops exactly that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::client::{call, get_status};

/// The loopback block weft's workloads get addresses from (127.0.10.1, .2, ...).
const ADDRESS_PREFIX: &str = "127.0.10.";

/// A `weft up` manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The workloads to run.
    pub workloads: Vec<Workload>,
    /// Istio resource files to apply once the mesh is up.
    #[serde(default)]
    pub resources: Vec<PathBuf>,
}

/// One workload: an app and its sidecar.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Workload name (unique).
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// Namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Service account.
    #[serde(default = "default_namespace")]
    pub service_account: String,
    /// Extra labels (`version: v2`); `app: <service>` is added.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The app's command and arguments.
    pub command: Vec<String>,
    /// The port the app listens on (also the service port).
    pub port: u16,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    "default".into()
}

/// What `weft up` started, for `status` and `down`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    mode: String,
    api: String,
    /// The control plane `weft up` started; `None` when it used one already running.
    control_pid: Option<u32>,
    /// The ServiceEntries it created (namespace, name), removed by `down` from a control
    /// plane it did not start.
    #[serde(default)]
    services: Vec<(String, String)>,
    /// Each process's start time (clock ticks since boot, from /proc), so `down` after a
    /// crash or reboot never signals an unrelated process that got a recycled pid.
    #[serde(default)]
    start_times: BTreeMap<u32, u64>,
    workloads: Vec<Started>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Started {
    name: String,
    service: String,
    address: String,
    app_pid: u32,
    sidecar_pid: u32,
    admin: String,
}

/// A process's start time (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl State {
    /// True when `pid` still runs and is the process `weft up` started (same start time).
    fn ours(&self, pid: u32) -> bool {
        alive(pid)
            && self
                .start_times
                .get(&pid)
                .is_none_or(|t| start_time(pid) == Some(*t))
    }

    /// Every process `weft up` started (the control plane only when it started it).
    fn pids(&self) -> Vec<u32> {
        self.workloads
            .iter()
            .flat_map(|w| [w.app_pid, w.sidecar_pid])
            .chain(self.control_pid)
            .collect()
    }
}

/// Arguments of `weft up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// The mesh manifest.
    #[arg(short = 'f', long = "filename")]
    pub(crate) file: PathBuf,
    /// How workloads join the mesh (namespace mode comes with root support).
    #[arg(long, default_value = "loopback", value_parser = ["loopback"])]
    pub(crate) mode: String,
    /// Where state and logs go.
    #[arg(long, default_value = ".weft/up")]
    pub(crate) state_dir: PathBuf,
    /// The control plane's resource API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub(crate) api: SocketAddr,
    /// The control plane's proxy stream.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub(crate) xds: SocketAddr,
}

/// Arguments of `weft status` and `weft down`.
#[derive(clap::Args)]
pub struct StateArgs {
    /// Where `weft up` keeps its state.
    #[arg(long, default_value = ".weft/up")]
    pub(crate) state_dir: PathBuf,
}

fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs = weft_api::source::parse_documents(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.pos, e.message))?;
    let doc = docs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{} is empty", path.display()))?;
    let ctx = std::cell::RefCell::new(weft_api::source::ReadContext::default());
    let read = weft_api::source::from_node::<Manifest>(doc, "", &ctx);
    let mut errors: Vec<String> = ctx
        .borrow()
        .errors
        .iter()
        .map(|e| {
            format!(
                "{}:{}: {}: {}",
                path.display(),
                e.pos.unwrap_or_default(),
                e.path.clone().unwrap_or_default(),
                e.message
            )
        })
        .collect();
    let manifest = match read {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(format!(
                "{}:{}: {}: {}",
                path.display(),
                e.pos.unwrap_or_default(),
                e.path.unwrap_or_default(),
                e.message
            ));
            None
        }
    };
    if !errors.is_empty() {
        bail!("invalid manifest:\n  {}", errors.join("\n  "));
    }
    let manifest = manifest.ok_or_else(|| anyhow::anyhow!("invalid manifest"))?;
    let mut names = std::collections::BTreeSet::new();
    for w in &manifest.workloads {
        if !names.insert(&w.name) {
            bail!("{}: workload {:?} is listed twice", path.display(), w.name);
        }
        if w.command.is_empty() {
            bail!(
                "{}: workload {:?} has an empty command",
                path.display(),
                w.name
            );
        }
    }
    if manifest.workloads.len() > 250 {
        bail!(
            "{}: at most 250 workloads fit the loopback block {ADDRESS_PREFIX}0/24",
            path.display()
        );
    }
    Ok(manifest)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    // Its own process group: the mesh keeps running after `weft up` returns.
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// Starts the control plane, every workload with its sidecar, the services and resources.
pub fn up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&args.file)?;
    let state_file = args.state_dir.join("state.json");
    if let Ok(text) = std::fs::read_to_string(&state_file) {
        if serde_json::from_str::<State>(&text)
            .is_ok_and(|s| s.pids().into_iter().any(|p| s.ours(p)))
        {
            bail!(
                "a mesh is already up (state in {}); run `weft down` first",
                args.state_dir.display()
            );
        }
    }
    let logs = args.state_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let weft = std::env::current_exe().context("finding the weft binary")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let running = runtime
        .block_on(call(
            &args.api.to_string(),
            Method::GET,
            "/debug/proxies",
            None,
        ))
        .is_ok_and(|a| a.status.is_success());
    let control_pid = if running {
        println!("▸ using the control plane already running on {}", args.api);
        None
    } else {
        println!("▸ starting the control plane on {}", args.api);
        Some(spawn(
            Command::new(&weft)
                .args([
                    "control",
                    "--api",
                    &args.api.to_string(),
                    "--xds",
                    &args.xds.to_string(),
                    "--state-dir",
                ])
                .arg(args.state_dir.join("control")),
            &logs.join("control.log"),
        )?)
    };
    let mut state = State {
        mode: args.mode.clone(),
        api: args.api.to_string(),
        control_pid,
        services: Vec::new(),
        start_times: BTreeMap::new(),
        workloads: Vec::new(),
    };
    let server = args.api.to_string();
    state.services = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(args.api).await.is_err() {
            if Instant::now() > deadline || control_pid.is_some_and(|p| !alive(p)) {
                bail!("the control plane did not start; see {}", logs.join("control.log").display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One ServiceEntry per service, selecting its workloads by label.
        let mut services: BTreeMap<(String, String), u16> = BTreeMap::new();
        for w in &manifest.workloads {
            services.insert((w.namespace.clone(), w.service.clone()), w.port);
        }
        let mut created = Vec::new();
        for ((ns, service), port) in &services {
            let se = serde_json::json!({
                "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": service, "namespace": ns, "labels": {"weft.io/up": "true"}},
                "spec": {"hosts": [format!("{service}.{ns}.svc.cluster.local")], "location": "MESH_INTERNAL", "resolution": "STATIC",
                         "ports": [{"number": port, "name": "http", "protocol": "HTTP"}], "workloadSelector": {"labels": {"app": service}}}
            });
            let path = crate::client::path(weft_api::Kind::ServiceEntry, Some(ns), None);
            let answer = call(&server, Method::POST, &path, Some(serde_json::to_vec(&se)?)).await?;
            if answer.status.is_success() {
                created.push((ns.clone(), service.clone()));
            } else if answer.status != http::StatusCode::CONFLICT {
                bail!("creating the service {service}: {}", answer.message());
            }
            println!("▸ service {service}.{ns} (port {port})");
        }
        anyhow::Ok(created)
    })?;
    for (i, w) in manifest.workloads.iter().enumerate() {
        let address = format!("{ADDRESS_PREFIX}{}", i + 1);
        let mut labels = w.labels.clone();
        labels.insert("app".into(), w.service.clone());
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let admin = format!("{address}:15000");
        let sidecar_pid = spawn(
            Command::new(&weft)
                .args([
                    "proxy",
                    "--control",
                    &args.xds.to_string(),
                    "--workload",
                    &w.name,
                    "--namespace",
                    &w.namespace,
                ])
                .args([
                    "--service-account",
                    &w.service_account,
                    "--labels",
                    &labels.join(","),
                ])
                .args([
                    "--app",
                    &format!("{address}:{}", w.port),
                    "--inbound",
                    &format!("{address}:15006"),
                ])
                .args(["--outbound", &format!("{address}:15001"), "--admin", &admin])
                .args(["--address", &address, "--port", "http=15006"]),
            &logs.join(format!("{}.sidecar.log", w.name)),
        )?;
        let mut app = Command::new(&w.command[0]);
        app.args(&w.command[1..])
            .env("HOST", &address)
            .env("PORT", w.port.to_string())
            .env("HTTP_PROXY", format!("http://{address}:15001"))
            .env("http_proxy", format!("http://{address}:15001"))
            .env("NO_PROXY", "")
            .envs(&w.env);
        let app_pid = spawn(&mut app, &logs.join(format!("{}.log", w.name)))?;
        println!(
            "▸ workload {} at {address} (app pid {app_pid}, sidecar pid {sidecar_pid})",
            w.name
        );
        state.workloads.push(Started {
            name: w.name.clone(),
            service: w.service.clone(),
            address,
            app_pid,
            sidecar_pid,
            admin,
        });
    }
    state.start_times = state
        .pids()
        .into_iter()
        .filter_map(|p| start_time(p).map(|t| (p, t)))
        .collect();
    std::fs::write(&state_file, serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", state_file.display()))?;
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut ready = 0;
            for w in &state.workloads {
                if get_status(&w.admin, "/ready")
                    .await
                    .is_ok_and(|s| s.is_success())
                {
                    ready += 1;
                }
            }
            println!("▸ sidecars ready: {ready}/{}", state.workloads.len());
            if ready == state.workloads.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "not every sidecar became ready; see the logs in {}",
                    logs.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for file in &manifest.resources {
            let applied = Command::new(std::env::current_exe()?)
                .args(["apply", "--server", &server, "-f"])
                .arg(file)
                .status()?;
            if !applied.success() {
                bail!("applying {} failed", file.display());
            }
        }
        anyhow::Ok(())
    })?;
    println!(
        "✔ mesh up ({} workloads, {} mode). Try:",
        state.workloads.len(),
        state.mode
    );
    if let Some(first) = state.workloads.first() {
        println!(
            "    curl http://{}:15006/        # {} through its sidecar",
            first.address, first.name
        );
    }
    println!("    weft status    weft get se    weft down");
    Ok(ExitCode::SUCCESS)
}

/// Lists the workloads `weft up` started, their addresses and sidecar readiness.
pub fn status(args: &StateArgs) -> anyhow::Result<ExitCode> {
    let Ok(text) = std::fs::read_to_string(args.state_dir.join("state.json")) else {
        println!("No mesh is up (no state in {}).", args.state_dir.display());
        return Ok(ExitCode::from(1));
    };
    let state: State = serde_json::from_str(&text)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let proxies = runtime
        .block_on(call(&state.api, Method::GET, "/debug/proxies", None))
        .ok();
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
    println!(
        "{:<24} {:<24} {:<14} {:<10} {:<10} CONFIG VERSION",
        "WORKLOAD", "SERVICE", "ADDRESS", "APP", "SIDECAR"
    );
    for w in &state.workloads {
        let ready = runtime
            .block_on(get_status(&w.admin, "/ready"))
            .is_ok_and(|s| s.is_success());
        let version = proxies
            .as_ref()
            .and_then(|p| p.body["proxies"].as_array().cloned())
            .and_then(|list| {
                list.into_iter()
                    .find(|p| p["id"].as_str().is_some_and(|id| id.contains(&w.name)))
            })
            .and_then(|p| p["acked_version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<24} {:<14} {:<10} {:<10} {version}",
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

/// Stops everything `weft up` started and removes its state; safe to run twice.
pub fn down(args: &StateArgs) -> anyhow::Result<ExitCode> {
    let file = args.state_dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        println!(
            "Nothing to stop (no state in {}).",
            args.state_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let state: State =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
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
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while pids.iter().any(|p| state.ours(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids.iter().filter(|p| state.ours(**p)) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    let _ = std::fs::remove_dir_all(args.state_dir.join("control"));
    println!("✔ mesh down ({} processes stopped)", pids.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_pid_is_not_ours() {
        let me = std::process::id();
        let started = start_time(me).expect("this process has a start time");
        let mut state = State {
            mode: "loopback".into(),
            api: String::new(),
            control_pid: Some(me),
            services: Vec::new(),
            start_times: BTreeMap::from([(me, started)]),
            workloads: Vec::new(),
        };
        assert!(state.ours(me), "same pid, same start time");
        state.start_times.insert(me, started + 1);
        assert!(
            !state.ours(me),
            "same pid, another process: never signalled"
        );
    }
}
