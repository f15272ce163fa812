//! `Gateway`: the listeners (servers) of a proxy at the edge of the mesh.
//!
//! Also home of the types Istio defines in `gateway.proto` that other kinds reuse: [`Port`]
//! (ServiceEntry and Sidecar ports have the same shape), [`Protocol`] and [`ServerTLSSettings`]
//! (Sidecar ingress TLS).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validate::checks::{self, HostScope};
use crate::validate::{Validate, Validator};

/// Istio's `Gateway`: servers (port, hosts, TLS) for the gateway workloads matching `selector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// The servers (listeners) of the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway workloads this configuration applies to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

impl Validate for Gateway {
    fn validate(&self, v: &mut Validator) {
        if self.servers.is_empty() {
            v.error_at("servers", "a gateway needs at least one server");
        }
        v.list("servers", &self.servers);
        self.check_unique_names(v);
    }
}

impl Gateway {
    fn check_unique_names(&self, v: &mut Validator) {
        let mut port_names = BTreeMap::new();
        let mut server_names = BTreeMap::new();
        v.field("servers", |v| {
            for (i, server) in self.servers.iter().enumerate() {
                v.index(i, |v| {
                    // Istio keys each server's listener filter chain by port name.
                    if let Some(port) = server.port.as_ref().filter(|p| !p.name.is_empty()) {
                        if let Some(first) = checks::first_holder(&mut port_names, port.name.as_str(), i) {
                            v.error_at(
                                "port.name",
                                format!(
                                    "port name {:?} is already used by servers[{first}]; port names must be unique across servers",
                                    port.name
                                ),
                            );
                        }
                    }
                    // The API says "must be unique" but Istio does not reject duplicates, so neither do we.
                    if let Some(name) = checks::non_empty(&server.name) {
                        if let Some(first) = checks::first_holder(&mut server_names, name, i) {
                            v.warn_at("name", format!("server name {name:?} is already used by servers[{first}]"));
                        }
                    }
                });
            }
        });
    }
}

/// Istio's `Server`: one listener of a gateway, with the hosts it serves and its TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The port to listen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// IP address or `unix://` socket to bind to (hidden from Istio's docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts served, as `[namespace/]dnsName`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TLS settings; required on HTTPS and TLS ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTLSSettings>,
    /// Where to forward traffic by default (not implemented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Optional server name, unique within the gateway (used in stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Validate for Server {
    fn validate(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at("hosts", "a server needs at least one host");
        }
        v.each("hosts", &self.hosts, |v, host| {
            checks::namespaced_host(v, host, HostScope::Gateway)
        });
        let bind = checks::non_empty(&self.bind);
        match &self.port {
            None => v.error_at("port", "port is required"),
            Some(port) => {
                let unix_bind = bind.is_some_and(|b| b.starts_with(checks::UNIX_PREFIX));
                v.field("port", |v| port.validate_for_gateway(v, unix_bind));
            }
        }
        if let Some(bind) = bind {
            v.field("bind", |v| check_server_bind(v, bind, self.port.as_ref()));
        }
        v.optional("tls", &self.tls);
        self.check_tls_matches_protocol(v);
        self.warn_unserved(v);
        if checks::non_empty(&self.default_endpoint).is_some() {
            v.warn_at(
                "defaultEndpoint",
                "defaultEndpoint is not implemented for gateway servers and is ignored",
            );
        }
    }
}

impl Server {
    /// What weft's gateway proxy does not serve is said at apply time, not ignored.
    fn warn_unserved(&self, v: &mut Validator) {
        let protocol = self.port.as_ref().and_then(Port::parsed_protocol);
        if protocol == Some(Protocol::Udp) {
            v.warn_at(
                "port.protocol",
                "weft's gateway does not proxy UDP; this server is not served",
            );
        }
        if let (Some(tls), true) = (&self.tls, protocol.is_some_and(Protocol::is_tls)) {
            if tls.mode.terminates() {
                tls.warn_unserved(v);
            }
        }
        if checks::non_empty(&self.bind).is_some() {
            v.warn_at(
                "bind",
                "bind is not used: `weft proxy --gateway PORT=ADDRESS` decides where the server listens",
            );
        }
    }

