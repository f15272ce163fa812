//! `gateway.networking.k8s.io` `GatewayClass` and `Gateway` (v1, v1beta1): a class names
//! the controller serving its Gateways; a Gateway asks for a proxy with listeners (a
//! port, a protocol, an optional hostname, TLS, and which routes may attach). Validation
//! enforces the CRDs' OpenAPI and CEL rules as the API server does; what weft cannot
//! serve is a warning naming the field (the Gateway is accepted, as Kubernetes accepts
//! it, and its status says what is not programmed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_hostname, check_len, check_max};
use crate::validate::{Validate, Validator};

/// The controller names whose classes weft serves: its own, and Istio's (so an Istio
/// user's `gatewayClassName: istio` works unchanged).
pub const CONTROLLERS: [&str; 2] = ["weft.dev/gateway-controller", "istio.io/gateway-controller"];

/// The classes weft serves without a GatewayClass object (as Istio installs `istio`).
pub const BUILT_IN_CLASSES: [(&str, &str); 2] =
    [("weft", CONTROLLERS[0]), ("istio", CONTROLLERS[1])];

/// The option keys of a listener's `tls.options` naming certificate files (weft reads
/// no Kubernetes Secrets: certificates are files, as elsewhere in weft).
pub const CERTIFICATE_OPTION: &str = "weft.dev/server-certificate";
/// The private key file of [`CERTIFICATE_OPTION`]'s certificate.
pub const PRIVATE_KEY_OPTION: &str = "weft.dev/private-key";

/// GatewayClass spec (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClass {
    /// The controller serving the class's Gateways (`weft.dev/gateway-controller`).
    #[serde(default)]
    pub controller_name: String,
    /// Controller-specific parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<serde_json::Value>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl GatewayClass {
    /// True when weft's controller serves the class.
    pub fn served(&self) -> bool {
        CONTROLLERS.contains(&self.controller_name.as_str())
    }
}

impl Validate for GatewayClass {
    fn validate(&self, v: &mut Validator) {
        check_len(v, "controllerName", &self.controller_name, 1, 253);
        let (domain, path) = self.controller_name.split_once('/').unwrap_or(("", ""));
        if !crate::validate::checks::is_dns1123_subdomain(domain) || path.is_empty() {
            v.error_at(
                "controllerName",
                format!(
                    "Invalid value: {:?}: must be a domain-prefixed path such as weft.dev/gateway-controller",
                    self.controller_name
                ),
            );
        }
        if let Some(d) = &self.description {
            check_len(v, "description", d, 0, 64);
        }
        if self.parameters_ref.is_some() {
            v.warn_at(
                "parametersRef",
                "weft's gateway controller takes no parameters; parametersRef is not used",
            );
        }
    }
}

/// Gateway spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// The GatewayClass.
    #[serde(default)]
    pub gateway_class_name: String,
    /// The listeners.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Requested addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    /// Labels and annotations for the resources the controller creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<serde_json::Value>,
    /// TLS of the whole Gateway: client certificate validation of its HTTPS listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTls>,
}

/// A Gateway's `spec.tls`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTls {
    /// The client certificate the Gateway presents to backends (`clientCertificateRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<serde_json::Value>,
    /// How the HTTPS listeners validate client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendTls>,
}

/// `spec.tls.frontend`: client certificate validation by default and per port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTls {
    /// For every HTTPS listener without a `perPort` entry.
    #[serde(default)]
    pub default: FrontendTlsConfig,
    /// For the HTTPS listeners of one port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_port: Vec<FrontendTlsPort>,
}

impl FrontendTls {
    /// The validation for listeners on `port`: its `perPort` entry's, else the default's.
    pub fn validation_for(&self, port: i64) -> Option<&FrontendValidation> {
        match self.per_port.iter().find(|p| p.port == port) {
            Some(p) => p.tls.validation.as_ref(),
            None => self.default.validation.as_ref(),
        }
    }
}

/// One `perPort` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsPort {
    /// The port.
    #[serde(default)]
    pub port: i64,
    /// Its settings.
    #[serde(default)]
    pub tls: FrontendTlsConfig,
}

/// Client certificate settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsConfig {
    /// Client certificates asked for and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<FrontendValidation>,
}

/// `validation`: the CA bundles verifying client certificates, and whether one is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontendValidation {
    /// ConfigMaps (key `ca.crt`) holding the CA bundles.
    #[serde(default)]
    pub ca_certificate_refs: Vec<SecretObjectReference>,
    /// `AllowValidOnly` (default: a valid certificate is required) or
    /// `AllowInsecureFallback` (one is asked for; none is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl FrontendValidation {
    /// True with `AllowInsecureFallback`.
    pub fn insecure_fallback(&self) -> bool {
        self.mode.as_deref() == Some("AllowInsecureFallback")
    }
}

