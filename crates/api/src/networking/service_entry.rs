//! `ServiceEntry`: adds a service (hosts, addresses, ports, endpoints) to Istio's registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::networking::gateway::{Port, Protocol};
use crate::networking::sidecar::LabelSelector;
use crate::networking::workload_entry::{EndpointResolution, WorkloadEntry};
use crate::validate::{Validate, Validator, checks};

/// Istio's `ServicePort`: the same shape as a Gateway [`Port`]; here `name` is required and
/// `targetPort` (the port on the endpoints) is honoured.
pub type ServicePort = Port;

/// Istio's `ServiceEntry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Host names of the service; `*.` wildcard prefixes allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Whether the service is part of the mesh.
    #[serde(default)]
    pub location: Location,
    /// How the proxy finds the endpoints' addresses.
    #[serde(default)]
    pub resolution: Resolution,
    /// Endpoints of the service; exclusive with `workloadSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods and WorkloadEntries as endpoints; exclusive with `endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Namespaces the service is visible to (`.`, `*`, `~` or names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Subject alternative names accepted in the endpoints' certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// Istio's `ServiceEntry.Location`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh (no mesh mTLS to it).
    #[default]
    MeshExternal,
    /// Part of the mesh (e.g. VMs with sidecars).
    MeshInternal,
}

/// Istio's `ServiceEntry.Resolution`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the address the client connected to.
    #[default]
    None,
    /// Use the endpoints' IP addresses.
    Static,
    /// Resolve the endpoints (or the host) by DNS, balancing over all results.
    Dns,
    /// Resolve by DNS, using the first address for each new connection.
    DnsRoundRobin,
    /// Resolve the requested host name (Host header or SNI) of wildcard hosts at request time.
    DynamicDns,
}

impl Resolution {
    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

impl Validate for ServiceEntry {
    fn validate(&self, v: &mut Validator) {
        self.check_hosts(v);
        self.check_addresses(v);
        self.check_ports(v);
        v.optional("workloadSelector", &self.workload_selector);
        if self.workload_selector.is_some() && !self.endpoints.is_empty() {
            v.error_at(
                "endpoints",
                "only one of workloadSelector or endpoints may be set",
            );
        }
        self.check_resolution(v);
        self.check_hosts_distinguishable(v);
        checks::export_to(v, &self.export_to);
    }
}

impl ServiceEntry {
    fn check_hosts(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at("hosts", "a service entry needs at least one host");
        }
        v.each("hosts", &self.hosts, |v, host| {
            if host == "*" {
                v.error(
                    "host must not be the wildcard \"*\"; use a domain such as \"*.example.com\"",
                );
            } else if let Err(e) = checks::check_wildcard_host(host) {
                v.error(e);
            } else if let Err(e) = checks::check_partial_wildcard(host) {
                // Istio only warns here, for backward compatibility.
                v.warn(e);
            }
        });
    }

    fn check_addresses(&self, v: &mut Validator) {
        v.each("addresses", &self.addresses, |v, address| {
            if let Err(e) = checks::check_ip_or_cidr(address) {
                v.error(e);
            }
        });
        if self.addresses.iter().any(|a| a.contains('/'))
            && !matches!(self.resolution, Resolution::None | Resolution::Static)
        {
            v.error_at(
                "addresses",
                format!(
                    "CIDR addresses are allowed only with resolution NONE or STATIC (resolution is {})",
                    self.resolution.as_str()
                ),
            );
        }
    }

    fn check_ports(&self, v: &mut Validator) {
        let mut names = BTreeMap::new();
        let mut numbers = BTreeMap::new();
        // Without addresses, a NONE service captures its TCP ports on every IP.
        let unaddressed = self.addresses.is_empty() && self.resolution == Resolution::None;
        v.field("ports", |v| {
            for (i, port) in self.ports.iter().enumerate() {
                v.index(i, |v| {
                    if port.name.is_empty() {
                        v.error_at("name", "port name is required");
                    } else {
                        v.field("name", |v| checks::port_name(v, &port.name));
                        if let Some(first) = checks::first_holder(&mut names, port.name.as_str(), i) {
                            v.error_at("name", format!("port name {:?} is already used by ports[{first}]", port.name));
                        }
                    }
                    port.check_protocol(v, false);
                    checks::port_number(v, "number", port.number);
                    if let Some(first) = checks::first_holder(&mut numbers, port.number, i) {
                        v.error_at("number", format!("port {} is already defined by ports[{first}]", port.number));
                    }
                    if port.target_port != 0 {
                        checks::port_number(v, "targetPort", port.target_port);
                    }
                    let tcp = port.protocol.is_empty() || port.parsed_protocol() == Some(Protocol::Tcp);
                    if unaddressed && tcp {
                        v.warn_at(
                            "protocol",
                            format!(
                                "without addresses, this {} port with resolution NONE matches traffic to any IP on port {}; set addresses",
                                if port.protocol.is_empty() { "protocol-less" } else { "TCP" },
                                port.number
                            ),
                        );
                    }
                });
            }
        });
    }

