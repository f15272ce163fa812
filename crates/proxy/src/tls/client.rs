//! The client side: the TLS a sidecar originates toward an endpoint, as the cluster's
//! DestinationRule `tls` says. Without one (auto mTLS), endpoints that run a sidecar and
//! accept mTLS get mesh mTLS with the workload certificate; the server must prove one of
//! the identities the destination service runs as (secure naming), with a certificate
//! the mesh's roots sign. `SIMPLE` and `MUTUAL` originate TLS to any server with the
//! rule's files.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use weft_model::policy::{OriginateTls, UpstreamTls};
use weft_model::translate::ServerIdentity;

use crate::identity::{Identity, IdentityCell};

/// What a connection carries, which decides the ALPN offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2.
    Http2,
    /// Opaque TCP.
    Tcp,
}

/// How to secure one new connection.
#[derive(Debug, Clone)]
pub struct Originate {
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// The name sent as SNI.
    pub server_name: ServerName<'static>,
    /// The cluster TLS settings it comes from (a new number when they change, not when
    /// the certificate is renewed): connections are only reused under the same settings.
    pub settings: u64,
}

/// Numbers cluster TLS settings.
static SETTINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A cluster's TLS origination, built with each configuration.
#[derive(Debug)]
pub struct ClusterTls {
    settings: u64,
    mode: UpstreamTls,
    /// Istio's SNI for mesh mTLS: `outbound_.<port>_.<subset>_.<host>`.
    mesh_sni: String,
    identities: Vec<ServerIdentity>,
    /// Mesh configurations for the certificate in force.
    mesh: ArcSwapOption<Configs>,
    /// `SIMPLE` / `MUTUAL` configurations (their files read once per configuration).
    fixed: Option<Result<Configs, String>>,
}

#[derive(Debug)]
struct Configs {
    /// The certificate serial they were built with (mesh).
    serial: String,
    /// By [`Purpose`]: HTTP/1.1, HTTP/2, TCP.
    by_purpose: [Arc<Originate>; 3],
}

impl Configs {
    fn new(
        (serial, settings): (String, u64),
        server_name: ServerName<'static>,
        [http1, http2, tcp]: [Arc<ClientConfig>; 3],
    ) -> Self {
        let each = |config| {
            Arc::new(Originate {
                config,
                server_name: server_name.clone(),
                settings,
            })
        };
        Configs {
            serial,
            by_purpose: [each(http1), each(http2), each(tcp)],
        }
    }

    fn originate(&self, purpose: Purpose) -> Arc<Originate> {
        self.by_purpose[match purpose {
            Purpose::Http1 => 0,
            Purpose::Http2 => 1,
            Purpose::Tcp => 2,
        }]
        .clone()
    }
}

impl ClusterTls {
    /// The origination of cluster `cluster` (`outbound|port|subset|host`) of `host` whose
    /// workloads run as `identities`.
    pub fn new(
        mode: &UpstreamTls,
        cluster: &str,
        host: &str,
        identities: &[ServerIdentity],
    ) -> Self {
        let settings = SETTINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fixed = match mode {
            UpstreamTls::Simple(o) => Some(originating(o, host, false, settings)),
            UpstreamTls::Mutual(o) => Some(originating(o, host, true, settings)),
            _ => None,
        };
        if let Some(Err(e)) = &fixed {
            tracing::warn!(%host, "cannot originate TLS: {e}");
        }
        ClusterTls {
            settings,
            mode: mode.clone(),
            mesh_sni: cluster.replace('|', "_."),
            identities: identities.to_vec(),
            mesh: ArcSwapOption::empty(),
            fixed,
        }
    }

    /// The TLS for a new connection to an endpoint (`mesh_endpoint`: it runs a sidecar
    /// that accepts mTLS); `None` for plaintext.
    pub fn originate(
        &self,
        mesh_endpoint: bool,
        identity: Option<&IdentityCell>,
        purpose: Purpose,
    ) -> Result<Option<Arc<Originate>>, String> {
        let certificate = || identity.and_then(|c| c.load_full());
        match &self.mode {
            UpstreamTls::Disable => Ok(None),
            UpstreamTls::Auto if !mesh_endpoint => Ok(None),
            // Without a workload certificate there is no mesh mTLS to originate.
            UpstreamTls::Auto => match certificate() {
                Some(id) => self.mesh_with(&id, &[], None, purpose).map(Some),
                None => Ok(None),
            },
            UpstreamTls::IstioMutual {
                subject_alt_names,
                sni,
            } => {
                let id = certificate().ok_or(
                    "ISTIO_MUTUAL needs the workload certificate, which this proxy does not have",
                )?;
                self.mesh_with(&id, subject_alt_names, sni.as_deref(), purpose)
                    .map(Some)
            }
            UpstreamTls::Simple(_) | UpstreamTls::Mutual(_) => match &self.fixed {
                Some(Ok(c)) => Ok(Some(c.originate(purpose))),
                Some(Err(e)) => Err(e.clone()),
                None => Err("no TLS configuration".into()),
            },
        }
    }

    fn mesh_with(
        &self,
        id: &Identity,
        sans: &[String],
        sni: Option<&str>,
        purpose: Purpose,
    ) -> Result<Arc<Originate>, String> {
        if let Some(c) = self.mesh.load().as_ref() {
            if c.serial == id.serial {
                return Ok(c.originate(purpose));
            }
        }
        let built = Arc::new(self.mesh_configs(id, sans, sni)?);
        let out = built.originate(purpose);
        self.mesh.store(Some(built));
        Ok(out)
    }

