//! `Sidecar`: the listeners of some workloads' proxies and the hosts they can reach.
//!
//! Also home of [`LabelSelector`], the `networking` flavour of a workload selector (`labels`,
//! not `matchLabels`) that ServiceEntry uses too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::networking::common::Destination;
use crate::networking::destination_rule::ConnectionPoolSettings;
use crate::networking::gateway::{Port, Protocol, ServerTLSSettings, ServerTlsMode};
use crate::validate::checks::{self, HostScope};
use crate::validate::{Validate, Validator};

/// Istio's `SidecarPort`: the same shape as a Gateway [`Port`]; the name is optional and
/// number 0 means a Unix domain socket listener (egress only).
pub type SidecarPort = Port;

/// Istio's `Sidecar`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Workloads this Sidecar applies to; all of the namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Inbound listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the hosts they expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// What to do with traffic to hosts outside the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Connection pool for inbound connections to the workload, unless a listener sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
}

/// Istio's `networking.v1alpha3.WorkloadSelector` (Sidecar, ServiceEntry): workloads whose labels
/// include all of `labels`. Unlike [`crate::networking::WorkloadSelector`] the field is `labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels a workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Istio's `IstioIngressListener`: an inbound listener forwarding to the workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    /// The port to listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Where the workload listens: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix://path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTLSSettings>,
    /// Connection pool for this listener's inbound connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// Istio's `IstioEgressListener`: an outbound listener and the hosts reachable through it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// The port to listen on; absent for the catch-all listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address or `unix://` socket to bind to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic reaches the listener.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Hosts exposed, as `namespace/dnsName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Istio's `CaptureMode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// Traffic is redirected by iptables.
    Iptables,
    /// No capture: the application connects to the listener itself.
    None,
}

/// Istio's `OutboundTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// Whether unknown hosts are reachable.
    #[serde(default)]
    pub mode: OutboundTrafficMode,
    /// Where traffic to unknown hosts goes in ALLOW_ANY mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Istio's `OutboundTrafficPolicy.Mode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only hosts in the registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown hosts are reachable too (passthrough or `egressProxy`).
    AllowAny,
}

impl Validate for Sidecar {
    fn validate(&self, v: &mut Validator) {
        v.optional("workloadSelector", &self.workload_selector);
        if self.ingress.is_empty()
            && self.egress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            v.error(
                "empty sidecar: set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool",
            );
        }
        v.list("ingress", &self.ingress);
        self.check_unique_ingress_ports(v);
        v.optional("inboundConnectionPool", &self.inbound_connection_pool);
        self.check_egress(v);
        v.optional("outboundTrafficPolicy", &self.outbound_traffic_policy);
    }
}

impl Sidecar {
    fn check_unique_ingress_ports(&self, v: &mut Validator) {
        let mut seen = BTreeMap::new();
        v.field("ingress", |v| {
            for (i, listener) in self.ingress.iter().enumerate() {
                let Some(port) = &listener.port else { continue };
                if let Some(first) = checks::first_holder(&mut seen, port.number, i) {
                    v.index(i, |v| {
                        v.error_at(
                            "port.number",
                            format!(
                                "port {} is already used by ingress[{first}]; ingress ports must be unique",
                                port.number
                            ),
                        );
                    });
                }
            }
        });
    }

    fn check_egress(&self, v: &mut Validator) {
        let last = self.egress.len().saturating_sub(1);
        let mut ports = BTreeMap::new();
        let mut sockets = BTreeMap::new();
        v.field("egress", |v| {
            for (i, listener) in self.egress.iter().enumerate() {
                v.index(i, |v| {
                    listener.validate(v);
                    // Listeners are matched most-specific first; the portless catch-all must close the list.
                    let Some(port) = &listener.port else {
                        if i != last {
                            v.error("the egress listener without a port (the catch-all) must be the last one");
                        }
                        return;
                    };
                    if port.number != 0 {
                        if let Some(first) = checks::first_holder(&mut ports, port.number, i) {
                            v.error_at(
                                "port.number",
                                format!(
                                    "port {} is already used by egress[{first}]; ports of IP-bound listeners must be unique",
                                    port.number
                                ),
                            );
                        }
                    } else if let Some(bind) = checks::non_empty(&listener.bind) {
                        if let Some(first) = checks::first_holder(&mut sockets, bind, i) {
                            v.error_at("bind", format!("unix socket {bind:?} is already used by egress[{first}]"));
                        }
                    }
                });
            }
        });
    }
}

