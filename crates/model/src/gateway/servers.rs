//! What a gateway proxy serves on each port: the Gateway servers bound there, how each
//! handles TLS (plain text, terminated with certificate files or the mesh's identity,
//! passed through by SNI), and the `tcp` and `tls` rules of the VirtualServices bound to
//! them.
//!
//! As Envoy's filter chains in Istio's gateways: on a port whose first server speaks TLS
//! (HTTPS or TLS), a connection's SNI picks the server (the first whose hosts cover the
//! name; without a name, the first with host `*`); a plain-text port serves HTTP or TCP
//! by its first server's protocol. A server of the other kind on a port already taken is
//! not served (Istio drops it the same way).

use std::sync::Arc;

use serde::Serialize;
use weft_api::networking::gateway::{
    Protocol, Server, ServerTLSSettings, ServerTlsMode, TlsProtocolVersion,
};

use crate::host;
use crate::l4::L4Route;

/// What one port of a gateway proxy serves.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GatewayPort {
    /// The servers, oldest Gateway first, in their order within it.
    pub servers: Vec<GatewayServer>,
    /// `tcp` rules of the VirtualServices bound to this port's servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<Arc<L4Route>>,
    /// `tls` rules (SNI) for the passthrough servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<Arc<L4Route>>,
}

impl GatewayPort {
    /// True when connections start with a TLS ClientHello: the port's servers are HTTPS
    /// or TLS servers (a port holds servers of one kind; its first decides).
    pub fn tls(&self) -> bool {
        self.servers
            .first()
            .is_some_and(|s| s.serves.starts_with_tls())
    }

    /// The server for a connection with server name `sni`: the first whose hosts
    /// cover it, else (and without a name) the first with host `*`.
    pub fn server_for(&self, sni: Option<&str>) -> Option<&GatewayServer> {
        if let Some(name) = sni {
            let exact = self
                .servers
                .iter()
                .find(|s| s.hosts.iter().any(|h| h != "*" && host::covers(h, name)));
            if exact.is_some() {
                return exact;
            }
        }
        self.servers
            .iter()
            .find(|s| s.hosts.iter().any(|h| h == "*"))
    }

    /// The first `tcp` rule for a connection on `port`.
    pub fn tcp_route(&self, port: u16) -> Option<&Arc<L4Route>> {
        self.tcp.iter().find(|r| {
            r.matches.is_empty() || r.matches.iter().any(|m| m.port.is_none_or(|p| p == port))
        })
    }

    /// The first `tls` rule whose SNI condition holds for `sni` on `port`.
    pub fn tls_route(&self, sni: &str, port: u16) -> Option<&Arc<L4Route>> {
        self.tls_routes.iter().find(|r| {
            r.matches.iter().any(|m| {
                m.port.is_none_or(|p| p == port)
                    && (m.sni_hosts.is_empty() || m.sni_hosts.iter().any(|h| host::covers(h, sni)))
            })
        })
    }
}

/// One Gateway server on a port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayServer {
    /// `namespace/name` of the Gateway and the server's index or name, for logs.
    pub name: String,
    /// The host names it serves (the DNS part of `[namespace/]host`, lower-case).
    pub hosts: Vec<String>,
    /// What it does with a connection.
    pub serves: Serves,
}

/// What a server does with the connections it is picked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serves {
    /// HTTP in plain text (HTTP, HTTP2, GRPC, ...); `https_redirect` answers every
    /// request with a 301 to `https`.
    Http {
        /// `tls.httpsRedirect`.
        https_redirect: bool,
    },
    /// Opaque TCP in plain text (TCP, MONGO, REDIS, MYSQL), by the port's `tcp` rules.
    Tcp,
    /// HTTPS: TLS terminated, then HTTP by the port's route table.
    TerminatedHttp(Arc<TerminateTls>),
    /// TLS terminated, then TCP by the port's `tcp` rules.
    TerminatedTcp(Arc<TerminateTls>),
    /// TLS forwarded untouched, routed by the port's `tls` rules.
    Passthrough,
    /// TLS forwarded untouched to the cluster its SNI names
    /// (`outbound_.PORT_.SUBSET_.HOST`, as Istio's east-west gateways).
    AutoPassthrough,
}

impl Serves {
    /// True when connections to the server start with TLS.
    pub fn starts_with_tls(&self) -> bool {
        !matches!(self, Serves::Http { .. } | Serves::Tcp)
    }
}

