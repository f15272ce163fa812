//! `core/v1` Service: with a selector it becomes the mesh service
//! `<name>.<namespace>.svc.cluster.local`, its endpoints the Pods and WorkloadEntries it
//! selects; without one, its EndpointSlices list the endpoints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{IntOrString, KubeView, port_in_range, protocol, target_port};
use crate::validate::{Validator, checks};

/// What weft reads of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Service {
    /// The service's spec.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// What weft reads of a Service's spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Labels of the pods (and WorkloadEntries) that serve it; none: EndpointSlices list them.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// The virtual IP, `None` for a headless service.
    #[serde(rename = "clusterIP", default)]
    pub cluster_ip: Option<String>,
    /// The virtual IPs (dual stack).
    #[serde(rename = "clusterIPs", default)]
    pub cluster_ips: Vec<String>,
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// The DNS name an `ExternalName` service stands for.
    #[serde(default)]
    pub external_name: Option<String>,
}

/// A Service port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Its name; its prefix (`http-`, `grpc-`, ...) names the protocol, as in Istio.
    #[serde(default)]
    pub name: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The application protocol (`http`, `grpc`, `kubernetes.io/h2c`, ...); it wins over the name.
    #[serde(default)]
    pub app_protocol: Option<String>,
    /// The port clients connect to.
    #[serde(default)]
    pub port: i64,
    /// The port on the pods: a number or a container port's name (default: `port`).
    #[serde(default)]
    pub target_port: Option<IntOrString>,
}

/// The service types Kubernetes knows.
const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

impl ServiceSpec {
    /// The service type, defaulted.
    pub fn service_type(&self) -> &str {
        self.type_.as_deref().unwrap_or("ClusterIP")
    }

    /// True for a headless service (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        self.cluster_ip.as_deref() == Some("None")
    }

    /// The virtual IPs, when the service has them.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self.cluster_ip.iter().cloned().collect();
        for ip in &self.cluster_ips {
            if !out.contains(ip) {
                out.push(ip.clone());
            }
        }
        out.retain(|ip| checks::is_ip_addr(ip));
        out
    }
}

impl KubeView for Service {
    fn validate(&self, v: &mut Validator) {
        let spec = &self.spec;
        v.field("spec", |v| {
            let kind = spec.service_type();
            if !TYPES.contains(&kind) {
                v.error_at(
                    "type",
                    format!("Unsupported value: {kind:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
                );
            }
            if kind == "ExternalName" {
                match spec.external_name.as_deref() {
                    None | Some("") => v.error_at("externalName", "Required value"),
                    Some(name) if !checks::is_dns1123_subdomain(name.trim_end_matches('.')) => v
                        .error_at(
                            "externalName",
                            format!("Invalid value: {name:?}: must be a DNS name"),
                        ),
                    Some(_) => {}
                }
            } else if spec.ports.is_empty() && !spec.is_headless() {
                v.error_at("ports", "Required value");
            }
            if let Some(ip) = spec.cluster_ip.as_deref() {
                if !ip.is_empty() && ip != "None" && !checks::is_ip_addr(ip) {
                    v.error_at(
                        "clusterIP",
                        format!("Invalid value: {ip:?}: must be empty, 'None', or a valid IP address"),
                    );
                }
            }
            checks::labels(v, "selector", &spec.selector);
            let several = spec.ports.len() > 1;
            let mut names = BTreeSet::new();
            let mut ports = BTreeSet::new();
            v.each("ports", &spec.ports, |v, p| {
                match p.name.as_deref().filter(|n| !n.is_empty()) {
                    None if several => v.error_at("name", "Required value"),
                    None => {}
                    Some(name) => {
                        if !checks::is_dns1123_label(name) {
                            v.error_at(
                                "name",
                                format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"),
                            );
                        }
                        if !names.insert(name.to_string()) {
                            v.error_at("name", format!("Duplicate value: {name:?}"));
                        }
                    }
                }
                port_in_range(v, "port", p.port);
                protocol(v, &p.protocol);
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                if !ports.insert((p.port, proto.to_string())) {
                    v.error_at(
                        "port",
                        format!("Duplicate value: {{{}, {proto:?}}}", p.port),
                    );
                }
                if let Some(t) = &p.target_port {
                    target_port(v, t);
                }
            });
        });
    }
}

impl super::KubeObject<Service> {
    /// Carries the cluster IPs of `old` into this update when it names none, and refuses to
    /// change them, as Kubernetes' API server treats allocated IPs (`kubectl apply` of a
    /// manifest without `clusterIP` keeps the one given at creation).
    pub fn keep_cluster_ips(&mut self, old: &super::KubeObject<Service>) -> Result<(), String> {
        let (new_spec, old_spec) = (&mut self.view.spec, &old.view.spec);
        let old_ip = old_spec.cluster_ip.clone().filter(|ip| !ip.is_empty());
        match (
            new_spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()),
            &old_ip,
        ) {
            (None, Some(ip)) => {
                new_spec.cluster_ip = Some(ip.clone());
                if new_spec.cluster_ips.is_empty() {
                    new_spec.cluster_ips = old_spec.cluster_ips.clone();
                }
                let spec = self
                    .fields
                    .entry("spec")
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if let serde_json::Value::Object(spec) = spec {
                    spec.insert("clusterIP".into(), ip.clone().into());
                    if !old_spec.cluster_ips.is_empty() && !spec.contains_key("clusterIPs") {
                        spec.insert("clusterIPs".into(), old_spec.cluster_ips.clone().into());
                    }
                }
                Ok(())
            }
            (Some(new), Some(old)) if new != old => Err(format!(
                "spec.clusterIP: Invalid value: {new:?}: field is immutable (it is {old:?})"
            )),
            _ => Ok(()),
        }
    }
}