    fn port_names(&self) -> Vec<&str> {
        self.ports.iter().map(|p| p.name.as_str()).collect()
    }

    fn check_resolution(&self, v: &mut Validator) {
        match self.resolution {
            Resolution::None => {
                if !self.endpoints.is_empty() {
                    v.error_at(
                        "endpoints",
                        "endpoints cannot be set with resolution NONE (traffic goes to the address the client connected to)",
                    );
                }
                if self.workload_selector.is_some() {
                    v.warn_at(
                        "workloadSelector",
                        "workloadSelector has no effect with resolution NONE",
                    );
                }
            }
            Resolution::Static => {
                let port_names = self.port_names();
                v.each("endpoints", &self.endpoints, |v, endpoint| {
                    endpoint.validate_as_endpoint(v, EndpointResolution::Static, &port_names);
                });
            }
            Resolution::Dns | Resolution::DnsRoundRobin => self.check_dns(v),
            Resolution::DynamicDns => self.check_dynamic_dns(v),
        }
    }

    fn check_dns(&self, v: &mut Validator) {
        let resolution = self.resolution.as_str();
        if self.endpoints.is_empty() {
            // The proxy resolves the hosts themselves, which a wildcard cannot be.
            v.each("hosts", &self.hosts, |v, host| {
                if host != "*" && checks::check_fqdn(host).is_err() {
                    v.error(format!(
                        "host {host:?} must be a fully-qualified name: with resolution {resolution} and no endpoints the proxy resolves the host itself"
                    ));
                }
            });
        }
        if self.resolution == Resolution::DnsRoundRobin && self.endpoints.len() > 1 {
            v.error_at(
                "endpoints",
                format!(
                    "resolution DNS_ROUND_ROBIN allows at most one endpoint (got {})",
                    self.endpoints.len()
                ),
            );
        }
        let port_names = self.port_names();
        v.each("endpoints", &self.endpoints, |v, endpoint| {
            endpoint.validate_as_endpoint(v, EndpointResolution::Dns, &port_names);
        });
        if !self.addresses.is_empty()
            && self.hosts.len() > 1
            && self
                .ports
                .iter()
                .any(|p| p.parsed_protocol().is_some_and(Protocol::is_tcp))
        {
            v.warn_at(
                "hosts",
                "with addresses and a TCP-based port, several hosts cannot be told apart; use one host per service entry",
            );
        }
    }

    fn check_dynamic_dns(&self, v: &mut Validator) {
        if self.location != Location::MeshExternal {
            v.error_at(
                "location",
                "resolution DYNAMIC_DNS is only supported for MESH_EXTERNAL service entries",
            );
        }
        v.each("hosts", &self.hosts, |v, host| {
            if host != "*" && !host.starts_with("*.") {
                v.error(format!(
                    "resolution DYNAMIC_DNS needs wildcard hosts such as \"*.example.com\" (got {host:?}); use DNS for a single host"
                ));
            }
        });
        if !self.endpoints.is_empty() {
            v.warn_at(
                "endpoints",
                "endpoints are ignored with resolution DYNAMIC_DNS; the proxy resolves the requested host",
            );
        }
        if self.workload_selector.is_some() {
            v.warn_at(
                "workloadSelector",
                "workloadSelector is ignored with resolution DYNAMIC_DNS",
            );
        }
    }

