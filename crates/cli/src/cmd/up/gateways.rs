//! Gateway API Gateways in `weft up`: as Istio's automated deployment creates a gateway
//! Deployment for each Gateway of its class, `weft up` starts a gateway proxy for each
//! Gateway among the manifest's resources whose class weft serves (`weft`, `istio`, or a
//! GatewayClass of weft's or Istio's controller).
//!
//! Each proxy is named `<gateway>-<class>` in the Gateway's namespace (Istio's Deployment
//! name), is labelled `gateway.networking.k8s.io/gateway-name: <gateway>` (so the
//! control plane gives it that Gateway's listeners) and gets a loopback address of its
//! own, 127.0.20.N for the N-th Gateway; a listener port below 1024 listens 8000 higher
//! (80 at 127.0.20.1:8080), so no root is needed, as a Gateway's Service maps its ports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use weft_api::gateway_api::Gateway;
use weft_api::{Object, Resource};
use weft_model::gateway::kubernetes::{GATEWAY_NAME_LABEL, served_gateways};

use super::Starting;
use super::state::{StartedGateway, State};
use super::workloads::{ProxyIdentity, ca_token, proxy_command, spawn};

/// The loopback block of the gateway proxies (127.0.20.1, .2, ...).
const GATEWAY_PREFIX: &str = "127.0.20.";

/// The host port a listener port listens on: 8000 higher below 1024.
pub fn host_port(port: u16) -> u16 {
    if port < 1024 { port + 8000 } else { port }
}

/// Each listener port of `g` and the host port it listens on; two listener ports that
/// would share a host port (80 and 8080) are an error naming both.
fn host_ports(g: &Object<Gateway>) -> anyhow::Result<Vec<(u16, u16)>> {
    let ports: BTreeSet<u16> = g
        .spec
        .listeners
        .iter()
        .filter_map(|l| u16::try_from(l.port).ok())
        .collect();
    let mut taken: BTreeMap<u16, u16> = BTreeMap::new();
    for port in &ports {
        if let Some(other) = taken.insert(host_port(*port), *port) {
            anyhow::bail!(
                "Gateway {}/{}: listener ports {other} and {port} would both listen on host port {} (weft up moves ports below 1024 up by 8000); use another port for one of them",
                g.metadata.namespace(),
                g.metadata.name,
                host_port(*port)
            );
        }
    }
    Ok(ports.into_iter().map(|p| (p, host_port(p))).collect())
}

/// Checks the Gateways among the manifest's resources before anything starts.
pub fn check(resources: &[Resource]) -> anyhow::Result<()> {
    for g in served_gateways(resources) {
        host_ports(g)?;
    }
    Ok(())
}

/// The lowest gateway address (127.0.20.N) no started gateway proxy has.
pub(super) fn free_address(started: &[StartedGateway]) -> anyhow::Result<String> {
    (1..=254)
        .map(|n| format!("{GATEWAY_PREFIX}{n}"))
        .find(|a| started.iter().all(|g| &g.address != a))
        .ok_or_else(|| anyhow::anyhow!("every gateway address {GATEWAY_PREFIX}1-254 is taken"))
}

/// True when the proxy `started` still fits `g`: same class, same listener ports (the
/// ports are the proxy's flags; everything else reaches it from the control plane).
pub(super) fn still_fits(started: &StartedGateway, g: &Object<Gateway>) -> bool {
    let ports: Vec<u16> = started.ports.iter().map(|(p, _)| *p).collect();
    started.class == g.spec.gateway_class_name
        && host_ports(g).is_ok_and(|h| h.iter().map(|(p, _)| *p).eq(ports.iter().copied()))
}

/// The proxy's workload name (Istio's Deployment name) and the CA identity it asks for.
pub(super) fn workload_of(g: &Object<Gateway>) -> String {
    format!("{}-{}", g.metadata.name, g.spec.gateway_class_name)
}

