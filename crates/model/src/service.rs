//! Services and their endpoints, from ServiceEntries (and the WorkloadEntries they select).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

/// What a port speaks, from its declared protocol or name (`http-web`, `grpc`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// HTTP/1.1 (or detected upgrade to HTTP/2).
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// TLS carrying HTTP; routed like TLS by the sidecar.
    Https,
    /// TLS, routed by SNI.
    Tls,
    /// Opaque TCP.
    Tcp,
    /// Not declared: detected per connection.
    Unknown,
}

impl Protocol {
    /// The protocol Istio infers from a declared protocol or, failing that, the port name prefix.
    pub fn parse(protocol: Option<&str>, name: Option<&str>) -> Protocol {
        let from = |s: &str| match s.to_ascii_uppercase().as_str() {
            "HTTP" => Some(Protocol::Http),
            "HTTP2" => Some(Protocol::Http2),
            "GRPC" | "GRPC-WEB" => Some(Protocol::Grpc),
            "HTTPS" => Some(Protocol::Https),
            "TLS" => Some(Protocol::Tls),
            "HTTP_PROXY" => Some(Protocol::Http),
            // The sidecar does not capture UDP; it must not get HTTP routes either.
            "TCP" | "MONGO" | "REDIS" | "MYSQL" | "UDP" => Some(Protocol::Tcp),
            _ => None,
        };
        if let Some(p) = protocol.filter(|p| !p.is_empty()).and_then(from) {
            return p;
        }
        name.and_then(|n| from(n.split('-').next().unwrap_or(n)))
            .unwrap_or(Protocol::Unknown)
    }

    /// True when requests on this port are routed by HTTP rules.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Unknown
        )
    }
}

/// A port of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePort {
    /// Port clients connect to.
    pub number: u16,
    /// Port name.
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Port on the endpoints, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
}

/// Where an endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointAddress {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name resolved when connecting.
    Dns(String),
    /// A Unix domain socket path.
    Unix(String),
}

/// One endpoint of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// Address.
    pub address: EndpointAddress,
    /// Port number per service port name (the endpoint's `ports` map).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u16>,
    /// Labels, used by subsets.
    pub labels: BTreeMap<String, String>,
    /// Load-balancing weight (1 when unset).
    pub weight: u32,
    /// Locality `region/zone/subzone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// The workload's service account, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Who runs the endpoint (a registered workload), for telemetry labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<std::sync::Arc<WorkloadInfo>>,
}

/// A workload's identity as Istio's telemetry labels name it (`destination_workload`,
/// `destination_app`, ...). `unknown` where nothing is known, as in Istio.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkloadInfo {
    /// Workload name (the WorkloadEntry's; `weft up`'s workload name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its service account.
    pub service_account: String,
    /// Its `app.kubernetes.io/name` label, else `app`, else its canonical service.
    pub app: String,
    /// Its `app.kubernetes.io/version` label, else `version`, else its canonical
    /// revision's label, else `unknown`.
    pub version: String,
    /// Istio's canonical service: the `service.istio.io/canonical-name` label, else
    /// `app.kubernetes.io/name`, else `app`, else the workload name.
    pub canonical_service: String,
    /// Istio's canonical revision: `service.istio.io/canonical-revision`, else
    /// `app.kubernetes.io/version`, else `version`, else `latest`.
    pub canonical_revision: String,
}

impl WorkloadInfo {
    /// Nothing known.
    pub fn unknown() -> Self {
        let u = || "unknown".to_string();
        WorkloadInfo {
            name: u(),
            namespace: u(),
            service_account: u(),
            app: u(),
            version: u(),
            canonical_service: u(),
            canonical_revision: u(),
        }
    }