impl Validate for FrontendValidation {
    fn validate(&self, v: &mut Validator) {
        if self.ca_certificate_refs.is_empty() {
            v.error_at("caCertificateRefs", "Required value: at least 1 item");
        }
        check_max(v, "caCertificateRefs", &self.ca_certificate_refs, 8);
        v.each("caCertificateRefs", &self.ca_certificate_refs, |v, r| {
            check_len(v, "name", &r.name, 1, 253);
            if r.kind.as_deref().unwrap_or_default().is_empty() {
                v.error_at(
                    "kind",
                    "Required value: the kind of the CA bundle's holder (ConfigMap)",
                );
            }
        });
        if let Some(m) = &self.mode {
            if !matches!(m.as_str(), "AllowValidOnly" | "AllowInsecureFallback") {
                v.error_at("mode", format!("Unsupported value: {m:?}: supported values: \"AllowValidOnly\", \"AllowInsecureFallback\""));
            }
        }
    }
}

impl Validate for GatewayTls {
    fn validate(&self, v: &mut Validator) {
        if self.backend.is_some() {
            v.warn_at("backend", "weft's gateway presents no client certificate to backends; backend.clientCertificateRef is not used");
        }
        let Some(f) = &self.frontend else { return };
        v.field("frontend", |v| {
            if let Some(val) = &f.default.validation {
                v.field("default", |v| v.field("validation", |v| val.validate(v)));
            }
            check_max(v, "perPort", &f.per_port, 64);
            for (i, p) in f.per_port.iter().enumerate() {
                v.field("perPort", |v| {
                    v.index(i, |v| {
                        if !(1..=65535).contains(&p.port) {
                            v.error_at(
                                "port",
                                format!("Invalid value: {}: must be between 1 and 65535", p.port),
                            );
                        }
                        if f.per_port[..i].iter().any(|e| e.port == p.port) {
                            v.error("Port for TLS configuration must be unique within the Gateway");
                        }
                        if let Some(val) = &p.tls.validation {
                            v.field("tls", |v| v.field("validation", |v| val.validate(v)));
                        }
                    })
                });
            }
        });
    }
}

/// A listener: where and how the Gateway accepts connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Unique within the Gateway; routes name it in `sectionName`.
    #[serde(default)]
    pub name: String,
    /// The host name (or `*.` wildcard) the listener serves; absent means every name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port.
    #[serde(default)]
    pub port: u32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed protocol.
    #[serde(default)]
    pub protocol: String,
    /// TLS (HTTPS and TLS listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Which routes may attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

impl Listener {
    /// The route kinds listed in `allowedRoutes.kinds` (group defaulted), else the
    /// protocol's.
    pub fn route_kinds(&self) -> Vec<(String, String)> {
        let listed = self
            .allowed_routes
            .as_ref()
            .map(|a| &a.kinds[..])
            .unwrap_or(&[]);
        if !listed.is_empty() {
            return listed
                .iter()
                .map(|k| {
                    (
                        k.group.clone().unwrap_or_else(|| super::GROUP.into()),
                        k.kind.clone(),
                    )
                })
                .collect();
        }
        protocol_route_kinds(&self.protocol)
            .iter()
            .map(|k| (super::GROUP.to_string(), (*k).to_string()))
            .collect()
    }

    /// The route kinds that may attach: [`Listener::route_kinds`] that the protocol can
    /// carry (an HTTPRoute listed on a TCP listener cannot attach: InvalidRouteKinds).
    pub fn supported_kinds(&self) -> Vec<(String, String)> {
        let carried = protocol_route_kinds(&self.protocol);
        self.route_kinds()
            .into_iter()
            .filter(|(g, k)| g == super::GROUP && carried.contains(&k.as_str()))
            .collect()
    }

    /// `allowedRoutes.namespaces.from`, defaulted (`Same`).
    pub fn routes_from(&self) -> &str {
        self.allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref())
            .and_then(|n| n.from.as_deref())
            .unwrap_or("Same")
    }

    /// The TLS mode, defaulted (`Terminate`).
    pub fn tls_mode(&self) -> Option<&str> {
        self.tls
            .as_ref()
            .map(|t| t.mode.as_deref().unwrap_or("Terminate"))
    }
}

/// A listener's TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate` (default) or `Passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Certificates by reference (Kubernetes Secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation-specific options; weft's name certificate files
    /// ([`CERTIFICATE_OPTION`], [`PRIVATE_KEY_OPTION`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Client certificate validation (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_validation: Option<serde_json::Value>,
}

