//! The server side of mesh mTLS: with a workload certificate from the mesh's CA, the
//! inbound listener terminates TLS from callers that present a certificate the mesh's
//! roots sign, and learns who they are from their SPIFFE identity.

use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;

use crate::identity::{Identity, IdentityCell};

/// The server configuration for the certificate in force, rebuilt when it changes.
#[derive(Debug, Default)]
pub struct ServerTls {
    built: Mutex<Option<(String, Arc<ServerConfig>)>>,
}

fn config(id: &Identity) -> Result<Arc<ServerConfig>, String> {
    let (chain, key) = super::certified(id)?;
    let roots = super::roots(&id.roots)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate: {e}"))?;
    config.alpn_protocols = super::MESH_ALPN.iter().map(|p| p.to_vec()).collect();
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