/// How a server terminates TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TerminateTls {
    /// Certificates and their keys (one or several, e.g. RSA and ECDSA), from files or
    /// Secrets; empty with `istio_mutual` (the gateway's workload certificate is used).
    pub certificates: Vec<ServerCertificate>,
    /// Client certificates: not asked for, required, or asked for and optional.
    pub clients: ClientCertificates,
    /// The CA bundle verifying client certificates (MUTUAL, OPTIONAL_MUTUAL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<Pem>,
    /// The revocation list file for client certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// ISTIO_MUTUAL: the gateway's own workload certificate, clients verified by the
    /// mesh's roots.
    pub istio_mutual: bool,
    /// Subject alternative names a client certificate must carry one of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of the client certificates' SPKIs accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of the client certificates accepted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Lowest TLS version: 2 (TLS 1.2) or 3 (TLS 1.3).
    pub min_version: u8,
    /// Highest TLS version: 2 or 3.
    pub max_version: u8,
    /// TLS 1.2 cipher suites offered (OpenSSL names); empty: every suite weft has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// ALPN offered: `h2` and `http/1.1` (and the mesh's `istio-h2`, `istio-http/1.1`)
    /// for HTTPS servers, none for TLS servers.
    pub alpn: Vec<String>,
}

/// A certificate, its key and the CA bundle a Secret holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// The certificate chain and key.
    pub certificate: ServerCertificate,
    /// The CA bundle verifying client certificates, when the Secret (or its `-cacert`
    /// companion) has one.
    pub ca: Option<Pem>,
}

/// One certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServerCertificate {
    /// PEM certificate chain.
    pub certificate: Pem,
    /// PEM private key.
    pub key: Pem,
}

impl ServerCertificate {
    /// A certificate and key from two files.
    pub fn files(certificate: String, key: String) -> ServerCertificate {
        ServerCertificate {
            certificate: Pem::File(certificate),
            key: Pem::File(key),
        }
    }
}

/// PEM text: a file the gateway proxy reads (again when it changes), or a value of a
/// Secret or ConfigMap, carried in the configuration. Shown as the file's path or as
/// `Secret namespace/name[key]`, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pem {
    /// A file's path.
    File(String),
    /// A Secret's or ConfigMap's value.
    Inline {
        /// `Secret namespace/name[key]`, for messages.
        from: String,
        /// The PEM text.
        text: Arc<[u8]>,
    },
}

impl Pem {
    /// Where it comes from, for messages: the path, or `Secret namespace/name[key]`.
    pub fn origin(&self) -> String {
        match self {
            Pem::File(path) => path.clone(),
            Pem::Inline { from, .. } => from.clone(),
        }
    }

    /// The path, when it is a file.
    pub fn path(&self) -> Option<&str> {
        match self {
            Pem::File(path) => Some(path),
            Pem::Inline { .. } => None,
        }
    }
}

impl Serialize for Pem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.origin())
    }
}

/// Whether a terminating server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificates {
    /// SIMPLE.
    NotAsked,
    /// MUTUAL, ISTIO_MUTUAL.
    Required,
    /// OPTIONAL_MUTUAL.
    Optional,
}

/// Resolves a `credentialName` to the Secret's certificate (in the gateway proxy's namespace).
pub type Credentials<'a> = dyn Fn(&str) -> Result<Credential, String> + 'a;

/// What `server` serves, or why it is not served (said once by validation too).
pub fn serves(server: &Server, credentials: &Credentials<'_>) -> Result<Serves, String> {
    let protocol = server
        .port
        .as_ref()
        .and_then(|p| p.parsed_protocol())
        .ok_or("unknown protocol")?;
    let tls = server.tls.as_ref();
    match protocol {
        Protocol::Udp => Err("UDP is not proxied".into()),
        p if p.is_http() && !p.is_tls() => Ok(Serves::Http {
            https_redirect: tls.is_some_and(|t| t.https_redirect),
        }),
        Protocol::Https | Protocol::Tls => {
            let tls = tls.ok_or("a TLS server needs tls settings")?;
            let http = protocol == Protocol::Https;
            match tls.mode {
                ServerTlsMode::Passthrough => Ok(Serves::Passthrough),
                ServerTlsMode::AutoPassthrough => Ok(Serves::AutoPassthrough),
                _ => {
                    let terminate = Arc::new(terminate(tls, http, credentials)?);
                    Ok(if http {
                        Serves::TerminatedHttp(terminate)
                    } else {
                        Serves::TerminatedTcp(terminate)
                    })
                }
            }
        }
        // TCP, MONGO, REDIS, MYSQL: opaque bytes.
        _ => Ok(Serves::Tcp),
    }
}

