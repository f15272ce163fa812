//! The server side of a gateway's TLS: the certificates of a Gateway server (files the
//! gateway reads, Secrets' text that came with the configuration, or with ISTIO_MUTUAL its
//! workload certificate), the client certificates
//! it asks for, the TLS versions and cipher suites it allows. Configurations are built
//! once per server and rebuilt when a file changes (a renewed certificate is served from
//! the next handshake on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use weft_model::gateway::servers::{ClientCertificates, Pem, TerminateTls};

use crate::identity::{Identity, IdentityCell};

/// Built configurations by server settings, with what they were built from.
#[derive(Debug, Default)]
pub struct GatewayTls {
    built: Mutex<HashMap<Arc<TerminateTls>, Built>>,
}

#[derive(Debug)]
struct Built {
    /// The files' modification times (or the workload certificate's serial).
    from: Vec<Option<SystemTime>>,
    serial: Option<String>,
    config: Arc<ServerConfig>,
}

impl GatewayTls {
    /// The configuration for `tls`, rebuilt when its files (or the workload certificate
    /// in `identity`) changed.
    pub fn get(
        &self,
        tls: &Arc<TerminateTls>,
        identity: Option<&IdentityCell>,
    ) -> Result<Arc<ServerConfig>, String> {
        let from = modified(tls);
        let id = match tls.istio_mutual {
            true => Some(
                identity
                    .and_then(|c| c.load_full())
                    .ok_or("ISTIO_MUTUAL: the gateway has no workload certificate yet")?,
            ),
            false => None,
        };
        let serial = id.as_ref().map(|id| id.serial.clone());
        {
            let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(b) = built.get(tls) {
                if b.from == from && b.serial == serial {
                    return Ok(b.config.clone());
                }
            }
        }
        let config = config(tls, id.as_deref())?;
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        // A renewed Secret is a new key: the configurations built from the old text of
        // the same Secrets (and the old private key) are dropped.
        let (origins, texts) = secret_texts(tls);
        built.retain(|k, _| {
            let (o, t) = secret_texts(k);
            origins.is_empty() || o != origins || t == texts
        });
        built.insert(
            tls.clone(),
            Built {
                from,
                serial,
                config: config.clone(),
            },
        );
        Ok(config)
    }
}

/// Where the Secrets' certificates and keys of `tls` come from, and their text (none
/// for files only).
fn secret_texts(tls: &TerminateTls) -> (Vec<&str>, Vec<&[u8]>) {
    tls.certificates
        .iter()
        .flat_map(|c| [&c.certificate, &c.key])
        .chain(tls.ca_certificates.iter())
        .filter_map(|p| match p {
            Pem::Inline { from, text } => Some((from.as_str(), &text[..])),
            Pem::File(_) => None,
        })
        .unzip()
}

/// The modification times of every file `tls` reads (a Secret's text comes with the
/// configuration: a new one is another `TerminateTls`).
fn modified(tls: &TerminateTls) -> Vec<Option<SystemTime>> {
    let files = tls
        .certificates
        .iter()
        .flat_map(|c| [&c.certificate, &c.key])
        .chain(tls.ca_certificates.iter())
        .filter_map(Pem::path)
        .chain(tls.ca_crl.as_deref());
    files
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// The text of `pem`: the file's, or the Secret's.
fn text(pem: &Pem, what: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(path) => super::read_file(path, what),
        Pem::Inline { text, .. } => Ok(text.to_vec()),
    }
}

/// The certificates of `pem` (at least one).
fn chain(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    super::chain_pem(&text(pem, what)?, what, &pem.origin())
}

/// The TLS 1.2 suite rustls has for an OpenSSL (BoringSSL) cipher name.
fn suite_named(name: &str) -> Option<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// Whether weft's gateway can offer the cipher suite `name` (for validation's warnings):
/// BoringSSL's `[A|B]` equal-preference groups count when one of theirs can.
pub fn can_offer_cipher_suite(name: &str) -> bool {
    cipher_names(name).any(|n| suite_named(n).is_some())
}

fn cipher_names(entry: &str) -> impl Iterator<Item = &str> {
    entry
        .trim_matches(|c| c == '[' || c == ']')
        .split('|')
        .map(str::trim)
}

/// ring with the suites `tls` allows: TLS 1.3's always (Envoy does not configure them
/// either), TLS 1.2's those `cipherSuites` names (all when it names none).
fn provider(tls: &TerminateTls) -> Result<Arc<CryptoProvider>, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() && !tls.cipher_suites.iter().any(|c| c == "ALL") {
        let wanted: Vec<rustls::SupportedCipherSuite> = tls
            .cipher_suites
            .iter()
            .flat_map(|e| cipher_names(e))
            .filter_map(suite_named)
            .collect();
        provider.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13 || wanted.iter().any(|w| w.suite() == s.suite())
        });
        if tls.max_version < 3 && wanted.is_empty() {
            return Err(format!(
                "none of cipherSuites {:?} is one weft can offer",
                tls.cipher_suites
            ));
        }
    }
    Ok(Arc::new(provider))
}