/// A reference to a certificate holder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// Group; absent means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent means `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace; absent means the Gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which routes may attach to a listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// The namespaces routes may come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
    /// The route kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

/// Route namespaces: `Same` (default), `All`, or those a `selector` picks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `All`, `Same` or `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The namespaces' labels (`from: Selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<crate::kube::LabelSelector>,
}

/// A route group and kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// Group; absent means the Gateway API's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// A requested address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    /// `IPAddress` (default), `Hostname` or a domain-prefixed type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The address.
    #[serde(default)]
    pub value: String,
}

/// The route kinds a listener protocol carries.
pub fn protocol_route_kinds(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" => &["HTTPRoute", "GRPCRoute"],
        "TLS" => &["TLSRoute"],
        "TCP" => &["TCPRoute"],
        "UDP" => &["UDPRoute"],
        _ => &[],
    }
}

/// Protocols weft's gateway serves on a listener.
const SERVED_PROTOCOLS: [&str; 4] = ["HTTP", "HTTPS", "TCP", "TLS"];

impl Validate for Gateway {
    fn validate(&self, v: &mut Validator) {
        check_len(v, "gatewayClassName", &self.gateway_class_name, 1, 253);
        if self.listeners.is_empty() {
            v.error_at("listeners", "Required value: at least 1 listener");
        }
        check_max(v, "listeners", &self.listeners, 64);
        for (i, l) in self.listeners.iter().enumerate() {
            let earlier = &self.listeners[..i];
            v.field("listeners", |v| {
                v.index(i, |v| {
                    if earlier.iter().any(|e| e.name == l.name) {
                        v.error_at("name", "Listener name must be unique within the Gateway");
                    }
                    if earlier.iter().any(|e| {
                        e.port == l.port && e.protocol == l.protocol && e.hostname == l.hostname
                    }) {
                        v.error("Combination of port, protocol and hostname must be unique for each listener");
                    }
                })
            });
        }
        v.each("listeners", &self.listeners, |v, l| l.validate(v));
        check_max(v, "addresses", &self.addresses, 16);
        v.each("addresses", &self.addresses, |v, a| {
            let kind = a.kind.as_deref().unwrap_or("IPAddress");
            check_len(v, "value", &a.value, 1, 253);
            if kind == "IPAddress" && a.value.parse::<std::net::IpAddr>().is_err() {
                v.error_at(
                    "value",
                    format!("Invalid value: {:?}: value must be an IP address", a.value),
                );
            }
            if kind == "Hostname" && !crate::validate::checks::is_dns1123_subdomain(&a.value) {
                v.error_at(
                    "value",
                    format!("Invalid value: {:?}: value must be a hostname", a.value),
                );
            }
        });
        for (i, a) in self.addresses.iter().enumerate() {
            if self.addresses[..i]
                .iter()
                .any(|b| b.kind == a.kind && b.value == a.value)
            {
                v.field("addresses", |v| {
                    v.index(i, |v| {
                        v.error("IPAddress and Hostname values must be unique")
                    })
                });
            }
        }
        if !self.addresses.is_empty() {
            v.warn_at("addresses", "weft up gives each Gateway an address of its own (127.0.20.N); requested addresses are not used");
        }
        if let Some(tls) = &self.tls {
            v.field("tls", |v| tls.validate(v));
        }
    }
}

