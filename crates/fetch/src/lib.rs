//! One bounded GET of a URL outside the mesh: what the proxy (file mode) and the control
//! plane both do to read a RequestAuthentication `jwksUri`. The whole fetch has a
//! deadline, the body a size limit, and `https` is verified against the system's roots.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URI is not an http(s) URL with a host.
    #[error("{0} is not an http or https URL with a host")]
    BadUri(String),
    /// Connecting, TLS or HTTP failed.
    #[error("fetching {uri}: {error}")]
    Transport {
        /// The URI.
        uri: String,
        /// What failed.
        error: String,
    },
    /// The fetch took longer than allowed.
    #[error("fetching {0}: timed out")]
    Timeout(String),
    /// The server answered with another status than 200.
    #[error("fetching {uri}: status {status}")]
    Status {
        /// The URI.
        uri: String,
        /// The status.
        status: u16,
    },
    /// The body is too large, or (for the caller) not what was expected.
    #[error("{uri}: {error}")]
    Body {
        /// The URI.
        uri: String,
        /// What is wrong.
        error: String,
    },
}

/// The body of `GET uri` when it answers 200 within `timeout`, at most `max_bytes` long.
pub async fn get(uri: &str, timeout: Duration, max_bytes: usize) -> Result<Bytes, FetchError> {
    match tokio::time::timeout(timeout, get_once(uri, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(uri.to_string())),
    }
}

async fn get_once(uri: &str, max_bytes: usize) -> Result<Bytes, FetchError> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| FetchError::BadUri(uri.to_string()))?;
    let https = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(FetchError::BadUri(uri.to_string())),
    };
    let host = parsed
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| FetchError::BadUri(uri.to_string()))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let transport = |error: String| FetchError::Transport {
        uri: uri.to_string(),
        error,
    };
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| transport(format!("connect: {e}")))?;
    let path = parsed.path_and_query().map_or("/", |p| p.as_str());
    let authority = parsed.authority().map_or(host.as_str(), |a| a.as_str());
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| transport(e.to_string()))?;
    let resp = if https {
        let config = web_client_config().map_err(&transport)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| transport(format!("server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| transport(format!("TLS: {e}")))?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
    .map_err(transport)?;
    if resp.status() != http::StatusCode::OK {
        return Err(FetchError::Status {
            uri: uri.to_string(),
            status: resp.status().as_u16(),
        });
    }
    Limited::new(resp.into_body(), max_bytes)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| FetchError::Body {
            uri: uri.to_string(),
            error: format!("reading the body (at most {max_bytes} bytes): {e}"),
        })
}

async fn send<IO>(
    io: IO,
    req: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}

/// A client configuration for servers outside the mesh, verified against the system's
/// roots; built once.
pub fn web_client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let pem =
                std::fs::read(SYSTEM_ROOTS).map_err(|e| format!("reading {SYSTEM_ROOTS}: {e}"))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                // The bundle holds a few certificates webpki cannot use; skip those.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!("{SYSTEM_ROOTS} holds no usable CA certificate"));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_what_is_not_an_http_url() {
        for uri in ["ftp://keys.example/jwks", "not a url", "http:///jwks"] {
            let e = get(uri, Duration::from_secs(1), 10)
                .await
                .expect_err("refused");
            assert!(matches!(e, FetchError::BadUri(_)), "{uri}: {e:?}");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_a_silent_server_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.expect("accept");
                n += 1;
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                if n == 1 {
                    let body = "x".repeat(100);
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(format!("{head}{body}").as_bytes()).await;
                } else {
                    // Never answers.
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        });
        let uri = format!("http://{addr}/jwks");
        let e = get(&uri, Duration::from_secs(2), 10)
            .await
            .expect_err("refused");
        assert!(matches!(e, FetchError::Body { .. }), "{e:?}");
        let e = get(&uri, Duration::from_millis(200), 10)
            .await
            .expect_err("refused");
        assert_eq!(e, FetchError::Timeout(uri));
    }
}