impl Validate for LabelSelector {
    fn validate(&self, v: &mut Validator) {
        if self.labels.is_empty() {
            v.warn_at(
                "labels",
                "the selector has no labels, so it selects every workload in the namespace",
            );
        }
        // Wildcards get Istio's own message; the rest get the Kubernetes label syntax check.
        let mut plain = BTreeMap::new();
        v.field("labels", |v| {
            for (key, value) in &self.labels {
                if key.is_empty() {
                    v.error("label key must not be empty");
                } else if key.contains('*') || value.contains('*') {
                    v.error_at(
                        key,
                        format!("wildcards are not supported in selectors ({key}={value})"),
                    );
                } else {
                    plain.insert(key.clone(), value.clone());
                }
            }
        });
        checks::labels(v, "labels", &plain);
    }
}

impl Validate for IstioIngressListener {
    fn validate(&self, v: &mut Validator) {
        match &self.port {
            None => v.error_at("port", "port is required for ingress listeners"),
            Some(port) => v.field("port", |v| {
                port.reject_target_port(v, "Sidecar");
                port.check_optional_name(v);
                port.check_protocol(v, false);
                checks::port_number(v, "number", port.number);
            }),
        }
        if let Some(bind) = checks::non_empty(&self.bind) {
            if let Err(e) = checks::check_ip(bind) {
                v.error_at(
                    "bind",
                    format!("ingress listeners bind to an IP address: {e}"),
                );
            }
        }
        if let Some(endpoint) = checks::non_empty(&self.default_endpoint) {
            v.field("defaultEndpoint", |v| check_default_endpoint(v, endpoint));
        }
        if let Some(tls) = &self.tls {
            v.field("tls", |v| self.check_tls(v, tls));
        }
        v.optional("connectionPool", &self.connection_pool);
        if let (Some(pool), Some(port)) = (&self.connection_pool, &self.port) {
            if pool.http.is_some() && !port.parsed_protocol().is_some_and(Protocol::is_http) {
                v.warn_at(
                    "connectionPool.http",
                    format!(
                        "port {} has protocol {:?}, not HTTP, so only the tcp settings apply",
                        port.number, port.protocol
                    ),
                );
            }
        }
    }
}

impl IstioIngressListener {
    fn check_tls(&self, v: &mut Validator, tls: &ServerTLSSettings) {
        // Sidecars read certificates from files only, and have no HTTP redirect or SAN checks.
        let unsupported = [
            ("subjectAltNames", !tls.subject_alt_names.is_empty()),
            ("httpsRedirect", tls.https_redirect),
            (
                "credentialName",
                checks::non_empty(&tls.credential_name).is_some(),
            ),
            ("credentialNames", !tls.credential_names.is_empty()),
            ("tlsCertificates", !tls.tls_certificates.is_empty()),
        ];
        for (field, _) in unsupported.into_iter().filter(|(_, is_set)| *is_set) {
            v.error_at(
                field,
                format!("{field} is not supported in sidecar ingress tls"),
            );
        }
        if matches!(
            tls.mode,
            ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
        ) {
            v.error_at(
                "mode",
                format!(
                    "mode {} cannot be used in sidecar ingress tls",
                    tls.mode.as_str()
                ),
            );
        }
        if let Some(port) = &self.port {
            if !port.parsed_protocol().is_some_and(Protocol::is_tls) {
                v.error(format!(
                    "tls needs an HTTPS or TLS port (the port's protocol is {:?})",
                    port.protocol
                ));
            }
        }
        tls.validate(v);
    }
}

/// Checks an ingress `defaultEndpoint`: a loopback or any-address IP with a port, or a unix socket.
fn check_default_endpoint(v: &mut Validator, endpoint: &str) {
    if let Some(path) = endpoint.strip_prefix(checks::UNIX_PREFIX) {
        if let Err(e) = checks::check_unix_path(path) {
            v.error(e);
        }
        return;
    }
    let forms = "127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>";
    let Some((host, port)) = split_host_port(endpoint) else {
        v.error(format!("defaultEndpoint {endpoint:?} must be {forms}"));
        return;
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        v.error(format!("defaultEndpoint {endpoint:?} must be {forms}"));
    }
    match port.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => {}
        Ok(n) => v.error(format!(
            "defaultEndpoint port must be in 1..65535 (got {n})"
        )),
        Err(_) => v.error(format!("defaultEndpoint port {port:?} is not a number")),
    }
}

