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
use super::state::StartedGateway;
use super::workloads::spawn;

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

impl Starting<'_> {
    /// Starts a gateway proxy for each Gateway API Gateway of a class weft serves.
    pub(super) fn start_gateways(&mut self, weft: &Path) -> anyhow::Result<()> {
        let resources = &self.manifest.kube.gateways;
        let gateways = served_gateways(resources);
        for (i, g) in gateways.iter().enumerate() {
            let (ns, name) = (g.metadata.namespace().to_string(), g.metadata.name.clone());
            let workload = format!("{name}-{}", g.spec.gateway_class_name);
            let address = format!("{GATEWAY_PREFIX}{}", i + 1);
            let ports = host_ports(g)?;
            let mut command = Command::new(weft);
            self.proxy(
                &mut command,
                &workload,
                &ns,
                &workload,
                &format!("{GATEWAY_NAME_LABEL}={name},istio.io/gateway-name={name}"),
            )?;
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
                &self.logs.join(format!("gateway-{ns}-{name}.log")),
            )?;
            let scheme = |port: u16| {
                let tls = g.spec.listeners.iter().any(|l| {
                    l.port == u32::from(port) && matches!(l.protocol.as_str(), "HTTPS" | "TLS")
                });
                if tls { "https" } else { "http" }
            };
            let shown: Vec<String> = listening
                .iter()
                .map(|(p, a)| format!("port {p} at {}://{a}/", scheme(*p)))
                .collect();
            println!("▸ Gateway {ns}/{name}: {} (pid {pid})", shown.join(", "));
            self.state.gateways.push(StartedGateway {
                namespace: ns,
                name,
                workload,
                address,
                ports: listening,
                pid,
                admin,
                stats,
            });
            self.save()?;
        }
        Ok(())
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