    fn check_tls_matches_protocol(&self, v: &mut Validator) {
        // An unknown protocol is already reported; nothing more can be said about it.
        let Some(protocol) = self.port.as_ref().and_then(Port::parsed_protocol) else {
            return;
        };
        let Some(tls) = &self.tls else {
            if protocol.is_tls() {
                v.error_at(
                    "tls",
                    format!("a {protocol} server needs tls settings (e.g. mode SIMPLE with credentialName)"),
                );
            }
            return;
        };
        if protocol.is_http() {
            // Plain HTTP servers may carry tls only for httpsRedirect.
            if !tls.mode.is_passthrough() || tls.has_certificate_files() {
                v.error_at(
                    "tls",
                    format!("a plain-text {protocol} server cannot terminate TLS; only tls.httpsRedirect applies to it (use protocol HTTPS to serve TLS)"),
                );
            }
        } else if !protocol.is_tls() {
            v.error_at(
                "tls",
                format!("a {protocol} server cannot have tls settings; use protocol HTTPS or TLS"),
            );
        }
        if tls.https_redirect && !protocol.is_http() {
            v.warn_at(
                "tls.httpsRedirect",
                format!("httpsRedirect only applies to HTTP servers (this one is {protocol})"),
            );
        }
    }
}

fn check_server_bind(v: &mut Validator, bind: &str, port: Option<&Port>) {
    if let Some(path) = bind.strip_prefix(checks::UNIX_PREFIX) {
        if let Err(e) = checks::check_unix_path(path) {
            v.error(e);
        }
        if let Some(n) = port.map(|p| p.number).filter(|n| *n != 0) {
            v.error(format!(
                "a unix domain socket bind needs port number 0 (got {n})"
            ));
        }
    } else if let Err(e) = checks::check_ip(bind) {
        v.error(format!(
            "bind must be an IP address or a unix:// socket: {e}"
        ));
    }
}

/// Istio's `Port` (Gateway), `ServicePort` (ServiceEntry) and `SidecarPort` (Sidecar): the same
/// four fields, whose rules differ by use, so each kind checks them itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port number; 0 only for listeners bound to a Unix domain socket.
    #[serde(default)]
    pub number: u32,
    /// Protocol name, case-insensitive (see [`Protocol`]); empty means "detect" where allowed.
    #[serde(default)]
    pub protocol: String,
    /// Port name.
    #[serde(default)]
    pub name: String,
    /// Port on the endpoints; honoured by ServiceEntry only (deprecated and refused elsewhere).
    #[serde(default)]
    pub target_port: u32,
}

impl Port {
    /// The protocol, when it is one Istio knows.
    pub fn parsed_protocol(&self) -> Option<Protocol> {
        Protocol::parse(&self.protocol)
    }

    /// Reports an unknown protocol at `protocol`; an empty one only when `required`.
    pub(crate) fn check_protocol(&self, v: &mut Validator, required: bool) {
        if self.protocol.is_empty() {
            if required {
                v.error_at(
                    "protocol",
                    format!("protocol is required; use one of {}", Protocol::names()),
                );
            }
        } else if self.parsed_protocol().is_none() {
            v.error_at(
                "protocol",
                format!(
                    "unknown protocol {:?}; use one of {}",
                    self.protocol,
                    Protocol::names()
                ),
            );
        }
    }

    /// Reports a set `targetPort`, which only ServiceEntry honours (`kind` names the resource).
    pub(crate) fn reject_target_port(&self, v: &mut Validator, kind: &str) {
        if self.target_port != 0 {
            v.error_at(
                "targetPort",
                format!(
                    "targetPort has no effect on {kind} ports (got {}); remove it",
                    self.target_port
                ),
            );
        }
    }

    /// Checks the name when it is set (Sidecar port names are optional).
    pub(crate) fn check_optional_name(&self, v: &mut Validator) {
        if !self.name.is_empty() {
            v.field("name", |v| checks::port_name(v, &self.name));
        }
    }

    fn validate_for_gateway(&self, v: &mut Validator, unix_bind: bool) {
        self.check_protocol(v, true);
        if self.number != 0 || !unix_bind {
            checks::port_number(v, "number", self.number);
        }
        self.reject_target_port(v, "Gateway");
        // Istio requires the name on gateways but does not check its syntax.
        if self.name.is_empty() {
            v.error_at("name", "port name is required");
        }
    }
}

