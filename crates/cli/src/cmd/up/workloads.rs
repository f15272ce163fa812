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
use super::state::{
    INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT, INGRESS_WORKLOAD, Started, StartedIngress,
};
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

/// Who a proxy is: its workload, namespace, identity and labels (`k=v,k=v`).
pub(super) struct ProxyIdentity<'a> {
    pub workload: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub labels: &'a str,
}

/// A bootstrap token for a workload's identity from the control plane's CA at `api`
/// (none when the CA is off, e.g. an older control plane).
pub(super) async fn ca_token(
    api: &str,
    namespace: &str,
    account: &str,
) -> anyhow::Result<Option<String>> {
    let body = serde_json::json!({"namespace": namespace, "serviceAccount": account});
    let answer = call(
        api,
        Method::POST,
        "/ca/tokens",
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    if answer.status == http::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !answer.status.is_success() {
        bail!("a CA token for {namespace}/{account}: {}", answer.message());
    }
    Ok(answer.body["token"].as_str().map(str::to_string))
}

/// Makes `cmd` (which runs `weft`) a `weft proxy` of `who`, dialling the control plane's
/// proxy stream at `xds`, with `flags` (tracing, access log) and its CA `token`.
pub(super) fn proxy_command(
    cmd: &mut Command,
    who: &ProxyIdentity<'_>,
    xds: &str,
    flags: &[String],
    token: Option<String>,
) {
    // The token travels in the environment, not in the arguments `ps` shows.
    if let Some(token) = token {
        cmd.env("WEFT_CA_TOKEN", token);
    }
    cmd.args(["proxy", "--control", xds])
        .args(flags)
        .args(["--workload", who.workload, "--namespace", who.namespace])
        .args(["--service-account", who.service_account])
        .args(["--labels", who.labels]);
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

    /// Where the proxies send spans, and how many (unless the control plane started here
    /// pushes it in its mesh config); their access logs go to their log file. Kept in the
    /// state, so the gateway deployer starts its proxies the same way.
    pub(super) fn tracing_args(&self) -> Vec<String> {
        let mut args = vec!["--access-log".into(), "-".into()];
        if self.mesh_config_pushed {
            return args;
        }
        let endpoint = self
            .manifest
            .tracing
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}/v1/traces", self.state.otlp));
        args.extend([
            "--trace-endpoint".into(),
            endpoint,
            "--trace-sampling".into(),
            self.manifest.tracing.sampling.to_string(),
        ]);
        args
    }

    /// Makes `cmd` (which runs `weft`) a `weft proxy` for `workload` in `namespace` with
    /// the identity of `service_account`: its control plane, tracing, identity and labels.
    pub(super) fn proxy(
        &self,
        cmd: &mut Command,
        workload: &str,
        namespace: &str,
        service_account: &str,
        labels: &str,
    ) -> anyhow::Result<()> {
        let token = self.runtime.block_on(ca_token(
            &self.args.api.to_string(),
            namespace,
            service_account,
        ))?;
        proxy_command(
            cmd,
            &ProxyIdentity {
                workload,
                namespace,
                service_account,
                labels,
            },
            &self.state.xds,
            &self.state.proxy_flags,
            token,
        );
        Ok(())
    }

    /// Where the workload at `index` runs; in namespace mode, creates its namespace.
    pub(super) fn place(
        &mut self,
        index: usize,
        w: &Workload,
        vips: &[(String, String, Ipv4Addr)],
    ) -> anyhow::Result<Placement> {
        if !self.namespaces() {
            return Ok(Placement::Loopback {
                address: format!("{LOOPBACK_PREFIX}{}", index + 1),
            });
        }
        let netns = netns::namespace_of(&w.name);
        let created = netns::create_namespace(
            &mut self.state.network,
            &netns,
            index,
            &netns::hosts_file(&w.namespace, vips),
        );
        self.save()?;
        created?;
        Ok(Placement::Namespace {
            netns,
            address: netns::workload_ip(index).to_string(),
        })
    }

    /// Starts the sidecar of `w`, then its app, as `placement` lays them out.
    pub(super) fn start_workload(
        &mut self,
        weft: &Path,
        w: &Workload,
        placement: Placement,
    ) -> anyhow::Result<Started> {
        let mut labels = w.labels.clone();
        labels.insert("app".into(), w.service.clone());
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let listen = placement.listeners(w.port);
        let mut sidecar = placement.sidecar(weft);
        self.proxy(
            &mut sidecar,
            &w.name,
            &w.namespace,
            &w.service_account,
            &labels.join(","),
        )?;
        sidecar
            .args(["--app", &listen.app])
            .args(["--inbound", &listen.inbound])
            .args(["--outbound", &listen.outbound, "--admin", &listen.admin])
            .args(["--stats", &listen.stats])
            .args(["--address", placement.address()])
            .args(["--port", &format!("http={}", listen.service_port)]);
        for name in w.port_names.iter().filter(|n| *n != "http") {
            sidecar.args(["--port", &format!("{name}={}", listen.service_port)]);
        }
        let sidecar_pid = spawn(
            &mut sidecar,
            &self.logs.join(format!("{}.sidecar.log", w.name)),
        )?;
        let app_pid = spawn(
            &mut placement.app(w),
            &self.logs.join(format!("{}.log", w.name)),
        )?;
        let address = placement.address().to_string();
        Ok(Started {
            name: w.name.clone(),
            service: w.service.clone(),
            namespace: w.namespace.clone(),
            app_pid,
            sidecar_pid,
            admin: listen.admin,
            stats: format!("{address}:15020"),
            address,
            netns: placement.into_netns(),
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
        self.proxy(
            &mut command,
            INGRESS_WORKLOAD,
            INGRESS_NAMESPACE,
            INGRESS_SERVICE_ACCOUNT,
            "istio=ingressgateway,app=istio-ingressgateway",
        )?;
        command.args(["--gateway", &format!("{}={address}", ingress.port)]);
        for extra in &ingress.extra_ports {
            command.args(["--gateway", &format!("{}={}", extra.port, extra.address)]);
        }
        let pid = spawn(
            command
                .args(["--outbound", &format!("{INGRESS_LOCAL}:15001")])
                .args(["--stats", &format!("{INGRESS_LOCAL}:15020")])
                .args(["--admin", &admin]),
            &self.logs.join("ingressgateway.log"),
        )?;
        println!(
            "▸ ingress gateway at http://{address}/ (Gateway port {}, pid {pid})",
            ingress.port
        );
        for extra in &ingress.extra_ports {
            println!("  and at {} (Gateway port {})", extra.address, extra.port);
        }
        self.state.ingress = Some(StartedIngress {
            address: address.to_string(),
            pid,
            admin,
            stats: format!("{INGRESS_LOCAL}:15020"),
        });
        self.save()
    }
}

/// Where a workload runs, which decides its sidecar's listeners and how the app's
/// traffic reaches the sidecar.
pub(super) enum Placement {
    /// Loopback mode: app and sidecar on the workload's own 127.0.10.N; the app is given
    /// HTTP_PROXY pointing at the sidecar, whose inbound listener is the service's port.
    Loopback {
        /// The workload's address.
        address: String,
    },
    /// Namespace mode: app and sidecar alone in network namespace `netns`, at `address`
    /// on the bridge; iptables redirect the app's TCP to the sidecar, which runs as
    /// [`netns::SIDECAR_UID`] so its own traffic is not redirected.
    Namespace {
        /// The network namespace.
        netns: String,
        /// The workload's address on the bridge.
        address: String,
    },
}

/// Where a sidecar finds its app, and the address and port each of its listeners binds.
struct Listeners {
    /// Where the app listens, as the sidecar reaches it.
    app: String,
    inbound: String,
    outbound: String,
    admin: String,
    stats: String,
    /// The service port the sidecar registers (`http=<port>`), where callers connect.
    service_port: u16,
}

impl Placement {
    /// The workload's address, where other workloads and the host reach it.
    fn address(&self) -> &str {
        match self {
            Placement::Loopback { address } | Placement::Namespace { address, .. } => address,
        }
    }

    /// The network namespace, in namespace mode.
    fn into_netns(self) -> Option<String> {
        match self {
            Placement::Loopback { .. } => None,
            Placement::Namespace { netns, .. } => Some(netns),
        }
    }

    fn listeners(&self, app_port: u16) -> Listeners {
        match self {
            Placement::Loopback { address } => Listeners {
                app: format!("{address}:{app_port}"),
                inbound: format!("{address}:15006"),
                outbound: format!("{address}:15001"),
                admin: format!("{address}:15000"),
                stats: format!("{address}:15020"),
                // Callers come through their sidecars' outbound to the inbound listener.
                service_port: 15006,
            },
            Placement::Namespace { .. } => Listeners {
                app: format!("127.0.0.1:{app_port}"),
                inbound: "0.0.0.0:15006".into(),
                outbound: "127.0.0.1:15001".into(),
                admin: "127.0.0.1:15000".into(),
                // Reachable from the host (Prometheus); iptables leave port 15020 alone.
                stats: "0.0.0.0:15020".into(),
                // Callers dial the app's port; iptables redirect it to the inbound listener.
                service_port: app_port,
            },
        }
    }

    /// A command running `weft` as the sidecar, placed here.
    fn sidecar(&self, weft: &Path) -> Command {
        match self {
            Placement::Loopback { .. } => Command::new(weft),
            Placement::Namespace { netns, .. } => {
                // The sidecar runs as the uid iptables exempts, so its own traffic is not
                // redirected.
                let mut cmd = netns::exec_in(netns);
                let uid = netns::SIDECAR_UID;
                cmd.args([
                    "setpriv",
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                ])
                .arg(weft);
                cmd
            }
        }
    }

    /// A command running the app of `w`, placed here, with its environment.
    fn app(&self, w: &Workload) -> Command {
        let mut cmd = match self {
            Placement::Loopback { address } => {
                let mut cmd = Command::new(&w.command[0]);
                cmd.args(&w.command[1..])
                    .env("HOST", address)
                    .env("HTTP_PROXY", format!("http://{address}:15001"))
                    .env("http_proxy", format!("http://{address}:15001"))
                    .env("NO_PROXY", "");
                cmd
            }
            Placement::Namespace { netns, .. } => {
                // A plain network for the app: no proxy settings, names from the hosts file.
                let mut cmd = netns::exec_in(netns);
                cmd.args(&w.command)
                    .env_remove("HTTP_PROXY")
                    .env_remove("http_proxy")
                    .env_remove("HTTPS_PROXY")
                    .env_remove("https_proxy")
                    .env("HOST", "0.0.0.0");
                cmd
            }
        };
        cmd.env("PORT", w.port.to_string()).envs(&w.env);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsStr;

    use super::*;

    fn workload() -> Workload {
        Workload {
            name: "reviews-v1".into(),
            service: "reviews".into(),
            namespace: "default".into(),
            service_account: "reviews".into(),
            labels: BTreeMap::new(),
            command: vec!["python3".into(), "app.py".into()],
            port: 8080,
            env: BTreeMap::from([("VERSION".into(), "v1".into())]),
            port_names: Vec::new(),
        }
    }

    fn args(cmd: &Command) -> Vec<&OsStr> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .collect()
    }

    fn envs(cmd: &Command) -> Vec<(&OsStr, Option<&OsStr>)> {
        let mut envs: Vec<_> = cmd.get_envs().collect();
        envs.sort();
        envs
    }

    #[test]
    fn on_loopback_everything_binds_the_workload_address() {
        let placement = Placement::Loopback {
            address: "127.0.10.1".into(),
        };
        let l = placement.listeners(8080);
        assert_eq!(
            [&l.app, &l.inbound, &l.outbound, &l.admin, &l.stats],
            [
                "127.0.10.1:8080",
                "127.0.10.1:15006",
                "127.0.10.1:15001",
                "127.0.10.1:15000",
                "127.0.10.1:15020"
            ]
        );
        assert_eq!(l.service_port, 15006);
        assert_eq!(
            args(&placement.sidecar(Path::new("/bin/weft"))),
            ["/bin/weft"]
        );
        let app = placement.app(&workload());
        assert_eq!(args(&app), ["python3", "app.py"]);
        let set = |k: &'static str, v: &'static str| (OsStr::new(k), Some(OsStr::new(v)));
        assert_eq!(
            envs(&app),
            [
                set("HOST", "127.0.10.1"),
                set("HTTP_PROXY", "http://127.0.10.1:15001"),
                set("NO_PROXY", ""),
                set("PORT", "8080"),
                set("VERSION", "v1"),
                set("http_proxy", "http://127.0.10.1:15001"),
            ]
        );
        assert_eq!(placement.into_netns(), None);
    }

    #[test]
    fn in_a_namespace_the_sidecar_runs_as_its_uid_and_the_app_without_proxy() {
        let placement = Placement::Namespace {
            netns: "weft-reviews-v1".into(),
            address: "198.18.0.2".into(),
        };
        let l = placement.listeners(8080);
        assert_eq!(
            [&l.app, &l.inbound, &l.outbound, &l.admin, &l.stats],
            [
                "127.0.0.1:8080",
                "0.0.0.0:15006",
                "127.0.0.1:15001",
                "127.0.0.1:15000",
                "0.0.0.0:15020"
            ]
        );
        assert_eq!(l.service_port, 8080);
        assert_eq!(placement.address(), "198.18.0.2");
        assert_eq!(
            args(&placement.sidecar(Path::new("/bin/weft"))),
            [
                "ip",
                "netns",
                "exec",
                "weft-reviews-v1",
                "setpriv",
                "--reuid=1337",
                "--regid=1337",
                "--clear-groups",
                "/bin/weft"
            ]
        );
        let app = placement.app(&workload());
        assert_eq!(
            args(&app),
            [
                "ip",
                "netns",
                "exec",
                "weft-reviews-v1",
                "python3",
                "app.py"
            ]
        );
        let set = |k: &'static str, v: &'static str| (OsStr::new(k), Some(OsStr::new(v)));
        let unset = |k: &'static str| (OsStr::new(k), None);
        assert_eq!(
            envs(&app),
            [
                set("HOST", "0.0.0.0"),
                unset("HTTPS_PROXY"),
                unset("HTTP_PROXY"),
                set("PORT", "8080"),
                set("VERSION", "v1"),
                unset("http_proxy"),
                unset("https_proxy"),
            ]
        );
        assert_eq!(placement.into_netns().as_deref(), Some("weft-reviews-v1"));
    }
}
