//! What `weft up` started, written down as it goes, so `weft status` can show it and
//! `weft down` can remove exactly it, even after a crash half-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Everything one `weft up` created.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// `namespace` or `loopback`.
    pub mode: String,
    /// The control plane's resource API.
    pub api: String,
    /// The control plane's proxy stream, as the sidecars dial it.
    #[serde(default)]
    pub xds: String,
    /// The OTLP trace receiver the proxies send spans to.
    #[serde(default)]
    pub otlp: String,
    /// The Jaeger query API.
    #[serde(default)]
    pub query: String,
    /// The dashboard.
    #[serde(default)]
    pub dashboard: String,
    /// The control plane `weft up` started; `None` when it used one already running.
    pub control_pid: Option<u32>,
    /// The flags every proxy is started with beside its identity (tracing, access log),
    /// so the gateway deployer starts its proxies as `weft up` did.
    #[serde(default)]
    pub proxy_flags: Vec<String>,
    /// The gateway deployer: starts, restarts and stops the gateway proxies as Gateways
    /// are applied, changed and deleted after `weft up`.
    #[serde(default)]
    pub deployer_pid: Option<u32>,
    /// Gateways the deployer could not start a proxy for (`namespace/name` → why).
    #[serde(default)]
    pub gateway_problems: BTreeMap<String, String>,
    /// The ServiceEntries it created (namespace, name), removed by `down` from a control
    /// plane it did not start.
    #[serde(default)]
    pub services: Vec<(String, String)>,
    /// Each process's start time (clock ticks since boot, from /proc), so `down` after a
    /// crash or reboot never signals an unrelated process that got a recycled pid.
    #[serde(default)]
    pub start_times: BTreeMap<u32, u64>,
    /// The workloads.
    pub workloads: Vec<Started>,
    /// The ingress gateway.
    #[serde(default)]
    pub ingress: Option<StartedIngress>,
    /// A gateway proxy per Gateway API Gateway (Istio's automated deployment).
    #[serde(default)]
    pub gateways: Vec<StartedGateway>,
    /// Namespace mode: the bridge, namespaces, hosts files and host rules created.
    #[serde(default)]
    pub network: Network,
}

/// A workload `weft up` started.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    /// Workload name.
    pub name: String,
    /// Its service.
    pub service: String,
    /// Its namespace.
    #[serde(default)]
    pub namespace: String,
    /// Its address (namespace mode: on the bridge; loopback: 127.0.10.N).
    pub address: String,
    /// The app's pid.
    pub app_pid: u32,
    /// The sidecar's pid.
    pub sidecar_pid: u32,
    /// The sidecar's admin listener (inside `netns` when set).
    pub admin: String,
    /// The sidecar's stats listener (`/stats/prometheus`), reachable from the host.
    #[serde(default)]
    pub stats: String,
    /// Its network namespace (namespace mode).
    #[serde(default)]
    pub netns: Option<String>,
}

/// The workload name of the ingress gateway `weft up` starts (Istio's).
pub const INGRESS_WORKLOAD: &str = "istio-ingressgateway";
/// The namespace of the ingress gateway (Istio's).
pub const INGRESS_NAMESPACE: &str = "istio-system";
/// The service account of the ingress gateway, its mTLS identity (Istio's).
pub const INGRESS_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";

/// The ingress gateway `weft up` started.
#[derive(Debug, Serialize, Deserialize)]
pub struct StartedIngress {
    /// Where browsers reach it.
    pub address: String,
    /// Its pid.
    pub pid: u32,
    /// Its admin listener.
    pub admin: String,
    /// Its stats listener.
    #[serde(default)]
    pub stats: String,
}

/// The gateway proxy `weft up` started for a Gateway API Gateway.
#[derive(Debug, Serialize, Deserialize)]
pub struct StartedGateway {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// The proxy's workload name (`<gateway>-<class>`, as Istio names the Deployment).
    pub workload: String,
    /// Its own loopback address (127.0.20.N).
    pub address: String,
    /// Each listener port, and where it listens on the host.
    pub ports: Vec<(u16, String)>,
    /// Its pid.
    pub pid: u32,
    /// Its admin listener.
    pub admin: String,
    /// Its stats listener.
    pub stats: String,
    /// The Gateway's class when it was started (a new class restarts it).
    #[serde(default)]
    pub class: String,
}

/// What namespace mode created outside the processes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Network {
    /// The bridge joining the namespaces.
    #[serde(default)]
    pub bridge: Option<String>,
    /// The network namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The host ends of their veth pairs.
    #[serde(default)]
    pub veths: Vec<String>,
    /// The `/etc/netns/NAME` directories holding their hosts files.
    #[serde(default)]
    pub etc_dirs: Vec<PathBuf>,
    /// The host's FORWARD rule letting bridged traffic pass (only when the host filters
    /// bridged traffic through iptables).
    #[serde(default)]
    pub forward_rule: bool,
}

impl State {
    /// Reads the state in `dir`, if any.
    pub fn load(dir: &Path) -> anyhow::Result<Option<State>> {
        let file = dir.join("state.json");
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("reading {}", file.display()))
    }

    /// Writes the state to `dir` (atomically: a crash never leaves half a file).
    pub fn save(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.start_times = self
            .pids()
            .into_iter()
            .filter_map(|p| {
                self.start_times
                    .get(&p)
                    .copied()
                    .or_else(|| start_time(p))
                    .map(|t| (p, t))
            })
            .collect();
        let file = dir.join("state.json");
        let tmp = dir.join(".state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))
    }

    /// True when `pid` still runs and is the process `weft up` started (same start time).
    pub fn ours(&self, pid: u32) -> bool {
        // A pid without a recorded start time is never taken for ours.
        alive(pid)
            && self
                .start_times
                .get(&pid)
                .is_some_and(|t| start_time(pid) == Some(*t))
    }

    /// Every process `weft up` started (the control plane only when it started it).
    pub fn pids(&self) -> Vec<u32> {
        self.workloads
            .iter()
            .flat_map(|w| [w.app_pid, w.sidecar_pid])
            .chain(self.ingress.as_ref().map(|i| i.pid))
            .chain(self.gateways.iter().map(|g| g.pid))
            .chain(self.deployer_pid)
            .chain(self.control_pid)
            .filter(|p| *p != 0)
            .collect()
    }

    /// The control-plane ids of the proxies `weft up` started (as `weft proxy` forms them).
    pub fn proxy_ids(&self) -> Vec<String> {
        self.workloads
            .iter()
            .map(|w| weft_proto::node_id(false, &w.name, &w.namespace))
            .chain(
                self.ingress
                    .as_ref()
                    .map(|_| weft_proto::node_id(true, INGRESS_WORKLOAD, INGRESS_NAMESPACE)),
            )
            .chain(
                self.gateways
                    .iter()
                    .map(|g| weft_proto::node_id(true, &g.workload, &g.namespace)),
            )
            .collect()
    }

    /// True when something this state describes still exists.
    pub fn is_up(&self) -> bool {
        let n = &self.network;
        self.pids().into_iter().any(|p| self.ours(p))
            || n.bridge.is_some()
            || !n.namespaces.is_empty()
            || !n.veths.is_empty()
            || !n.etc_dirs.is_empty()
            || n.forward_rule
    }
}

/// A process's start time (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` runs (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
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
            control_pid: Some(me),
            start_times: BTreeMap::from([(me, started)]),
            ..State::default()
        };
        assert!(state.ours(me), "same pid, same start time");
        state.start_times.insert(me, started + 1);
        assert!(
            !state.ours(me),
            "same pid, another process: never signalled"
        );
    }
}