/// A port protocol Istio knows; YAML spells it in any case (`http`, `HTTP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2.
    Http2,
    /// HTTP over TLS.
    Https,
    /// gRPC.
    Grpc,
    /// gRPC-Web.
    GrpcWeb,
    /// A generic outbound HTTP proxy port (Sidecar egress listeners).
    HttpProxy,
    /// Opaque TCP.
    Tcp,
    /// TLS, routed by SNI without being terminated.
    Tls,
    /// UDP (not proxied).
    Udp,
    /// MongoDB.
    Mongo,
    /// Redis.
    Redis,
    /// MySQL.
    Mysql,
}

impl Protocol {
    /// Every protocol Istio accepts.
    pub const ALL: [Protocol; 12] = [
        Protocol::Http,
        Protocol::Http2,
        Protocol::Https,
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::HttpProxy,
        Protocol::Tcp,
        Protocol::Tls,
        Protocol::Udp,
        Protocol::Mongo,
        Protocol::Redis,
        Protocol::Mysql,
    ];

    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Http2 => "HTTP2",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::Mongo => "MONGO",
            Protocol::Redis => "REDIS",
            Protocol::Mysql => "MYSQL",
        }
    }

    /// Parses a protocol name ignoring case, as Istio does; `None` for empty or unknown names.
    pub fn parse(name: &str) -> Option<Protocol> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    /// True for protocols carried over HTTP (HTTP, HTTP2, HTTP_PROXY, GRPC, GRPC-WEB).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// True for protocols on top of TLS (HTTPS, TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// True for TCP-based protocols that are not HTTP (Istio's `IsTCP`: TCP, HTTPS, TLS, MONGO, REDIS, MYSQL).
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }

    /// The accepted names, for messages.
    pub fn names() -> String {
        Self::ALL.map(Protocol::as_str).join(", ")
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Istio's `ServerTLSSettings`: how a gateway server (or Sidecar ingress listener) handles TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerTLSSettings {
    /// Answer plain HTTP requests with a 301 redirect to HTTPS.
    #[serde(default)]
    pub https_redirect: bool,
    /// How TLS is handled.
    #[serde(default)]
    pub mode: ServerTlsMode,
    /// Path to the server certificate (SIMPLE, MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path to the server's private key (SIMPLE, MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path to the CA bundle that verifies client certificates (MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Path to the certificate revocation list for client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Name of the secret holding the key, certificate and (optionally) CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Several secrets, e.g. one RSA and one ECDSA certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Several certificate files, e.g. one RSA and one ECDSA certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Subject alternative names accepted in client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of the SPKIs of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Lowest TLS version accepted.
    #[serde(default)]
    pub min_protocol_version: TlsProtocolVersion,
    /// Highest TLS version accepted.
    #[serde(default)]
    pub max_protocol_version: TlsProtocolVersion,
    /// Cipher suites offered (OpenSSL names); empty means Envoy's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// One entry of `ServerTLSSettings.tlsCertificates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Path to the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path to the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path to the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// Istio's `ServerTLSSettings.TLSmode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward TLS untouched, routed by SNI.
    #[default]
    Passthrough,
    /// Terminate TLS with a server certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Forward mesh mTLS untouched to the cluster named by the SNI.
    AutoPassthrough,
    /// Terminate mTLS with the proxy's Istio-issued certificate.
    IstioMutual,
    /// Terminate TLS and verify a client certificate when one is presented.
    OptionalMutual,
}

impl ServerTlsMode {
    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerTlsMode::Passthrough => "PASSTHROUGH",
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }

    /// True for the modes that terminate TLS.
    pub fn terminates(self) -> bool {
        !self.is_passthrough()
    }

    /// True for the modes that forward TLS without terminating it.
    pub fn is_passthrough(self) -> bool {
        matches!(
            self,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    }
}

/// Istio's `ServerTLSSettings.TLSProtocol`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum TlsProtocolVersion {
    /// Envoy's default.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

impl TlsProtocolVersion {
    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsProtocolVersion::Auto => "TLS_AUTO",
            TlsProtocolVersion::V1_0 => "TLSV1_0",
            TlsProtocolVersion::V1_1 => "TLSV1_1",
            TlsProtocolVersion::V1_2 => "TLSV1_2",
            TlsProtocolVersion::V1_3 => "TLSV1_3",
        }
    }
}