fn names_credentials(tls: &ServerTLSSettings) -> bool {
    tls.credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        || !tls.credential_names.is_empty()
}

/// The TLS version weft can serve for Istio's `version` (rustls has TLS 1.2 and 1.3).
fn version(v: TlsProtocolVersion, auto: u8) -> u8 {
    match v {
        TlsProtocolVersion::Auto => auto,
        TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1 | TlsProtocolVersion::V1_2 => 2,
        TlsProtocolVersion::V1_3 => 3,
    }
}

fn terminate(
    tls: &ServerTLSSettings,
    http: bool,
    credentials: &Credentials<'_>,
) -> Result<TerminateTls, String> {
    if matches!(
        tls.max_protocol_version,
        TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1
    ) {
        return Err("maxProtocolVersion below TLSV1_2: weft serves TLS 1.2 and 1.3 only".into());
    }
    let istio_mutual = tls.mode == ServerTlsMode::IstioMutual;
    let mut certificates = Vec::new();
    let mut ca_certificates = tls
        .ca_certificates
        .clone()
        .filter(|c| !c.is_empty())
        .map(Pem::File);
    if let (Some(certificate), Some(key)) = (
        tls.server_certificate.clone().filter(|c| !c.is_empty()),
        tls.private_key.clone().filter(|k| !k.is_empty()),
    ) {
        certificates.push(ServerCertificate::files(certificate, key));
    }
    // Secrets (`credentialName`, or several `credentialNames`) win over files, as in Istio.
    let names: Vec<&str> = match tls.credential_name.as_deref().filter(|c| !c.is_empty()) {
        Some(name) => vec![name],
        None => tls.credential_names.iter().map(String::as_str).collect(),
    };
    let from_secrets = !names.is_empty() && !istio_mutual;
    if from_secrets {
        certificates.clear();
        let mut ca = None;
        for name in names {
            let credential = credentials(name)?;
            certificates.push(credential.certificate);
            ca = ca.or(credential.ca);
        }
        ca_certificates = ca;
    }
    for c in tls.tls_certificates.iter().filter(|_| !from_secrets) {
        if let (Some(certificate), Some(key)) =
            (c.server_certificate.clone(), c.private_key.clone())
        {
            certificates.push(ServerCertificate::files(certificate, key));
        }
        if ca_certificates.is_none() {
            ca_certificates = c
                .ca_certificates
                .clone()
                .filter(|c| !c.is_empty())
                .map(Pem::File);
        }
    }
    if certificates.is_empty() && !istio_mutual {
        return Err("no server certificate: set serverCertificate and privateKey".into());
    }
    let clients = match tls.mode {
        ServerTlsMode::Mutual | ServerTlsMode::IstioMutual => ClientCertificates::Required,
        ServerTlsMode::OptionalMutual => ClientCertificates::Optional,
        _ => ClientCertificates::NotAsked,
    };
    if clients != ClientCertificates::NotAsked && ca_certificates.is_none() && !istio_mutual {
        return Err(match names_credentials(tls) {
            true => "client certificates are verified with the Secret's ca.crt (or cacert, or a Secret <name>-cacert), which it does not have".into(),
            false => "client certificates are verified with caCertificates, which is not set".into(),
        });
    }
    Ok(TerminateTls {
        certificates,
        clients,
        ca_certificates: if clients == ClientCertificates::NotAsked {
            None
        } else {
            ca_certificates
        },
        ca_crl: tls
            .ca_crl
            .clone()
            .filter(|c| !c.is_empty() && !istio_mutual),
        istio_mutual,
        subject_alt_names: tls.subject_alt_names.clone(),
        verify_certificate_spki: tls.verify_certificate_spki.clone(),
        verify_certificate_hash: tls
            .verify_certificate_hash
            .iter()
            .map(|h| h.replace(':', "").to_ascii_lowercase())
            .collect(),
        min_version: version(tls.min_protocol_version, 2),
        max_version: version(tls.max_protocol_version, 3),
        cipher_suites: tls.cipher_suites.clone(),
        // A mesh peer (ISTIO_MUTUAL from a sidecar) offers only Istio's names; a TLS
        // server that shares none of the client's names refuses it, so they are listed.
        alpn: if http {
            ["h2", "http/1.1", "istio-h2", "istio-http/1.1"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        },
    })
}

/// The DNS part of a server host (`[namespace/]host`), lower-case.
pub fn server_host(h: &str) -> String {
    h.split_once('/')
        .map_or(h, |(_, name)| name)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::networking::gateway::Port;

    fn server(protocol: &str, hosts: &[&str], tls: Option<ServerTLSSettings>) -> Server {
        Server {
            port: Some(Port {
                number: 443,
                protocol: protocol.into(),
                name: "p".into(),
                ..Port::default()
            }),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            tls,
            ..Server::default()
        }
    }

    /// What a server serves when no Secret exists.
    fn serves_alone(server: &Server) -> Result<Serves, String> {
        serves(server, &|name: &str| {
            Err(format!("Secret istio-system/{name} does not exist"))
        })
    }

    fn files(mode: ServerTlsMode) -> ServerTLSSettings {
        ServerTLSSettings {
            mode,
            server_certificate: Some("/c.pem".into()),
            private_key: Some("/k.pem".into()),
            ca_certificates: Some("/ca.pem".into()),
            ..ServerTLSSettings::default()
        }
    }

    #[test]
    fn each_protocol_and_mode_is_served_its_way() {
        assert_eq!(
            serves_alone(&server("HTTP", &["*"], None)),
            Ok(Serves::Http {
                https_redirect: false
            })
        );
        assert_eq!(
            serves_alone(&server("MONGO", &["*"], None)),
            Ok(Serves::Tcp)
        );
        let simple = serves_alone(&server("HTTPS", &["*"], Some(files(ServerTlsMode::Simple))));
        let Ok(Serves::TerminatedHttp(t)) = simple else {
            panic!("HTTPS SIMPLE terminates: {simple:?}");
        };
        assert_eq!(t.clients, ClientCertificates::NotAsked);
        assert_eq!(t.ca_certificates, None, "SIMPLE verifies no client");
        assert_eq!((t.min_version, t.max_version), (2, 3));
        assert_eq!(t.alpn, ["h2", "http/1.1", "istio-h2", "istio-http/1.1"]);
        let mutual = serves_alone(&server("TLS", &["*"], Some(files(ServerTlsMode::Mutual))));
        let Ok(Serves::TerminatedTcp(t)) = mutual else {
            panic!("TLS MUTUAL terminates into TCP: {mutual:?}");
        };
        assert_eq!(t.clients, ClientCertificates::Required);
        assert!(t.alpn.is_empty());
        assert_eq!(
            serves_alone(&server(
                "HTTPS",
                &["*"],
                Some(files(ServerTlsMode::Passthrough))
            )),
            Ok(Serves::Passthrough)
        );
        let istio = ServerTLSSettings {
            mode: ServerTlsMode::IstioMutual,
            ..ServerTLSSettings::default()
        };
        let Ok(Serves::TerminatedHttp(t)) = serves_alone(&server("HTTPS", &["*"], Some(istio)))
        else {
            panic!("ISTIO_MUTUAL terminates");
        };
        assert!(t.istio_mutual && t.certificates.is_empty());
    }

    #[test]
    fn what_cannot_be_served_says_why() {
        let secret = ServerTLSSettings {
            mode: ServerTlsMode::Simple,
            credential_name: Some("tls-secret".into()),
            ..ServerTLSSettings::default()
        };
        let err = serves_alone(&server("HTTPS", &["*"], Some(secret))).expect_err("no secret");
        assert_eq!(err, "Secret istio-system/tls-secret does not exist");
        let old = ServerTLSSettings {
            max_protocol_version: TlsProtocolVersion::V1_1,
            ..files(ServerTlsMode::Simple)
        };
        let err = serves_alone(&server("HTTPS", &["*"], Some(old))).expect_err("TLS 1.1");
        assert!(err.contains("TLS 1.2 and 1.3"), "{err}");
        assert!(serves_alone(&server("UDP", &["*"], None)).is_err());
    }

    #[test]
    fn sni_picks_the_server_and_star_is_the_default() {
        let port = GatewayPort {
            servers: vec![
                GatewayServer {
                    name: "a".into(),
                    hosts: vec!["*".into()],
                    serves: Serves::Passthrough,
                },
                GatewayServer {
                    name: "b".into(),
                    hosts: vec!["*.example.com".into()],
                    serves: Serves::AutoPassthrough,
                },
            ],
            ..GatewayPort::default()
        };
        let name = |sni| port.server_for(sni).map(|s| s.name.as_str());
        assert_eq!(
            name(Some("shop.example.com")),
            Some("b"),
            "a named host beats *"
        );
        assert_eq!(name(Some("other.org")), Some("a"));
        assert_eq!(name(None), Some("a"));
        assert_eq!(server_host("./Shop.Example.com"), "shop.example.com");
    }
}