    /// A workload from its name, namespace, service account and labels.
    pub fn new(
        name: &str,
        namespace: &str,
        service_account: &str,
        labels: &BTreeMap<String, String>,
    ) -> Self {
        let or_unknown = |s: Option<&String>| {
            s.filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "unknown".into())
        };
        let first = |keys: &[&str]| {
            keys.iter()
                .filter_map(|k| labels.get(*k))
                .find(|v| !v.is_empty())
                .cloned()
        };
        let canonical_service = first(&[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ])
        .unwrap_or_else(|| or_unknown(Some(&name.to_string())));
        let revision = first(&[
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ]);
        // Istio's app and version labels: the Kubernetes recommended labels first.
        let app =
            first(&["app.kubernetes.io/name", "app"]).unwrap_or_else(|| canonical_service.clone());
        let version = first(&["app.kubernetes.io/version", "version"])
            .or_else(|| revision.clone())
            .unwrap_or_else(|| "unknown".into());
        let canonical_revision = match (&revision, canonical_service.as_str()) {
            (Some(r), _) => r.clone(),
            (None, "unknown") => "unknown".into(),
            (None, _) => "latest".into(),
        };
        WorkloadInfo {
            name: or_unknown(Some(&name.to_string())),
            namespace: or_unknown(Some(&namespace.to_string())),
            service_account: or_unknown(Some(&service_account.to_string())),
            app,
            version,
            canonical_revision,
            canonical_service,
        }
    }

    /// Completes a workload known from a peer's header: what it did not name follows
    /// from what it did, as in [`WorkloadInfo::new`].
    pub fn derive_canonical(&mut self) {
        if self.canonical_service == "unknown" {
            self.canonical_service = if self.app != "unknown" {
                self.app.clone()
            } else {
                self.name.clone()
            };
        }
        if self.app == "unknown" {
            self.app = self.canonical_service.clone();
        }
        if self.canonical_revision == "unknown" {
            self.canonical_revision = if self.version != "unknown" {
                self.version.clone()
            } else {
                "latest".into()
            };
        }
    }

    /// True when `principal` (`<trust-domain>/ns/<ns>/sa/<sa>`, any trust domain) names
    /// this workload's account; compares without allocating.
    pub fn has_principal(&self, principal: &str) -> bool {
        let mut parts = principal.split('/').skip(1);
        matches!(
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None)
                if ns == self.namespace && sa == self.service_account
        )
    }

    /// The SPIFFE-style principal Istio reports (`<trust-domain>/ns/<ns>/sa/<sa>`).
    pub fn principal(&self) -> String {
        if self.service_account == "unknown" {
            return "unknown".into();
        }
        format!(
            "cluster.local/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

impl Endpoint {
    /// The port to connect to for service port `port`.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }

    /// True when the endpoint carries every label of `selector`.
    pub fn has_labels(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// How endpoints of a service are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Connect to the original destination.
    None,
    /// The listed endpoint addresses.
    Static,
    /// Resolve endpoint names (or the host) by DNS.
    Dns,
    /// Resolve by DNS, use the first address only.
    DnsRoundRobin,
    /// Resolve each requested name under a wildcard host by DNS.
    DynamicDns,
}

/// A service: a host with ports and endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Fully qualified host name.
    pub hostname: String,
    /// Namespace of the ServiceEntry that declared it.
    pub namespace: String,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// Inside (`true`) or outside the mesh.
    pub mesh_internal: bool,
    /// Virtual IPs of the service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The ServiceEntry it came from (`namespace/name`).
    pub source: String,
    /// The server identities its endpoints may present (ServiceEntry `subjectAltNames`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// weft's active health check from the ServiceEntry's annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::policy::HealthCheck>,
}

impl Service {
    /// The port numbered `number`.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_istios_label_order() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let w = |pairs: &[(&str, &str)]| {
            WorkloadInfo::new("acc-client", "default", "sa", &labels(pairs))
        };
        let bare = w(&[]);
        assert_eq!(
            (bare.app.as_str(), bare.version.as_str()),
            ("acc-client", "unknown")
        );
        assert_eq!(
            (
                bare.canonical_service.as_str(),
                bare.canonical_revision.as_str()
            ),
            ("acc-client", "latest")
        );
        let app = w(&[("app", "web"), ("version", "v2")]);
        assert_eq!(
            (
                app.canonical_service.as_str(),
                app.canonical_revision.as_str()
            ),
            ("web", "v2")
        );
        let k8s = w(&[
            ("app", "web"),
            ("app.kubernetes.io/name", "shop"),
            ("app.kubernetes.io/version", "1.2"),
        ]);
        assert_eq!(
            (
                k8s.canonical_service.as_str(),
                k8s.canonical_revision.as_str()
            ),
            ("shop", "1.2")
        );
        assert_eq!((k8s.app.as_str(), k8s.version.as_str()), ("shop", "1.2"));
        let istio = w(&[
            ("app.kubernetes.io/name", "shop"),
            ("service.istio.io/canonical-name", "store"),
            ("service.istio.io/canonical-revision", "r9"),
            ("version", "v1"),
        ]);
        assert_eq!(
            (
                istio.canonical_service.as_str(),
                istio.canonical_revision.as_str()
            ),
            ("store", "r9")
        );
        assert_eq!((istio.app.as_str(), istio.version.as_str()), ("shop", "v1"));
        // A peer that named itself only: the rest follows.
        let mut peer = WorkloadInfo::unknown();
        peer.name = "acc-client".into();
        peer.derive_canonical();
        assert_eq!(
            (
                peer.app.as_str(),
                peer.canonical_service.as_str(),
                peer.canonical_revision.as_str()
            ),
            ("acc-client", "acc-client", "latest")
        );
    }

    #[test]
    fn protocol_from_declaration_or_name() {
        assert_eq!(Protocol::parse(Some("http"), None), Protocol::Http);
        assert_eq!(Protocol::parse(None, Some("grpc-api")), Protocol::Grpc);
        assert_eq!(Protocol::parse(Some(""), Some("tcp-db")), Protocol::Tcp);
        assert_eq!(Protocol::parse(None, Some("web")), Protocol::Unknown);
    }
}
