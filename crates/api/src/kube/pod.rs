//! `core/v1` Pod: a Kubernetes workload. Its labels, IP and service account make it an
//! endpoint of the Services that select it; its containers' ports resolve named target ports.

use serde::{Deserialize, Serialize};

use super::{KubeView, port_in_range, port_name, protocol};
use crate::validate::{Validator, checks};

/// What weft reads of a Pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// The pod's spec.
    #[serde(default)]
    pub spec: PodSpec,
    /// What the cluster reports: the pod's IP and phase.
    #[serde(default)]
    pub status: PodStatus,
}

/// What weft reads of a pod spec (a Pod's, or a Deployment's template's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The service account the pod runs as (its mesh identity); `default` when absent.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// The deprecated alias of `serviceAccountName`.
    #[serde(default)]
    pub service_account: Option<String>,
    /// The containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Containers run before the others.
    #[serde(default)]
    pub init_containers: Vec<Container>,
}

impl PodSpec {
    /// The service account, defaulted as Kubernetes does.
    pub fn service_account(&self) -> &str {
        self.service_account_name
            .as_deref()
            .or(self.service_account.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    /// The container port named `name`, if a container declares one.
    pub fn named_port(&self, name: &str) -> Option<u16> {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
    }

    /// True when a container is Istio's sidecar (`istio-proxy`), as an injected pod has.
    pub fn has_sidecar(&self) -> bool {
        self.containers
            .iter()
            .chain(&self.init_containers)
            .any(|c| c.name == "istio-proxy")
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        if let Some(sa) = &self.service_account_name {
            v.field("serviceAccountName", |v| checks::object_name(v, sa));
        }
        v.each("containers", &self.containers, |v, c| c.validate(v));
        v.each("initContainers", &self.init_containers, |v, c| {
            c.validate(v)
        });
    }
}

/// What weft reads of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The container's name.
    #[serde(default)]
    pub name: String,
    /// Its image.
    #[serde(default)]
    pub image: Option<String>,
    /// The entrypoint (`weft up` runs it as the workload's command).
    #[serde(default)]
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables with literal values.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// The ports it listens on.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

impl Container {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "Required value");
        }
        let mut names = std::collections::BTreeSet::new();
        v.each("ports", &self.ports, |v, p| {
            port_in_range(v, "containerPort", p.container_port);
            if let Some(name) = &p.name {
                port_name(v, name);
                if !names.insert(name.clone()) {
                    v.error_at("name", format!("Duplicate value: {name:?}"));
                }
            }
            protocol(v, &p.protocol);
        });
    }
}

/// An environment variable (`valueFrom` is kept, not read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The literal value.
    #[serde(default)]
    pub value: Option<String>,
}

/// A container port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Its name (what a Service's named `targetPort` refers to).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number.
    #[serde(default)]
    pub container_port: i64,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// What weft reads of a pod's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default)]
    pub phase: Option<String>,
    /// The pod's IP.
    #[serde(rename = "podIP", default)]
    pub pod_ip: Option<String>,
    /// Its IPs (dual stack).
    #[serde(rename = "podIPs", default)]
    pub pod_ips: Vec<PodIp>,
}

/// One entry of `status.podIPs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PodIp {
    /// The address.
    #[serde(default)]
    pub ip: String,
}

impl Pod {
    /// The pod's address: `status.podIP` (or the first of `podIPs`), when it has one and has
    /// not finished (a Succeeded or Failed pod serves nothing, as Kubernetes' endpoints controller has it).
    pub fn address(&self) -> Option<std::net::IpAddr> {
        if matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        self.status
            .pod_ip
            .as_deref()
            .or(self.status.pod_ips.first().map(|p| p.ip.as_str()))
            .and_then(|ip| ip.parse().ok())
    }
}

impl KubeView for Pod {
    fn validate(&self, v: &mut Validator) {
        v.field("spec", |v| {
            if self.spec.containers.is_empty() {
                v.error_at("containers", "Required value");
            }
            self.spec.validate(v)
        });
        v.field("status", |v| {
            if let Some(ip) = &self.status.pod_ip {
                if !checks::is_ip_addr(ip) {
                    v.error_at(
                        "podIP",
                        format!("Invalid value: {ip:?}: must be a valid IP address"),
                    );
                }
            }
            v.each("podIPs", &self.status.pod_ips, |v, p| {
                if !checks::is_ip_addr(&p.ip) {
                    v.error_at(
                        "ip",
                        format!("Invalid value: {:?}: must be a valid IP address", p.ip),
                    );
                }
            });
        });
    }
}
