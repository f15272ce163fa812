//! `WorkloadEntry`: one non-Kubernetes workload (a VM, a bare-metal host).
//!
//! ServiceEntry endpoints have the same shape; [`WorkloadEntry::validate_as_endpoint`] checks
//! them with the extra knowledge the ServiceEntry brings (resolution, port names).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// Istio's `WorkloadEntry`: the address, ports, labels and identity of one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP address, host name (DNS resolution only) or `unix:///path`; may be empty only with `network`.
    #[serde(default)]
    pub address: String,
    /// Service port name to the port this workload listens on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Labels of the workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The L3 network the workload is on (multi-network meshes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Failure domain, `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight; 0 means the default.
    #[serde(default)]
    pub weight: u32,
    /// Service account of the workload's sidecar, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

/// How the ServiceEntry listing an endpoint resolves it, which decides what its address may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointResolution {
    /// `STATIC`: IP addresses or `unix://` sockets.
    Static,
    /// `DNS` and `DNS_ROUND_ROBIN`: IP addresses or host names.
    Dns,
}

impl Validate for WorkloadEntry {
    fn validate(&self, v: &mut Validator) {
        // Alone, a WorkloadEntry does not know its ServiceEntry's resolution, so any address form is accepted.
        if self.address.is_empty() {
            self.check_missing_address(v);
        } else if let Some(path) = self.address.strip_prefix(checks::UNIX_PREFIX) {
            self.check_unix_address(v, path);
        } else if !checks::is_ip_addr(&self.address) {
            if let Err(e) = checks::check_fqdn(&self.address) {
                v.error_at(
                    "address",
                    format!("address must be an IP address, a host name or unix://<path>: {e}"),
                );
            }
        }
        self.check_ports(v, None);
        checks::labels(v, "labels", &self.labels);
    }
}

impl WorkloadEntry {
    /// Checks this entry as an endpoint of a ServiceEntry that resolves it by `resolution` and
    /// whose ports are named `service_ports`.
    pub fn validate_as_endpoint(
        &self,
        v: &mut Validator,
        resolution: EndpointResolution,
        service_ports: &[&str],
    ) {
        let address = self.address.as_str();
        match resolution {
            EndpointResolution::Static => {
                if address.is_empty() {
                    self.check_missing_address(v);
                } else if let Some(path) = address.strip_prefix(checks::UNIX_PREFIX) {
                    self.check_unix_address(v, path);
                    // A socket has no port to map service ports to.
                    if service_ports.len() != 1 {
                        v.error_at(
                            "address",
                            format!(
                                "a unix:// endpoint needs a service entry with exactly one port (it has {})",
                                service_ports.len()
                            ),
                        );
                    }
                } else if !checks::is_ip_addr(address) {
                    v.error_at(
                        "address",
                        format!(
                            "endpoint address {address:?} is not an IP address; resolution STATIC needs IPs (use resolution DNS for host names)"
                        ),
                    );
                }
            }
            EndpointResolution::Dns => {
                if address.is_empty() {
                    v.error_at(
                        "address",
                        "endpoint address is required with DNS resolution",
                    );
                } else if address.starts_with(checks::UNIX_PREFIX) {
                    v.error_at("address", "unix:// endpoints need resolution STATIC; DNS cannot resolve a socket path");
                } else if !checks::is_ip_addr(address) {
                    if let Err(e) = checks::check_fqdn(address) {
                        v.error_at(
                            "address",
                            format!("endpoint address must be an IP address or a host name: {e}"),
                        );
                    }
                }
            }
        }
        self.check_ports(v, Some(service_ports));
        checks::labels(v, "labels", &self.labels);
    }

    fn check_missing_address(&self, v: &mut Validator) {
        match checks::non_empty(&self.network) {
            None => v.error_at("address", "address is required unless network is set"),
            Some(network) => v.warn_at(
                "address",
                format!("address is unset: the workload is reached through the gateway of network {network:?}"),
            ),
        }
    }

    fn check_unix_address(&self, v: &mut Validator, path: &str) {
        if let Err(e) = checks::check_unix_path(path) {
            v.error_at("address", e);
        }
        if !self.ports.is_empty() {
            v.error_at("ports", "a unix:// address takes no ports");
        }
    }

    fn check_ports(&self, v: &mut Validator, service_ports: Option<&[&str]>) {
        v.field("ports", |v| {
            for (name, &number) in &self.ports {
                v.field(name, |v| {
                    checks::port_name(v, name);
                    if let Some(known) =
                        service_ports.filter(|known| !known.contains(&name.as_str()))
                    {
                        v.error(format!(
                            "port name {name:?} is not a port of the service entry ({})",
                            describe_ports(known)
                        ));
                    }
                });
                checks::port_number(v, name, number);
            }
        });
    }
}

fn describe_ports(names: &[&str]) -> String {
    if names.is_empty() {
        "it declares no ports".to_string()
    } else {
        format!("its ports: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{errors, spec_issues};

    fn error_paths(yaml: &str) -> Vec<String> {
        let issues = spec_issues::<WorkloadEntry>(yaml).expect("reads");
        errors(&issues)
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn istio_examples_are_valid() {
        for yaml in [
            "serviceAccount: details-legacy\naddress: 2.2.2.2\nlabels:\n  app: details-legacy\n  instance-id: vm1\n",
            "serviceAccount: details-legacy\naddress: vm1.vpc01.corp.net\nports:\n  http: 8080\nweight: 3\n",
            "address: unix:///var/run/app.sock\nlocality: us/us-east-1/az-1\n",
        ] {
            let issues = spec_issues::<WorkloadEntry>(yaml).expect("reads");
            assert!(issues.is_empty(), "{yaml}: {issues:?}");
        }
    }

    #[test]
    fn address_may_be_omitted_only_with_a_network() {
        assert_eq!(error_paths("labels: {app: foo}\n"), ["spec.address"]);
        let issues =
            spec_issues::<WorkloadEntry>("network: cluster-2-network\nlabels: {app: foo}\n")
                .expect("reads");
        assert!(errors(&issues).is_empty());
        assert_eq!(issues.len(), 1, "one warning: {issues:?}");
    }

    #[test]
    fn each_mistake_has_its_path() {
        let yaml = "address: \"unix://relative.sock\"\nports:\n  http: 0\n  bad_name: 80\nlabels:\n  \"bad key\": x\n";
        assert_eq!(
            error_paths(yaml),
            [
                "spec.address",
                "spec.ports",
                "spec.ports.bad_name",
                "spec.ports.http",
                "spec.labels.bad key"
            ]
        );
    }

    #[test]
    fn endpoint_rules_depend_on_resolution() {
        let endpoint = WorkloadEntry {
            address: "db.example.com".into(),
            ports: BTreeMap::from([("mysql".to_string(), 3307), ("other".to_string(), 1)]),
            ..Default::default()
        };
        let mut v = Validator::new("spec.endpoints[0]");
        endpoint.validate_as_endpoint(&mut v, EndpointResolution::Static, &["mysql"]);
        assert_eq!(
            errors(&v.into_issues()),
            [
                "spec.endpoints[0].address: endpoint address \"db.example.com\" is not an IP address; resolution STATIC needs IPs (use resolution DNS for host names)",
                "spec.endpoints[0].ports.other: port name \"other\" is not a port of the service entry (its ports: mysql)",
            ]
        );
        let mut v = Validator::new("spec.endpoints[0]");
        endpoint.validate_as_endpoint(&mut v, EndpointResolution::Dns, &["mysql", "other"]);
        assert!(v.into_issues().is_empty());
    }
}