/// Starts the gateway proxy of `g` at `address`, as `state` starts proxies (its control
/// plane and flags), with the CA `token`; its log goes to `logs`.
pub(super) fn start_gateway(
    weft: &Path,
    logs: &Path,
    state: &State,
    g: &Object<Gateway>,
    address: String,
    token: Option<String>,
) -> anyhow::Result<StartedGateway> {
    let (ns, name) = (g.metadata.namespace().to_string(), g.metadata.name.clone());
    let workload = workload_of(g);
    let ports = host_ports(g)?;
    let mut command = Command::new(weft);
    proxy_command(
        &mut command,
        &ProxyIdentity {
            workload: &workload,
            namespace: &ns,
            service_account: &workload,
            labels: &format!("{GATEWAY_NAME_LABEL}={name},istio.io/gateway-name={name}"),
        },
        &state.xds,
        &state.proxy_flags,
        token,
    );
    let mut listening = Vec::new();
    for (port, on) in ports {
        let at = format!("{address}:{on}");
        command.args(["--gateway", &format!("{port}={at}")]);
        listening.push((port, at));
    }
    let admin = format!("{address}:15000");
    let stats = format!("{address}:15020");
    let pid = spawn(
        command
            .args(["--outbound", &format!("{address}:15001")])
            .args(["--stats", &stats])
            .args(["--admin", &admin]),
        &logs.join(format!("gateway-{ns}-{name}.log")),
    )?;
    Ok(StartedGateway {
        namespace: ns,
        name,
        workload,
        address,
        ports: listening,
        pid,
        admin,
        stats,
        class: g.spec.gateway_class_name.clone(),
    })
}

/// The line printed for a started gateway proxy: where each listener port is reached.
pub(super) fn describe(started: &StartedGateway, g: &Object<Gateway>) -> String {
    let scheme = |port: u16| {
        let tls =
            g.spec.listeners.iter().any(|l| {
                l.port == u32::from(port) && matches!(l.protocol.as_str(), "HTTPS" | "TLS")
            });
        if tls { "https" } else { "http" }
    };
    let shown: Vec<String> = started
        .ports
        .iter()
        .map(|(p, a)| format!("port {p} at {}://{a}/", scheme(*p)))
        .collect();
    format!(
        "▸ Gateway {}/{}: {} (pid {})",
        started.namespace,
        started.name,
        shown.join(", "),
        started.pid
    )
}

impl Starting<'_> {
    /// Starts a gateway proxy for each Gateway API Gateway of a class weft serves.
    pub(super) fn start_gateways(&mut self, weft: &Path) -> anyhow::Result<()> {
        let resources = &self.manifest.kube.gateways;
        for g in served_gateways(resources) {
            let address = free_address(&self.state.gateways)?;
            let workload = workload_of(g);
            let token = self.runtime.block_on(ca_token(
                &self.args.api.to_string(),
                g.metadata.namespace(),
                &workload,
            ))?;
            let started = start_gateway(weft, &self.logs, self.state, g, address, token)?;
            println!("{}", describe(&started, g));
            self.state.gateways.push(started);
            self.save()?;
        }
        Ok(())
    }

    /// Starts the gateway deployer, which from now on starts, restarts and stops gateway
    /// proxies as Gateways are applied, changed and deleted ([`super::deployer`]).
    pub(super) fn start_deployer(&mut self, weft: &Path) -> anyhow::Result<()> {
        let dir = std::path::absolute(&self.args.state_dir)?;
        let pid = spawn(
            Command::new(weft)
                .arg("gateway-deployer")
                .arg("--state-dir")
                .arg(&dir),
            &self.logs.join("gateway-deployer.log"),
        )?;
        self.state.deployer_pid = Some(pid);
        self.save()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn privileged_listener_ports_listen_8000_higher() {
        assert_eq!(super::host_port(80), 8080);
        assert_eq!(super::host_port(443), 8443);
        assert_eq!(super::host_port(8080), 8080);
    }
}
