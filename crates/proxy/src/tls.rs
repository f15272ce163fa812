//! Mutual TLS on the inbound side: with a workload certificate from the mesh's CA, the
//! inbound listener terminates TLS from callers that present a certificate the mesh's
//! roots sign (PERMISSIVE: plaintext is still served), and learns who they are from their
//! SPIFFE identity. rustls (ring), no OpenSSL.

use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::identity::{Identity, IdentityCell};

/// The server configuration for the certificate in force, rebuilt when it changes.
#[derive(Debug, Default)]
pub struct ServerTls {
    built: Mutex<Option<(String, Arc<ServerConfig>)>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config(id: &Identity) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = id
        .cert_chain
        .iter()
        .flat_map(|pem| CertificateDer::pem_slice_iter(pem.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate chain: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    let mut roots = RootCertStore::empty();
    for pem in &id.roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("root: {e}"))?;
            roots.add(cert).map_err(|e| format!("root: {e}"))?;
        }
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl ServerTls {
    /// The configuration for the certificate in `cell`, if there is one.
    pub fn get(&self, cell: &IdentityCell) -> Option<Arc<ServerConfig>> {
        let id = cell.load_full()?;
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((serial, config)) = built.as_ref() {
            if *serial == id.serial {
                return Some(config.clone());
            }
        }
        match config(&id) {
            Ok(c) => {
                *built = Some((id.serial.clone(), c.clone()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!("cannot serve TLS with the workload certificate: {e}");
                None
            }
        }
    }
}

/// The caller's identity from its certificate: Istio's principal form
/// (`cluster.local/ns/<ns>/sa/<sa>`), from the `spiffe://` URI SAN.
pub fn peer_principal(certs: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    sans.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => {
            uri.strip_prefix("spiffe://").map(str::to_string)
        }
        _ => None,
    })
}
