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

pub mod manifest;
pub mod netns;
pub mod state;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;

use self::manifest::{Manifest, Workload};
use self::state::{Started, StartedIngress, State, alive};
use crate::client::{call, get_status};

/// The loopback block of loopback mode's workloads (127.0.10.1, .2, ...).
const LOOPBACK_PREFIX: &str = "127.0.10.";
/// The ingress gateway's own address for its outbound and admin listeners (both modes).
const INGRESS_LOCAL: &str = "127.0.10.254";

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
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    Ok(child.id())
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
    let mut starting = Starting {
        args,
        manifest: &manifest,
        logs,
        state: &mut state,
        runtime: &runtime,
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

/// One `weft up` in progress; every step records what it created before the next.
struct Starting<'a> {
    args: &'a UpArgs,
    manifest: &'a Manifest,
    logs: PathBuf,
    state: &'a mut State,
    runtime: &'a tokio::runtime::Runtime,
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
            netns::check_sidecar_can_run(&weft)?;
            println!(
                "▸ namespace mode: bridge {} at {}/24",
                netns::BRIDGE,
                netns::BRIDGE_IP
            );
            let created = netns::create_bridge(&mut self.state.network);
            self.save()?;
            created?;
        }
        // The sidecars dial the control plane where they are: the bridge in namespace mode.
        let xds = if self.namespaces() {
            SocketAddr::from((netns::BRIDGE_IP, self.args.xds.port()))
        } else {
            self.args.xds
        };
        self.state.xds = xds.to_string();
        let otlp = if self.namespaces() {
            SocketAddr::from((netns::BRIDGE_IP, self.args.otlp.port()))
        } else {
            self.args.otlp
        };
        self.state.otlp = otlp.to_string();
        self.state.query = self.args.query.to_string();
        self.state.dashboard = self.args.dashboard.to_string();
        self.start_control_plane(&weft, xds, otlp)?;
        let vips = self.create_services()?;
        for (i, w) in self.manifest.workloads.iter().enumerate() {
            let started = if self.namespaces() {
                self.start_in_namespace(&weft, i, w, &vips)?
            } else {
                self.start_on_loopback(&weft, i, w)?
            };
            println!(
                "▸ workload {} at {} (app pid {}, sidecar pid {})",
                w.name, started.address, started.app_pid, started.sidecar_pid
            );
            self.state.workloads.push(started);
            self.save()?;
        }
        self.start_ingress(&weft)?;
        self.wait_ready()?;
        let server = self.args.api.to_string();
        for file in &self.manifest.resources {
            let applied = Command::new(&weft)
                .args(["apply", "--server", &server, "-f"])
                .arg(file)
                .status()?;
            if !applied.success() {
                bail!("applying {} failed", file.display());
            }
        }
        if !self.manifest.resources.is_empty() {
            wait_for_config(self.runtime, &server, &self.state.proxy_ids());
        }
        println!(
            "✔ mesh up ({} workloads, {} mode). Try:",
            self.state.workloads.len(),
            self.state.mode
        );
        if let Some(ingress) = &self.state.ingress {
            println!(
                "    open http://{}/            # the ingress gateway (bff-service's page in the seed)",
                ingress.address
            );
        }
        println!(
            "    open http://{}/            # the dashboard: graph, traces, metrics, config, traffic",
            self.state.dashboard
        );
        println!("    weft status    weft get se    weft prometheus-config    weft down");
        Ok(())
    }

    fn start_control_plane(
        &mut self,
        weft: &Path,
        xds: SocketAddr,
        otlp: SocketAddr,
    ) -> anyhow::Result<()> {
        let api = self.args.api;
        let running = self
            .runtime
            .block_on(call(&api.to_string(), Method::GET, "/debug/proxies", None))
            .is_ok_and(|a| a.status.is_success());
        if running {
            println!("▸ using the control plane already running on {api}");
            if std::net::TcpStream::connect_timeout(&xds, Duration::from_secs(1)).is_err() {
                bail!(
                    "the running control plane's proxy stream is not reachable at {xds}, where the sidecars dial it; stop it, or start it with `--xds {xds}`"
                );
            }
            return Ok(());
        }
        println!(
            "▸ starting the control plane on {api} (proxy stream on {xds}, traces in on {otlp}, trace search on {}, dashboard on http://{}/)",
            self.args.query, self.args.dashboard
        );
        let pid = spawn(
            Command::new(weft)
                .args([
                    "control",
                    "--api",
                    &api.to_string(),
                    "--xds",
                    &xds.to_string(),
                ])
                .args(["--otlp", &otlp.to_string()])
                .args(["--query", &self.args.query.to_string()])
                .args(["--dashboard", &self.args.dashboard.to_string()])
                .arg("--state-dir")
                .arg(self.args.state_dir.join("control")),
            &self.logs.join("control.log"),
        )?;
        self.state.control_pid = Some(pid);
        self.save()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || !alive(pid) {
                bail!(
                    "the control plane did not start; see {}",
                    self.logs.join("control.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// One ServiceEntry per service, selecting its workloads by label; in namespace
    /// mode each gets a virtual IP. Returns (namespace, service, virtual IP).
    fn create_services(&mut self) -> anyhow::Result<Vec<(String, String, Ipv4Addr)>> {
        let mut services: BTreeMap<(String, String), u16> = BTreeMap::new();
        for w in &self.manifest.workloads {
            services.insert((w.namespace.clone(), w.service.clone()), w.port);
        }
        let server = self.args.api.to_string();
        let mut vips = Vec::new();
        for (i, ((ns, service), port)) in services.iter().enumerate() {
            let vip = netns::service_vip(i);
            let mut spec = serde_json::json!({
                "hosts": [format!("{service}.{ns}.svc.cluster.local")],
                "location": "MESH_INTERNAL", "resolution": "STATIC",
                "ports": [{"number": port, "name": "http", "protocol": "HTTP"}],
                "workloadSelector": {"labels": {"app": service}}
            });
            if self.namespaces() {
                spec["addresses"] = serde_json::json!([vip.to_string()]);
            }
            let se = serde_json::json!({
                "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": service, "namespace": ns, "labels": {"weft.io/up": "true"}},
                "spec": spec,
            });
            let path = crate::client::path(weft_api::Kind::ServiceEntry, Some(ns), None);
            let answer = self.runtime.block_on(call(
                &server,
                Method::POST,
                &path,
                Some(serde_json::to_vec(&se)?),
            ))?;
            if answer.status.is_success() {
                self.state.services.push((ns.clone(), service.clone()));
                self.save()?;
            } else if answer.status != http::StatusCode::CONFLICT {
                bail!("creating the service {service}: {}", answer.message());
            } else if self.namespaces() {
                // Its virtual IP must be the one the hosts files give.
                bail!(
                    "ServiceEntry {ns}/{service} already exists in the control plane; delete it (`weft delete se {service} -n {ns}`) or stop the mesh that created it"
                );
            }
            if self.namespaces() {
                println!("▸ service {service}.{ns} (port {port}, virtual IP {vip})");
            } else {
                println!("▸ service {service}.{ns} (port {port})");
            }
            vips.push((ns.clone(), service.clone(), vip));
        }
        Ok(vips)
    }

    /// Where the proxies send spans, and how many; their access logs go to their log file.
    fn tracing_args(&self) -> [String; 6] {
        let endpoint = self
            .manifest
            .tracing
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}/v1/traces", self.state.otlp));
        [
            "--trace-endpoint".into(),
            endpoint,
            "--trace-sampling".into(),
            self.manifest.tracing.sampling.to_string(),
            "--access-log".into(),
            "-".into(),
        ]
    }

    /// A bootstrap token for the workload's identity from the control plane's CA (none
    /// when the CA is off, e.g. an older control plane).
    fn ca_token(&self, namespace: &str, account: &str) -> anyhow::Result<Option<String>> {
        let body = serde_json::json!({"namespace": namespace, "serviceAccount": account});
        let answer = self.runtime.block_on(call(
            &self.args.api.to_string(),
            Method::POST,
            "/ca/tokens",
            Some(serde_json::to_vec(&body)?),
        ))?;
        if answer.status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            bail!("a CA token for {namespace}/{account}: {}", answer.message());
        }
        Ok(answer.body["token"].as_str().map(str::to_string))
    }

    fn sidecar_command(&self, weft: &Path, w: &Workload) -> anyhow::Result<Command> {
        let mut labels = w.labels.clone();
        labels.insert("app".into(), w.service.clone());
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut cmd = Command::new(weft);
        // The token travels in the environment, not in the arguments `ps` shows.
        if let Some(token) = self.ca_token(&w.namespace, &w.service_account)? {
            cmd.env("WEFT_CA_TOKEN", token);
        }
        cmd.args(["proxy", "--control", &self.state.xds])
            .args(self.tracing_args())
            .args(["--workload", &w.name, "--namespace", &w.namespace])
            .args(["--service-account", &w.service_account])
            .args(["--labels", &labels.join(",")]);
        Ok(cmd)
    }

    fn start_on_loopback(
        &mut self,
        weft: &Path,
        i: usize,
        w: &Workload,
    ) -> anyhow::Result<Started> {
        let address = format!("{LOOPBACK_PREFIX}{}", i + 1);
        let admin = format!("{address}:15000");
        let mut sidecar = self.sidecar_command(weft, w)?;
        sidecar
            .args(["--app", &format!("{address}:{}", w.port)])
            .args(["--inbound", &format!("{address}:15006")])
            .args(["--outbound", &format!("{address}:15001"), "--admin", &admin])
            .args(["--stats", &format!("{address}:15020")])
            .args(["--address", &address, "--port", "http=15006"]);
        let sidecar_pid = spawn(
            &mut sidecar,
            &self.logs.join(format!("{}.sidecar.log", w.name)),
        )?;
        let mut app = Command::new(&w.command[0]);
        app.args(&w.command[1..])
            .env("HOST", &address)
            .env("PORT", w.port.to_string())
            .env("HTTP_PROXY", format!("http://{address}:15001"))
            .env("http_proxy", format!("http://{address}:15001"))
            .env("NO_PROXY", "")
            .envs(&w.env);
        let app_pid = spawn(&mut app, &self.logs.join(format!("{}.log", w.name)))?;
        Ok(Started {
            name: w.name.clone(),
            service: w.service.clone(),
            namespace: w.namespace.clone(),
            app_pid,
            sidecar_pid,
            stats: format!("{address}:15020"),
            address,
            admin,
            netns: None,
        })
    }

    fn start_in_namespace(
        &mut self,
        weft: &Path,
        i: usize,
        w: &Workload,
        vips: &[(String, String, Ipv4Addr)],
    ) -> anyhow::Result<Started> {
        let ns = netns::namespace_of(&w.name);
        let created = netns::create_namespace(
            &mut self.state.network,
            &ns,
            i,
            &netns::hosts_file(&w.namespace, vips),
        );
        self.save()?;
        created?;
        let address = netns::workload_ip(i).to_string();
        // The sidecar runs as the uid iptables exempts, so its own traffic is not redirected.
        let mut sidecar = netns::exec_in(&ns);
        let uid = netns::SIDECAR_UID;
        sidecar.args([
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ]);
        let inner = self.sidecar_command(weft, w)?;
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                sidecar.env(k, v);
            }
        }
        sidecar
            .arg(inner.get_program())
            .args(inner.get_args())
            .args(["--app", &format!("127.0.0.1:{}", w.port)])
            .args(["--inbound", "0.0.0.0:15006"])
            .args([
                "--outbound",
                "127.0.0.1:15001",
                "--admin",
                "127.0.0.1:15000",
            ])
            // Reachable from the host (Prometheus); iptables leave port 15020 alone.
            .args(["--stats", "0.0.0.0:15020"])
            .args(["--address", &address, "--port", &format!("http={}", w.port)]);
        let sidecar_pid = spawn(
            &mut sidecar,
            &self.logs.join(format!("{}.sidecar.log", w.name)),
        )?;
        // A plain network for the app: no proxy settings, names from the hosts file.
        let mut app = netns::exec_in(&ns);
        app.args(&w.command)
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env("HOST", "0.0.0.0")
            .env("PORT", w.port.to_string())
            .envs(&w.env);
        let app_pid = spawn(&mut app, &self.logs.join(format!("{}.log", w.name)))?;
        Ok(Started {
            name: w.name.clone(),
            service: w.service.clone(),
            namespace: w.namespace.clone(),
            app_pid,
            sidecar_pid,
            admin: "127.0.0.1:15000".into(),
            stats: format!("{address}:15020"),
            address,
            netns: Some(ns),
        })
    }

    /// The ingress gateway: a `weft proxy` labelled `istio: ingressgateway` in
    /// `istio-system`, on the host, serving the manifest's Gateway port.
    fn start_ingress(&mut self, weft: &Path) -> anyhow::Result<()> {
        let ingress = &self.manifest.ingress;
        let address = self.args.ingress.unwrap_or(ingress.address);
        let admin = format!("{INGRESS_LOCAL}:15000");
        let mut command = Command::new(weft);
        // Istio's ingress gateway identity: it calls the mesh over mTLS.
        if let Some(token) =
            self.ca_token("istio-system", "istio-ingressgateway-service-account")?
        {
            command.env("WEFT_CA_TOKEN", token);
        }
        let pid = spawn(
            command
                .args(["proxy", "--control", &self.state.xds])
                .args(self.tracing_args())
                .args([
                    "--workload",
                    "istio-ingressgateway",
                    "--namespace",
                    "istio-system",
                    "--service-account",
                    "istio-ingressgateway-service-account",
                ])
                .args(["--labels", "istio=ingressgateway,app=istio-ingressgateway"])
                .args(["--gateway", &format!("{}={address}", ingress.port)])
                .args(["--outbound", &format!("{INGRESS_LOCAL}:15001")])
                .args(["--stats", &format!("{INGRESS_LOCAL}:15020")])
                .args(["--admin", &admin]),
            &self.logs.join("ingressgateway.log"),
        )?;
        println!(
            "▸ ingress gateway at http://{address}/ (Gateway port {}, pid {pid})",
            ingress.port
        );
        self.state.ingress = Some(StartedIngress {
            address: address.to_string(),
            pid,
            admin,
            stats: format!("{INGRESS_LOCAL}:15020"),
        });
        self.save()
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
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
            let ingress = self.state.ingress.as_ref().is_none_or(|i| {
                self.runtime
                    .block_on(get_status(&i.admin, "/ready"))
                    .is_ok_and(|s| s.is_success())
            });
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

fn sidecar_ready(runtime: &tokio::runtime::Runtime, w: &Started) -> bool {
    match &w.netns {
        Some(ns) => w
            .admin
            .parse()
            .ok()
            .and_then(|admin| netns::probe(ns, admin, "/ready"))
            .is_some_and(|s| s == 200),
        None => runtime
            .block_on(get_status(&w.admin, "/ready"))
            .is_ok_and(|s| s.is_success()),
    }
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
        let id = weft_proxy::control_source::node_id(false, &w.name, &w.namespace);
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
    // Each process leads its own group: signal the group, so an app's children go too.
    let signal = |sig: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    };
    for pid in &pids {
        signal("-TERM", *pid);
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while pids.iter().any(|p| state.ours(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        signal("-KILL", *pid);
    }
    std::thread::sleep(Duration::from_millis(100));
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