/// Cipher suites Envoy's BoringSSL accepts, as Istio lists them (`security.ValidCipherSuites`).
pub const VALID_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// The TLS 1.2 cipher suites weft's gateway offers (rustls with ring); TLS 1.3's suites
/// are always offered, as Envoy offers them whatever `cipherSuites` says.
pub const OFFERED_CIPHER_SUITES: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

fn is_valid_cipher_suite(suite: &str) -> bool {
    match suite.chars().next() {
        None => true,
        // Operator forms ("-AES128-SHA", "!aNULL", "[A|B]") are passed through as Istio does.
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => suite == "ALL" || VALID_CIPHER_SUITES.contains(&suite),
    }
}

impl ServerTLSSettings {
    /// What a terminating server asks that weft's gateway cannot do, as warnings.
    fn warn_unserved(&self, v: &mut Validator) {
        if matches!(
            self.max_protocol_version,
            TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1
        ) {
            v.warn_at(
                "tls.maxProtocolVersion",
                "weft's gateway serves TLS 1.2 and 1.3 only; this server is not served",
            );
        } else if matches!(
            self.min_protocol_version,
            TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1
        ) {
            v.warn_at(
                "tls.minProtocolVersion",
                "weft's gateway serves TLS 1.2 and 1.3 only; TLS 1.0 and 1.1 clients are refused",
            );
        }
        for (i, suite) in self.cipher_suites.iter().enumerate() {
            let plain = suite.chars().next().is_some_and(char::is_alphanumeric);
            if plain
                && suite != "ALL"
                && is_valid_cipher_suite(suite)
                && !OFFERED_CIPHER_SUITES.contains(&suite.as_str())
            {
                v.warn_at(
                    &format!("tls.cipherSuites[{i}]"),
                    format!("weft's gateway cannot offer {suite} (it offers ECDHE with AES-GCM or ChaCha20-Poly1305); it is left out"),
                );
            }
        }
    }
}

impl Validate for ServerTLSSettings {
    fn validate(&self, v: &mut Validator) {
        self.check_versions(v);
        self.check_cipher_suites(v);
        match self.mode {
            ServerTlsMode::IstioMutual => {
                self.reject_certificates(v);
                return;
            }
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough => {
                if self.has_certificate_files()
                    || self.uses_credentials()
                    || !self.tls_certificates.is_empty()
                    || checks::non_empty(&self.ca_crl).is_some()
                {
                    v.warn(format!(
                        "mode {} does not terminate TLS; its certificate settings are ignored",
                        self.mode.as_str()
                    ));
                }
            }
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {}
        }
        self.check_single_certificate_source(v);
        let terminating = matches!(
            self.mode,
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
        );
        let has_crl = checks::non_empty(&self.ca_crl).is_some();
        if terminating && self.uses_credentials() {
            // The secret supplies key, certificate, CA bundle and CRL; Istio checks nothing more.
            if has_crl {
                v.warn_at(
                    "caCrl",
                    "caCrl is ignored when certificates come from credentialName(s); put the CRL in the secret",
                );
            }
            return;
        }
        if terminating {
            self.check_certificate_files(v);
        }
        if has_crl {
            if checks::non_empty(&self.credential_name).is_some() {
                v.error_at(
                    "caCrl",
                    "caCrl cannot be combined with credentialName; put the CRL in the secret",
                );
            } else if self.mode == ServerTlsMode::Simple {
                v.error_at(
                    "caCrl",
                    "caCrl checks client certificates, which mode SIMPLE does not request",
                );
            }
        }
    }
}

impl ServerTLSSettings {
    /// True when a certificate file path (server certificate, private key or CA bundle) is set.
    pub fn has_certificate_files(&self) -> bool {
        [
            &self.server_certificate,
            &self.private_key,
            &self.ca_certificates,
        ]
        .into_iter()
        .any(|f| checks::non_empty(f).is_some())
    }

    /// True when certificates come from secrets (`credentialName` or `credentialNames`).
    pub fn uses_credentials(&self) -> bool {
        checks::non_empty(&self.credential_name).is_some() || !self.credential_names.is_empty()
    }

