//! TLS with rustls (ring), no OpenSSL: the mesh's mutual TLS between sidecars (server
//! side in [`server`], client side in [`client`]) and DestinationRule TLS origination.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::Identity;

pub mod client;
pub mod gateway;
pub mod server;

pub use client::{ClusterTls, Originate, Purpose};
pub use gateway::GatewayTls;
pub use server::ServerTls;

/// ALPN of mesh mTLS, as Istio's sidecars name it: the `istio-` prefix tells a sidecar's
/// TLS from an application's own TLS (which a PERMISSIVE or DISABLE port passes through).
pub const ALPN_H2: &[u8] = b"istio-h2";
/// HTTP/1.1 inside mesh mTLS.
pub const ALPN_HTTP1: &[u8] = b"istio-http/1.1";
/// Opaque TCP inside mesh mTLS.
pub const ALPN_TCP: &[u8] = b"istio";
/// What a sidecar's inbound side accepts.
pub const MESH_ALPN: [&[u8]; 3] = [ALPN_H2, ALPN_HTTP1, ALPN_TCP];

/// ring, built once for every configuration.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The certificate chain and key of a workload identity.
fn certified(
    id: &Identity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = certs(id.cert_chain.iter().map(String::as_bytes))?;
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    Ok((chain, key))
}

/// Every certificate in PEM texts.
fn certs<'a>(pems: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for pem in pems {
        for cert in CertificateDer::pem_slice_iter(pem) {
            out.push(cert.map_err(|e| format!("certificate: {e}"))?);
        }
    }
    Ok(out)
}

/// The bytes of a certificate or key file the configuration names (`what`: its field).
fn read_file(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {what} {path}: {e}"))
}

/// The certificates of PEM file `path` (at least one).
fn chain_file(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    chain_pem(&read_file(path, what)?, what, path)
}

/// The certificates of PEM text `pem` (at least one); `origin` names it in errors.
fn chain_pem(pem: &[u8], what: &str, origin: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = certs(std::iter::once(pem)).map_err(|e| format!("{what} {origin}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{what} {origin}: no PEM certificate in it"));
    }
    Ok(chain)
}

/// The private key of PEM file `path`.
fn key_file(path: &str, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    key_pem(&read_file(path, what)?, what, path)
}

/// The private key of PEM text `pem`; `origin` names it in errors.
fn key_pem(pem: &[u8], what: &str, origin: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("{what} {origin}: {e}"))
}

/// A root store of PEM roots.
fn roots(pems: &[String]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pems.iter().map(String::as_bytes))? {
        roots.add(cert).map_err(|e| format!("root: {e}"))?;
    }
    Ok(roots)
}

/// The `spiffe://` URI SAN of a certificate.
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    sans.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
            Some(uri.to_string())
        }
        _ => None,
    })
}

/// The caller's identity from its certificate: Istio's principal form
/// (`cluster.local/ns/<ns>/sa/<sa>`), from the `spiffe://` URI SAN.
pub fn peer_principal(certs: &[CertificateDer<'_>]) -> Option<String> {
    spiffe_id(certs.first()?).and_then(|id| id.strip_prefix("spiffe://").map(str::to_string))
}
