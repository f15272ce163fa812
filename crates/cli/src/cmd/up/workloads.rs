//! The processes of a `weft up` mesh: each workload's app beside its sidecar, placed on
//! loopback or in a network namespace, and the ingress gateway on the host.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use http::Method;

use super::Starting;
use super::manifest::Workload;
use super::netns;
use super::state::{Started, StartedIngress};
use crate::client::call;

/// The loopback block of loopback mode's workloads (127.0.10.1, .2, ...).
const LOOPBACK_PREFIX: &str = "127.0.10.";
/// The ingress gateway's own address for its outbound and admin listeners (both modes).
const INGRESS_LOCAL: &str = "127.0.10.254";

/// Starts `cmd` in its own process group with its output in `log`; returns its pid.
pub(super) fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<u32> {
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

impl Starting<'_> {
    /// Namespace mode: checks the sidecars' uid can run `weft`, then creates the bridge
    /// joining the namespaces.
    pub(super) fn create_bridge(&mut self, weft: &Path) -> anyhow::Result<()> {
        netns::check_sidecar_can_run(weft)?;
        println!(
            "▸ namespace mode: bridge {} at {}/24",
            netns::BRIDGE,
            netns::BRIDGE_IP
        );
        let created = netns::create_bridge(&mut self.state.network);
        self.save()?;
        created
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

    pub(super) fn start_on_loopback(
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

    pub(super) fn start_in_namespace(
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
    pub(super) fn start_ingress(&mut self, weft: &Path) -> anyhow::Result<()> {
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
}