impl Validate for Listener {
    fn validate(&self, v: &mut Validator) {
        check_len(v, "name", &self.name, 1, 253);
        if !crate::validate::checks::is_dns1123_subdomain(&self.name) {
            v.error_at(
                "name",
                format!(
                    "Invalid value: {:?}: must be a lower-case DNS subdomain",
                    self.name
                ),
            );
        }
        if !(1..=65535).contains(&self.port) {
            v.error_at(
                "port",
                format!("Invalid value: {}: must be 1 to 65535", self.port),
            );
        }
        let core = ["HTTP", "HTTPS", "TLS", "TCP", "UDP"];
        let prefixed = self.protocol.split_once('/').is_some_and(|(d, p)| {
            crate::validate::checks::is_dns1123_subdomain(d)
                && !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if !core.contains(&self.protocol.as_str()) && !prefixed {
            v.error_at(
                "protocol",
                format!(
                    "Unsupported value: {:?}: supported values: {}, or a domain-prefixed protocol",
                    self.protocol,
                    core.join(", ")
                ),
            );
        } else if !SERVED_PROTOCOLS.contains(&self.protocol.as_str()) {
            v.warn_at("protocol", format!("{} listeners are not served by weft (HTTP, HTTPS, TCP and TLS are); the listener is not accepted (status: UnsupportedProtocol)", self.protocol));
        }
        if let Some(h) = &self.hostname {
            v.field("hostname", |v| check_hostname(v, h));
            if matches!(self.protocol.as_str(), "TCP" | "UDP") && !h.is_empty() {
                v.error_at(
                    "hostname",
                    "hostname must not be specified for protocols ['TCP', 'UDP']",
                );
            }
        }
        match (&self.tls, self.protocol.as_str()) {
            (Some(_), "HTTP" | "TCP" | "UDP") => {
                v.error_at("tls", "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']");
            }
            (None, "HTTPS") => v.warn_at(
                "tls",
                "an HTTPS listener without tls has no certificate; it is not programmed (status: InvalidCertificateRef)",
            ),
            _ => {}
        }
        if let Some(t) = &self.tls {
            v.field("tls", |v| t.validate(v));
            if self.protocol == "HTTPS" && self.tls_mode() != Some("Terminate") {
                v.error_at("tls", "tls mode must be Terminate for protocol HTTPS");
            }
            if self.protocol == "TLS" && self.tls_mode() == Some("Terminate") {
                v.warn_at("tls.mode", "TLS listeners are served in Passthrough mode (routed by TLSRoutes); Terminate is not served (status: UnsupportedValue): use an HTTPS listener");
            }
        }
        if let Some(a) = &self.allowed_routes {
            v.field("allowedRoutes", |v| a.validate(v));
        }
    }
}

impl Validate for ListenerTls {
    fn validate(&self, v: &mut Validator) {
        let mode = self.mode.as_deref().unwrap_or("Terminate");
        if !matches!(mode, "Terminate" | "Passthrough") {
            v.error_at(
                "mode",
                format!(
                    "Unsupported value: {mode:?}: supported values: \"Terminate\", \"Passthrough\""
                ),
            );
        }
        check_max(v, "certificateRefs", &self.certificate_refs, 64);
        if self.options.len() > 16 {
            v.error_at(
                "options",
                format!(
                    "Too many: {}: must have at most 16 items",
                    self.options.len()
                ),
            );
        }
        if mode == "Terminate" && self.certificate_refs.is_empty() && self.options.is_empty() {
            v.error("certificateRefs or options must be specified when mode is Terminate");
        }
        v.each("certificateRefs", &self.certificate_refs, |v, r| {
            check_len(v, "name", &r.name, 1, 253);
            if let Some(ns) = &r.namespace {
                check_len(v, "namespace", ns, 1, 63);
            }
        });
        let cert = self.options.get(CERTIFICATE_OPTION);
        let key = self.options.get(PRIVATE_KEY_OPTION);
        if cert.is_some() != key.is_some() {
            v.error_at(
                "options",
                format!("{CERTIFICATE_OPTION} and {PRIVATE_KEY_OPTION} go together (a certificate file and its private key file)"),
            );
        }
        for (k, value) in &self.options {
            if k.starts_with("weft.dev/") && k != CERTIFICATE_OPTION && k != PRIVATE_KEY_OPTION {
                v.error_at("options", format!("unknown weft option {k:?}: weft reads {CERTIFICATE_OPTION} and {PRIVATE_KEY_OPTION}"));
            }
            check_len(v, "options", value, 0, 4096);
        }
        if mode == "Passthrough" && !self.certificate_refs.is_empty() {
            v.error("certificateRefs must not be specified when mode is Passthrough");
        }
        if self.frontend_validation.is_some() {
            v.warn_at("frontendValidation", "a listener's frontendValidation (an experimental form) is not read; client certificates are validated by the Gateway's spec.tls.frontend (default, perPort)");
        }
    }
}

impl Validate for AllowedRoutes {
    fn validate(&self, v: &mut Validator) {
        if let Some(n) = &self.namespaces {
            v.field("namespaces", |v| {
                match n.from.as_deref().unwrap_or("Same") {
                    "All" | "Same" => {}
                    "Selector" => {
                        if n.selector.is_none() {
                            v.error_at("selector", "Required value: from: Selector needs a selector");
                        }
                    }
                    other => v.error_at("from", format!("Unsupported value: {other:?}: supported values: \"All\", \"Selector\", \"Same\"")),
                }
                if let Some(s) = &n.selector {
                    v.field("selector", |v| s.validate(v));
                }
            });
        }
        check_max(v, "kinds", &self.kinds, 8);
        v.each("kinds", &self.kinds, |v, k| {
            check_len(v, "kind", &k.kind, 1, 63)
        });
    }
}

#[cfg(test)]
mod tests;