    fn mesh_configs(
        &self,
        id: &Identity,
        sans: &[String],
        sni: Option<&str>,
    ) -> Result<Configs, String> {
        // Accounts are named in the client's own trust domain.
        let domain = id
            .spiffe
            .strip_prefix("spiffe://")
            .and_then(|r| r.split('/').next())
            .unwrap_or("cluster.local");
        let expected: Vec<String> = if sans.is_empty() {
            self.identities
                .iter()
                .map(|i| match i {
                    ServerIdentity::Account {
                        namespace,
                        service_account,
                    } => format!("spiffe://{domain}/ns/{namespace}/sa/{service_account}"),
                    ServerIdentity::Uri(u) => u.clone(),
                })
                .collect()
        } else {
            sans.to_vec()
        };
        let verifier = Arc::new(Verifier {
            roots: Arc::new(super::roots(&id.roots)?),
            algs: super::provider().signature_verification_algorithms,
            accept: if expected.is_empty() {
                Accept::Chain
            } else {
                Accept::AnyOf(expected)
            },
        });
        let (chain, key) = super::certified(id)?;
        let build = |alpn: &[u8]| -> Result<Arc<ClientConfig>, String> {
            let mut c = ClientConfig::builder_with_provider(super::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("workload certificate: {e}"))?;
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        // Istio's SNI (identities are what is checked, not the name); a wildcard host,
        // which makes no valid name, sends a placeholder instead.
        let name = match sni {
            Some(sni) => server_name(sni)?,
            None => {
                server_name(&self.mesh_sni).or_else(|_| server_name("outbound.mesh.invalid"))?
            }
        };
        Ok(Configs::new(
            (id.serial.clone(), self.settings),
            name,
            [
                build(super::ALPN_HTTP1)?,
                build(super::ALPN_H2)?,
                build(super::ALPN_TCP)?,
            ],
        ))
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name:?}: {e}"))
}

/// `SIMPLE` (no client certificate) or `MUTUAL` origination from a DestinationRule.
fn originating(
    o: &OriginateTls,
    host: &str,
    mutual: bool,
    settings: u64,
) -> Result<Configs, String> {
    const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
    let roots_file = o.ca_certificates.as_deref().unwrap_or(SYSTEM_ROOTS);
    let mut roots = RootCertStore::empty();
    if !o.insecure_skip_verify {
        let pem = super::read_file(roots_file, "caCertificates")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{roots_file}: {e}"))?;
            // The system bundle holds a few certificates webpki cannot use; skip those.
            if let Err(e) = roots.add(cert) {
                tracing::debug!("{roots_file}: certificate skipped: {e}");
            }
        }
        if roots.is_empty() {
            return Err(format!("{roots_file} holds no usable CA certificate"));
        }
    }
    let sni = o.sni.clone().unwrap_or_else(|| host.to_string());
    let verifier = Arc::new(Verifier {
        roots: Arc::new(roots),
        algs: super::provider().signature_verification_algorithms,
        accept: if o.insecure_skip_verify {
            Accept::Anything
        } else if o.subject_alt_names.is_empty() {
            Accept::AnyOf(vec![sni.clone()])
        } else {
            Accept::AnyOf(o.subject_alt_names.clone())
        },
    });
    let client_auth = if mutual {
        let (Some(cert), Some(key)) = (&o.client_certificate, &o.private_key) else {
            return Err("MUTUAL needs clientCertificate and privateKey".into());
        };
        let chain = super::chain_file(cert, "clientCertificate")?;
        Some((chain, super::key_file(key, "privateKey")?))
    } else {
        None
    };
    let build = |alpn: Option<&[u8]>| -> Result<Arc<ClientConfig>, String> {
        let b = ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut c = match &client_auth {
            Some((chain, key)) => b
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("client certificate: {e}"))?,
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
        Ok(Arc::new(c))
    };
    Ok(Configs::new(
        (String::new(), settings),
        server_name(&sni)?,
        [build(Some(b"http/1.1"))?, build(Some(b"h2"))?, build(None)?],
    ))
}

/// Which server certificates are accepted.
#[derive(Debug)]
enum Accept {
    /// One whose SANs include one of these: URIs compared exactly, others as DNS names.
    AnyOf(Vec<String>),
    /// Any the roots sign.
    Chain,
    /// Anything (`insecureSkipVerify`).
    Anything,
}

#[derive(Debug)]
struct Verifier {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    accept: Accept,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let names = match &self.accept {
            Accept::Anything => return Ok(ServerCertVerified::assertion()),
            Accept::Chain => None,
            Accept::AnyOf(names) => Some(names),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        let Some(names) = names else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = super::spiffe_id(end_entity);
        let matches = |want: &String| {
            if want.contains("://") {
                presented.as_deref() == Some(want.as_str())
            } else {
                ServerName::try_from(want.as_str())
                    .is_ok_and(|n| rustls::client::verify_server_name(&cert, &n).is_ok())
            }
        };
        if names.iter().any(matches) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::General(format!(
            "the server's certificate ({}) is not one of {}",
            presented.as_deref().unwrap_or("no SPIFFE identity"),
            names.join(", ")
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