/// Splits `host:port` as Go's `net.SplitHostPort` does: IPv6 hosts need brackets.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        None
    } else {
        Some((host, port))
    }
}

impl Validate for IstioEgressListener {
    fn validate(&self, v: &mut Validator) {
        if let Some(port) = &self.port {
            v.field("port", |v| {
                port.reject_target_port(v, "Sidecar");
                port.check_optional_name(v);
                port.check_protocol(v, false);
                if port.number != 0 {
                    checks::port_number(v, "number", port.number);
                }
            });
            self.check_bind(v, port);
        }
        self.check_hosts(v);
    }
}

impl IstioEgressListener {
    fn check_bind(&self, v: &mut Validator, port: &Port) {
        let bind = checks::non_empty(&self.bind);
        if port.number == 0 {
            match bind.and_then(|b| b.strip_prefix(checks::UNIX_PREFIX)) {
                None => v.error_at(
                    "bind",
                    "a listener with port number 0 must bind to a unix domain socket (unix:///path or unix://@name)",
                ),
                Some(path) => {
                    if let Err(e) = checks::check_unix_path(path) {
                        v.error_at("bind", e);
                    }
                }
            }
            if !matches!(self.capture_mode, CaptureMode::Default | CaptureMode::None) {
                v.error_at(
                    "captureMode",
                    "captureMode must be DEFAULT or NONE for unix domain socket listeners",
                );
            }
        } else if let Some(bind) = bind {
            if let Err(e) = checks::check_ip(bind) {
                v.error_at(
                    "bind",
                    format!("a listener with a port number binds to an IP address: {e}"),
                );
            }
        }
    }

    fn check_hosts(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at(
                "hosts",
                "an egress listener needs at least one host, e.g. \"./*\" or \"istio-system/*\"",
            );
            return;
        }
        let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        v.field("hosts", |v| {
            for (i, host) in self.hosts.iter().enumerate() {
                v.index(i, |v| {
                    checks::namespaced_host(v, host, HostScope::Sidecar);
                    let Some((namespace, name)) = host.split_once('/') else { return };
                    // Subtractions (`~ns/host`) are not imports: no duplicate to report.
                    if namespace.starts_with('~') {
                        return;
                    }
                    let names = by_namespace.entry(namespace).or_default();
                    let covered =
                        if name == "*" { !names.is_empty() } else { names.contains(name) || names.contains("*") };
                    if covered {
                        v.warn(format!(
                            "duplicate egress host {host:?}: another host of namespace {namespace:?} covers it"
                        ));
                    }
                    names.insert(name);
                });
            }
        });
        let imports = self.hosts.iter().any(|h| {
            h.split_once('/')
                .is_some_and(|(ns, _)| !ns.starts_with('~'))
        });
        let subtracts_only_some = self.hosts.iter().any(|h| {
            h.split_once('/')
                .is_some_and(|(ns, name)| ns.starts_with('~') && (ns != "~" || name != "*"))
        });
        if !imports && subtracts_only_some {
            v.warn_at(
                "hosts",
                "hosts starting with \"~\" only subtract from what the listener imports, and it imports nothing: add the hosts to import, e.g. \"*/*\"",
            );
        }
        if by_namespace
            .get("*")
            .is_some_and(|names| names.contains("*"))
            && by_namespace.len() > 1
        {
            v.warn_at(
                "hosts",
                "\"*/*\" already selects every host; the other hosts are redundant",
            );
        }
    }
}