    /// Several hosts share the same ports, so only a Host header or SNI can tell them apart
    /// (unless resolution is NONE, where hosts are not used to pick endpoints).
    fn check_hosts_distinguishable(&self, v: &mut Validator) {
        if self.resolution == Resolution::None || self.hosts.len() < 2 {
            return;
        }
        // An unknown protocol is already reported; an empty one means opaque TCP here.
        let opaque = self.ports.iter().enumerate().find(|(_, p)| {
            p.protocol.is_empty()
                || p.parsed_protocol()
                    .is_some_and(|proto| !proto.is_http() && !proto.is_tls())
        });
        if let Some((i, port)) = opaque {
            let what = if port.protocol.is_empty() {
                "has no protocol".to_string()
            } else {
                format!("is {}", port.protocol)
            };
            v.error_at(
                &format!("ports[{i}].protocol"),
                format!(
                    "several hosts with resolution {} need HTTP or TLS-based ports, whose Host header or SNI tells the hosts apart; port {:?} {what}",
                    self.resolution.as_str(),
                    port.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{errors, spec_issues};

    fn error_paths(yaml: &str) -> Vec<String> {
        let issues = spec_issues::<ServiceEntry>(yaml).expect("reads");
        errors(&issues)
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn istio_examples_are_valid() {
        let mongo = r#"
hosts: [mymongodb.somedomain]
addresses: [192.192.192.192/24]
ports:
- number: 27018
  name: mongodb
  protocol: MONGO
location: MESH_INTERNAL
resolution: STATIC
endpoints:
- address: 2.2.2.2
- address: 3.3.3.3
"#;
        let dns = r#"
hosts: [foo.bar.com]
location: MESH_EXTERNAL
ports:
- {number: 80, name: http, protocol: HTTP}
resolution: DNS
endpoints:
- address: us.foo.bar.com
  ports: {http: 8080}
- address: uk.foo.bar.com
  ports: {http: 9080}
"#;
        let unix = r#"
hosts: [example.unix.local]
location: MESH_EXTERNAL
ports:
- {number: 80, name: http, protocol: http}
resolution: STATIC
endpoints:
- address: unix:///var/run/example/socket
"#;
        let wildcard = r#"
hosts: [wikipedia.org, "*.wikipedia.org"]
location: MESH_EXTERNAL
ports:
- {number: 443, name: https, protocol: TLS}
resolution: NONE
exportTo: ["."]
"#;
        let selector = r#"
hosts: [details.bookinfo.com]
location: MESH_INTERNAL
ports:
- {number: 80, name: http, protocol: HTTP, targetPort: 8080}
resolution: STATIC
workloadSelector:
  labels: {app: details}
"#;
        for yaml in [mongo, dns, unix, wildcard, selector] {
            let issues = spec_issues::<ServiceEntry>(yaml).expect("reads");
            assert!(issues.is_empty(), "{yaml}: {issues:?}");
        }
    }

    #[test]
    fn every_mistake_is_reported_at_its_path() {
        let yaml = r#"
hosts: ["*", api.example.com]
addresses: ["10.0.0.300"]
ports:
- {number: 443, name: https, protocol: HTTPS}
- {number: 443, name: https, protocol: FTP}
- {number: 70000, name: tcp, protocol: TCP}
resolution: STATIC
endpoints:
- address: api.example.com
  ports: {grpc: 8443}
workloadSelector:
  labels: {app: api}
"#;
        assert_eq!(
            error_paths(yaml),
            [
                "spec.hosts[0]",
                "spec.addresses[0]",
                "spec.ports[1].name",
                "spec.ports[1].protocol",
                "spec.ports[1].number",
                "spec.ports[2].number",
                "spec.endpoints",
                "spec.endpoints[0].address",
                "spec.endpoints[0].ports.grpc",
                "spec.ports[2].protocol",
            ]
        );
    }

    #[test]
    fn unknown_protocol_error_names_the_value() {
        let issues = spec_issues::<ServiceEntry>(
            "hosts: [a.example.com]\nports:\n- {number: 21, name: ftp, protocol: FTP}\nresolution: DNS\n",
        )
        .expect("reads");
        let errs = errors(&issues);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.ports[0].protocol: unknown protocol \"FTP\""),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn resolution_rules() {
        // A wildcard cannot be resolved by DNS without endpoints.
        let dns_wildcard = "hosts: [\"*.example.com\"]\nports:\n- {number: 443, name: tls, protocol: TLS}\nresolution: DNS\n";
        assert_eq!(error_paths(dns_wildcard), ["spec.hosts[0]"]);
        // NONE forbids endpoints; CIDRs need NONE or STATIC; DNS_ROUND_ROBIN takes one endpoint.
        let none = "hosts: [a.example.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\nendpoints:\n- address: 1.1.1.1\n";
        assert_eq!(error_paths(none), ["spec.endpoints"]);
        let rr = "hosts: [a.example.com]\naddresses: [10.0.0.0/8]\nports:\n- {number: 80, name: http, protocol: HTTP}\nresolution: DNS_ROUND_ROBIN\nendpoints:\n- address: a1.example.com\n- address: unix:///tmp/s\n";
        assert_eq!(
            error_paths(rr),
            [
                "spec.addresses",
                "spec.endpoints",
                "spec.endpoints[1].address"
            ]
        );
        // DYNAMIC_DNS takes wildcard hosts of external services only.
        let dynamic = "hosts: [\"*.example.com\", api.example.com]\nlocation: MESH_INTERNAL\nports:\n- {number: 443, name: https, protocol: HTTPS}\nresolution: DYNAMIC_DNS\n";
        assert_eq!(error_paths(dynamic), ["spec.location", "spec.hosts[1]"]);
    }
}