/// The configuration for `tls`; `workload` is the gateway's certificate, for ISTIO_MUTUAL.
fn config(tls: &TerminateTls, workload: Option<&Identity>) -> Result<Arc<ServerConfig>, String> {
    let provider = provider(tls)?;
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match (tls.min_version, tls.max_version) {
            (3, _) => &[&rustls::version::TLS13],
            (_, 2) => &[&rustls::version::TLS12],
            _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
    // The certificates, and the roots for client certificates.
    let (keys, roots) = if let Some(id) = workload {
        let (chain, key) = super::certified(id)?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("workload key: {e}"))?;
        let roots = super::roots(&id.roots)?;
        (vec![Arc::new(CertifiedKey::new(chain, key))], Some(roots))
    } else {
        let mut keys = Vec::new();
        for c in &tls.certificates {
            let chain = chain(&c.certificate, "serverCertificate")?;
            let origin = c.key.origin();
            let key = super::key_pem(&text(&c.key, "privateKey")?, "privateKey", &origin)?;
            let key = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| format!("privateKey {origin}: {e}"))?;
            keys.push(Arc::new(CertifiedKey::new(chain, key)));
        }
        let roots = match &tls.ca_certificates {
            Some(pem) => {
                let mut store = rustls::RootCertStore::empty();
                for cert in chain(pem, "caCertificates")? {
                    store
                        .add(cert)
                        .map_err(|e| format!("caCertificates {}: {e}", pem.origin()))?;
                }
                Some(store)
            }
            None => None,
        };
        (keys, roots)
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (tls.clients, roots) {
        (ClientCertificates::NotAsked, _) | (_, None) => builder.with_no_client_auth(),
        (clients, Some(roots)) => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(path) = &tls.ca_crl {
                let pem = super::read_file(path, "caCrl")?;
                let crls: Vec<CertificateRevocationListDer<'static>> =
                    CertificateRevocationListDer::pem_slice_iter(&pem)
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("caCrl {path}: {e}"))?;
                verifier = verifier.with_crls(crls);
            }
            if clients == ClientCertificates::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let inner = verifier
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(Arc::new(Pinned {
                inner,
                subject_alt_names: tls.subject_alt_names.clone(),
                spki: tls.verify_certificate_spki.clone(),
                hash: tls.verify_certificate_hash.clone(),
            }))
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(ByScheme(keys)));
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// Several certificates (e.g. RSA and ECDSA): the first whose key can sign with a scheme
/// the client offers.
#[derive(Debug)]
struct ByScheme(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ByScheme {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}

/// Client certificates checked further than their chain: `subjectAltNames`,
/// `verifyCertificateSpki`, `verifyCertificateHash` (any one entry of each list set).
#[derive(Debug)]
struct Pinned {
    inner: Arc<dyn ClientCertVerifier>,
    subject_alt_names: Vec<String>,
    spki: Vec<String>,
    hash: Vec<String>,
}

impl ClientCertVerifier for Pinned {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        pinned(end_entity, &self.subject_alt_names, &self.spki, &self.hash)
            .map_err(|e| rustls::Error::General(e.into()))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a client certificate against the pinned names and hashes (an empty list
/// pins nothing).
fn pinned(
    cert: &CertificateDer<'_>,
    subject_alt_names: &[String],
    spki: &[String],
    hash: &[String],
) -> Result<(), &'static str> {
    use base64::Engine as _;
    if !hash.is_empty() {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if !hash.contains(&hex) {
            return Err("client certificate hash is not one of verifyCertificateHash");
        }
    }
    if subject_alt_names.is_empty() && spki.is_empty() {
        return Ok(());
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| "client certificate cannot be parsed")?;
    if !spki.is_empty() {
        let digest = ring::digest::digest(&ring::digest::SHA256, parsed.public_key().raw);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        if !spki.contains(&b64) {
            return Err("client certificate key is not one of verifyCertificateSpki");
        }
    }
    if !subject_alt_names.is_empty() {
        use x509_parser::extensions::GeneralName;
        let sans: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        GeneralName::URI(u) => Some(u.to_string()),
                        GeneralName::RFC822Name(e) => Some(e.to_string()),
                        GeneralName::IPAddress(ip) => match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*ip)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !subject_alt_names.iter().any(|want| sans.contains(want)) {
            return Err("client certificate names none of subjectAltNames");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_cipher_names_map_to_what_rustls_has() {
        assert!(can_offer_cipher_suite("ECDHE-RSA-AES128-GCM-SHA256"));
        assert!(can_offer_cipher_suite(
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]"
        ));
        assert!(!can_offer_cipher_suite("AES128-SHA"));
        assert!(!can_offer_cipher_suite("ECDHE-RSA-AES128-SHA"));
        // Validation warns about every other suite: the two lists agree.
        for name in weft_api::networking::gateway::OFFERED_CIPHER_SUITES {
            assert!(can_offer_cipher_suite(name), "{name}");
        }
    }

    #[test]
    fn pins_check_the_names_and_hashes_of_a_client_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["client.example.com".to_string()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().expect("uri"),
        ));
        let cert = params.self_signed(&key).expect("cert");
        let der = cert.der().clone();
        let none: &[String] = &[];
        assert_eq!(pinned(&der, none, none, none), Ok(()));
        let names = ["spiffe://cluster.local/ns/a/sa/b".to_string()];
        assert_eq!(pinned(&der, &names, none, none), Ok(()));
        let other = ["other.example.com".to_string()];
        assert!(pinned(&der, &other, none, none).is_err());
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(pinned(&der, none, none, &[hex]), Ok(()));
        assert!(pinned(&der, none, none, &["00".repeat(32)]).is_err());
        assert!(pinned(&der, none, &["AAAA".to_string()], none).is_err());
    }
}
