//! The proxy's workload identity: a key made here (it never leaves the proxy), a CSR sent
//! to the control plane's CA with the workload's bootstrap token, and the SPIFFE
//! certificate that comes back, renewed at 80 % of its life.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::watch;
use weft_proto::ca::CertificateRequest;
use weft_proto::ca::certificate_service_client::CertificateServiceClient;

/// A certificate in force.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    /// `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub spiffe: String,
    /// The leaf and intermediates (PEM).
    pub cert_chain: Vec<String>,
    /// The private key (PEM); never shown.
    #[serde(skip)]
    pub key_pem: String,
    /// The roots the mesh trusts (PEM).
    pub roots: Vec<String>,
    /// Validity start (seconds since the epoch).
    pub not_before: u64,
    /// Validity end (seconds since the epoch).
    pub not_after: u64,
    /// The certificate's serial number (hex).
    pub serial: String,
}

/// The certificate in force, swapped atomically on renewal.
pub type IdentityCell = Arc<ArcSwapOption<Identity>>;

/// How to get certificates.
#[derive(Debug, Clone)]
pub struct IdentitySource {
    /// The control plane (`host:port`).
    pub control: String,
    /// The workload's bootstrap token.
    pub token: String,
    /// The proxy's id.
    pub node_id: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn fetch(source: &IdentitySource) -> Result<Identity, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|e| e.to_string())?;
    let mut client = CertificateServiceClient::connect(format!("http://{}", source.control))
        .await
        .map_err(|e| format!("connecting to the CA at {}: {e}", source.control))?;
    let answer = client
        .create_certificate(CertificateRequest {
            csr,
            token: source.token.clone(),
            node_id: source.node_id.clone(),
        })
        .await
        .map_err(|e| format!("the CA refused: {}", e.message()))?
        .into_inner();
    let leaf = answer
        .cert_chain
        .first()
        .ok_or("the CA sent no certificate")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes())
        .map_err(|e| format!("the CA's certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the CA's certificate: {e}"))?;
    let validity = cert.validity();
    Ok(Identity {
        spiffe: answer.identity,
        not_before: u64::try_from(validity.not_before.timestamp()).unwrap_or(0),
        not_after: u64::try_from(validity.not_after.timestamp()).unwrap_or(0),
        serial: cert.raw_serial_as_string().replace(':', ""),
        cert_chain: answer.cert_chain,
        key_pem: key.serialize_pem(),
        roots: answer.roots,
    })
}

/// Keeps `cell` holding a valid certificate until `shutdown`: fetches one, renews it at
/// 80 % of its life, retries failures with backoff (the old certificate stays meanwhile).
pub async fn run(source: IdentitySource, cell: IdentityCell, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let wait = match fetch(&source).await {
            Ok(id) => {
                // Renew at 80 % of the certificate's life.
                let renew_at = id.not_before + id.not_after.saturating_sub(id.not_before) * 4 / 5;
                let renew_in =
                    Duration::from_secs(renew_at.saturating_sub(now())).max(Duration::from_secs(1));
                tracing::info!(identity = %id.spiffe, serial = %id.serial, not_after = id.not_after, ?renew_in, "certificate in force");
                cell.store(Some(Arc::new(id)));
                backoff = Duration::from_millis(500);
                renew_in
            }
            Err(e) => {
                tracing::warn!("no certificate: {e}; retrying in {backoff:?}");
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
