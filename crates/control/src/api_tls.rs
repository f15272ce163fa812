//! HTTPS for the resource API, so kubectl (which sends a bearer token only over TLS) can
//! authenticate: a CA of the API's own, kept in `<state dir>/api-tls/ca.{crt,key}` across
//! restarts (a kubeconfig's `certificate-authority-data` stays valid), and a serving
//! certificate issued from it at each start for `localhost`, the loopback addresses and
//! the address the API is bound to. One port serves both: a connection whose first byte
//! is a TLS handshake record is TLS, any other is plain HTTP.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a new connection may stay silent before it is dropped.
pub const FIRST_BYTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The API's TLS: its CA and the acceptor for its serving certificate.
#[derive(Clone)]
pub struct ApiTls {
    /// The CA's certificate (PEM): what clients trust (`certificate-authority-data`).
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls").finish_non_exhaustive()
    }
}

/// Why the API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    /// Reading or writing the files.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Generating or loading keys and certificates.
    #[error("the API's certificate: {0}")]
    Crypto(String),
}

fn crypto(e: impl std::fmt::Display) -> ApiTlsError {
    ApiTlsError::Crypto(e.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ApiTlsError + '_ {
    move |error| ApiTlsError::Io {
        path: path.display().to_string(),
        error,
    }
}

impl ApiTls {
    /// Opens (or creates) the API CA in `dir` and issues a serving certificate for
    /// `localhost`, `127.0.0.1`, `::1` and `bound` (when it is a specific address).
    pub fn open(dir: &Path, bound: IpAddr) -> Result<ApiTls, ApiTlsError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let (ca_pem, key_pem) = if ca_cert.exists() && ca_key.exists() {
            (
                std::fs::read_to_string(&ca_cert).map_err(io(&ca_cert))?,
                std::fs::read_to_string(&ca_key).map_err(io(&ca_key))?,
            )
        } else {
            let (cert, key) = new_ca()?;
            write_private(&ca_key, &key)?;
            std::fs::write(&ca_cert, &cert).map_err(io(&ca_cert))?;
            (cert, key)
        };
        let ca_key = KeyPair::from_pem(&key_pem).map_err(crypto)?;
        let issuer = CertificateParams::from_ca_cert_pem(&ca_pem)
            .and_then(|p| p.self_signed(&ca_key))
            .map_err(crypto)?;
        let (leaf_pem, leaf_key) = serving_certificate(&issuer, &ca_key, bound)?;
        let chain = vec![
            CertificateDer::from_pem_slice(leaf_pem.as_bytes()).map_err(crypto)?,
            CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(crypto)?,
        ];
        let key = PrivateKeyDer::from_pem_slice(leaf_key.as_bytes()).map_err(crypto)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(crypto)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(crypto)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ApiTls {
            ca_pem,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Serves `stream` as TLS when it begins with a handshake, else as plain HTTP. A
    /// client that sends nothing, or does not finish its handshake, for [`FIRST_BYTE_TIMEOUT`]
    /// is dropped.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<ApiStream> {
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "nothing sent"))??;
        if n == 1 && first[0] == TLS_HANDSHAKE {
            let handshake = tokio::time::timeout(FIRST_BYTE_TIMEOUT, self.acceptor.accept(stream));
            let tls = handshake.await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
            })??;
            Ok(ApiStream::Tls(Box::new(tls)))
        } else {
            Ok(ApiStream::Plain(stream))
        }
    }
}

/// A connection to the API: TLS or plain.
pub enum ApiStream {
    /// HTTPS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain HTTP.
    Plain(TcpStream),
}

impl tokio::io::AsyncRead for ApiStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ApiStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            ApiStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for ApiStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ApiStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            ApiStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ApiStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            ApiStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ApiStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            ApiStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), ApiTlsError> {
    crate::ca::write_private_file(path, text).map_err(io(path))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
}

fn new_ca() -> Result<(String, String), ApiTlsError> {
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "weft API CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, 3650);
    let cert = params.self_signed(&key).map_err(crypto)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn serving_certificate(
    issuer: &Certificate,
    issuer_key: &KeyPair,
    bound: IpAddr,
) -> Result<(String, String), ApiTlsError> {
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "weft control plane API");
    let mut names = vec![
        SanType::DnsName("localhost".try_into().map_err(crypto)?),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    ];
    if !bound.is_unspecified() && !bound.is_loopback() {
        names.push(SanType::IpAddress(bound));
    }
    params.subject_alt_names = names;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 365);
    let cert = params.signed_by(&key, issuer, issuer_key).map_err(crypto)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_survives_a_restart_and_signs_a_certificate_for_loopback() {
        let dir = std::env::temp_dir().join(format!("weft-api-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = ApiTls::open(&dir, IpAddr::from([0, 0, 0, 0])).expect("opened");
        let again = ApiTls::open(&dir, IpAddr::from([10, 1, 2, 3])).expect("reopened");
        assert_eq!(first.ca_pem, again.ca_pem, "the CA is kept");
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("ca.key"))
                .expect("key")
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
