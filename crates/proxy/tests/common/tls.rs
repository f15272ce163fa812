//! TLS clients for tests that look at a sidecar's server side: they present a certificate
//! and accept any server certificate (what is checked is the server's side of things).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts the server's certificate unchecked.
#[derive(Debug)]
pub struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client presenting `(chain PEM, key PEM)` and offering `alpn` (a sidecar offers
/// `istio-http/1.1`).
pub fn client_config((cert, key): &(String, String), alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain"),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
        )
        .expect("client config");
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// `GET /` (host `reviews`) straight to a sidecar's inbound listener, over mesh mTLS with
/// `identity` or in plaintext with `None`: the status, 0 when the connection ended without
/// an answer (a refused certificate ends the handshake, or the connection right after it).
pub async fn get_status(addr: std::net::SocketAddr, identity: Option<&(String, String)>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = b"GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n";
    let mut answer = Vec::new();
    match identity {
        None => {
            if tcp.write_all(request).await.is_ok() {
                let _ = tcp.read_to_end(&mut answer).await;
            }
        }
        Some(identity) => {
            // A sidecar's mesh mTLS, by Istio's ALPN (other TLS is the app's own).
            let config = client_config(identity, b"istio-http/1.1");
            let name = ServerName::try_from("reviews").expect("name");
            let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
            else {
                return 0;
            };
            if tls.write_all(request).await.is_ok() {
                let _ = tls.read_to_end(&mut answer).await;
            }
        }
    }
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