    fn check_versions(&self, v: &mut Validator) {
        let (min, max) = (self.min_protocol_version, self.max_protocol_version);
        if matches!(min, TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1)
            && self.cipher_suites.is_empty()
        {
            v.warn_at(
                "minProtocolVersion",
                format!(
                    "{} needs cipherSuites it supports; the default cipher list has none below TLS 1.2",
                    min.as_str()
                ),
            );
        }
        // Variants are declared oldest first, so the discriminant orders versions.
        if min != TlsProtocolVersion::Auto
            && max != TlsProtocolVersion::Auto
            && (min as u8) > (max as u8)
        {
            v.error_at(
                "minProtocolVersion",
                format!(
                    "minProtocolVersion {} is above maxProtocolVersion {}",
                    min.as_str(),
                    max.as_str()
                ),
            );
        }
    }

    fn check_cipher_suites(&self, v: &mut Validator) {
        let mut seen = BTreeMap::new();
        v.field("cipherSuites", |v| {
            for (i, suite) in self.cipher_suites.iter().enumerate() {
                // Envoy ignores these rather than failing, hence warnings, as in Istio.
                if !is_valid_cipher_suite(suite) {
                    v.index(i, |v| {
                        v.warn(format!("unknown cipher suite {suite:?} is ignored"))
                    });
                } else if let Some(first) = checks::first_holder(&mut seen, suite.as_str(), i) {
                    v.index(i, |v| {
                        v.warn(format!(
                            "cipher suite {suite:?} is already listed at cipherSuites[{first}]"
                        ))
                    });
                }
            }
        });
    }

    fn reject_certificates(&self, v: &mut Validator) {
        let set = [
            (
                "serverCertificate",
                checks::non_empty(&self.server_certificate).is_some(),
            ),
            ("privateKey", checks::non_empty(&self.private_key).is_some()),
            (
                "caCertificates",
                checks::non_empty(&self.ca_certificates).is_some(),
            ),
            ("tlsCertificates", !self.tls_certificates.is_empty()),
            (
                "credentialName",
                checks::non_empty(&self.credential_name).is_some(),
            ),
            ("credentialNames", !self.credential_names.is_empty()),
        ];
        for (field, _) in set.into_iter().filter(|(_, is_set)| *is_set) {
            v.error_at(
                field,
                format!(
                    "{field} cannot be set with mode ISTIO_MUTUAL, which uses the proxy's Istio-issued certificate"
                ),
            );
        }
    }

    fn check_single_certificate_source(&self, v: &mut Validator) {
        let files = checks::non_empty(&self.server_certificate).is_some()
            && checks::non_empty(&self.private_key).is_some();
        let sources: Vec<&str> = [
            ("serverCertificate/privateKey", files),
            (
                "credentialName",
                checks::non_empty(&self.credential_name).is_some(),
            ),
            ("credentialNames", !self.credential_names.is_empty()),
            ("tlsCertificates", !self.tls_certificates.is_empty()),
        ]
        .into_iter()
        .filter(|(_, is_set)| *is_set)
        .map(|(name, _)| name)
        .collect();
        if sources.len() > 1 {
            v.error(format!(
                "only one certificate source may be set, found {}",
                sources.join(" and ")
            ));
        }
    }

    fn check_certificate_files(&self, v: &mut Validator) {
        let mode = self.mode.as_str();
        let mutual = matches!(
            self.mode,
            ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
        );
        if mutual && checks::non_empty(&self.ca_certificates).is_none() {
            v.error_at(
                "caCertificates",
                format!("mode {mode} needs caCertificates (the CA bundle that verifies client certificates), or credentialName"),
            );
        }
        if self.tls_certificates.is_empty() {
            if checks::non_empty(&self.server_certificate).is_none() {
                v.error_at(
                    "serverCertificate",
                    format!("mode {mode} needs serverCertificate, or credentialName"),
                );
            }
            if checks::non_empty(&self.private_key).is_none() {
                v.error_at(
                    "privateKey",
                    format!("mode {mode} needs privateKey, or credentialName"),
                );
            }
            return;
        }
        if self.tls_certificates.len() > 2 {
            v.warn_at(
                "tlsCertificates",
                format!(
                    "at most 2 server certificates are supported (got {})",
                    self.tls_certificates.len()
                ),
            );
        }
        v.each("tlsCertificates", &self.tls_certificates, |v, cert| {
            if checks::non_empty(&cert.server_certificate).is_none() {
                v.error_at(
                    "serverCertificate",
                    format!("mode {mode} needs serverCertificate in every tlsCertificates entry"),
                );
            }
            if checks::non_empty(&cert.private_key).is_none() {
                v.error_at(
                    "privateKey",
                    format!("mode {mode} needs privateKey in every tlsCertificates entry"),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests;