impl Validate for OutboundTrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        let Some(proxy) = &self.egress_proxy else {
            return;
        };
        if self.mode != OutboundTrafficMode::AllowAny {
            v.error_at(
                "egressProxy",
                "egressProxy can only be set with mode ALLOW_ANY",
            );
            return;
        }
        v.field("egressProxy", |v| {
            proxy.validate(v);
            if proxy.host.starts_with("*.") {
                v.error_at(
                    "host",
                    "egressProxy host must be a fully-qualified name without wildcards",
                );
            }
            if proxy.port.is_none() {
                v.error_at("port", "egressProxy needs a port");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{errors, spec_issues};

    fn error_paths(yaml: &str) -> Vec<String> {
        let issues = spec_issues::<Sidecar>(yaml).expect("reads");
        errors(&issues)
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn valid_sidecar_has_no_issues() {
        let yaml = r#"
workloadSelector:
  labels: {app: productpage}
ingress:
- port: {number: 9080, protocol: HTTP, name: somename}
  defaultEndpoint: "127.0.0.1:8080"
  captureMode: NONE
- port: {number: 9443, protocol: HTTPS, name: secure}
  defaultEndpoint: "unix:///var/run/app.sock"
  tls: {mode: SIMPLE, serverCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem}
egress:
- port: {number: 3306, protocol: MYSQL, name: egressmysql}
  captureMode: NONE
  bind: 127.0.0.1
  hosts: ["*/mysql.foo.com"]
- hosts: ["./*", "istio-system/*"]
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy: {host: proxy.example.com, port: {number: 3128}}
"#;
        let issues = spec_issues::<Sidecar>(yaml).expect("reads");
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn egress_hosts_subtract_with_a_tilde_namespace_as_istio_1_31() {
        let issues = spec_issues::<Sidecar>(
            "egress:\n- port: {number: 9000}\n  hosts: [\"~/*\"]\n- hosts: [\"*/*\", \"~kube-system/*\", \"~./internal.example.com\", \"~/legacy.example.com\"]\n",
        )
        .expect("reads");
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(
            error_paths("egress:\n- hosts: [\"*/*\", \"~Bad_NS/*\", \"~ops/short\"]\n"),
            ["spec.egress[0].hosts[1]", "spec.egress[0].hosts[2]"]
        );
        let only = spec_issues::<Sidecar>("egress:\n- hosts: [\"~ops/*\"]\n").expect("reads");
        assert_eq!(only.len(), 1, "{only:?}");
        assert!(only[0].message.contains("imports nothing"), "{only:?}");
    }

    #[test]
    fn every_listener_mistake_is_reported_at_its_path() {
        let yaml = r#"
workloadSelector: {labels: {}}
ingress:
- port: {number: 8080, protocol: HTTP, name: http, targetPort: 9090}
  bind: "unix:///tmp/s.sock"
  defaultEndpoint: "10.0.0.1:8080"
  tls: {mode: ISTIO_MUTUAL, httpsRedirect: true}
- port: {number: 8080, protocol: http, name: Bad_Name}
- defaultEndpoint: "127.0.0.1:80"
egress:
- hosts: ["*/*"]
- port: {number: 0, protocol: HTTP, name: uds}
  hosts: ["foo.com", "bad ns/x.com"]
"#;
        assert_eq!(
            error_paths(yaml),
            [
                "spec.ingress[0].port.targetPort",
                "spec.ingress[0].bind",
                "spec.ingress[0].defaultEndpoint",
                "spec.ingress[0].tls.httpsRedirect",
                "spec.ingress[0].tls.mode",
                "spec.ingress[0].tls",
                "spec.ingress[1].port.name",
                "spec.ingress[2].port",
                "spec.ingress[1].port.number",
                "spec.egress[0]",
                "spec.egress[1].bind",
                "spec.egress[1].hosts[0]",
                "spec.egress[1].hosts[1]",
            ]
        );
    }

    #[test]
    fn empty_sidecar_and_egress_proxy_rules() {
        assert_eq!(error_paths("{}\n"), ["spec"]);
        let proxy = "outboundTrafficPolicy:\n  egressProxy: {host: proxy.example.com, port: {number: 3128}}\n";
        assert_eq!(
            error_paths(proxy),
            ["spec.outboundTrafficPolicy.egressProxy"]
        );
        let no_port =
            "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: proxy.example.com}\n";
        assert_eq!(
            error_paths(no_port),
            ["spec.outboundTrafficPolicy.egressProxy.port"]
        );
    }

    #[test]
    fn default_endpoint_forms() {
        for (endpoint, ok) in [
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            (":8080", true),
            ("unix://@app", true),
            ("10.1.2.3:8080", false),
            ("127.0.0.1", false),
            ("127.0.0.1:http", false),
            ("::1:8080", false),
            ("unix://relative", false),
        ] {
            let mut v = Validator::new("spec.ingress[0].defaultEndpoint");
            check_default_endpoint(&mut v, endpoint);
            assert_eq!(v.into_issues().is_empty(), ok, "{endpoint}");
        }
    }
}
