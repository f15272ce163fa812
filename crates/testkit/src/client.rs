//! A minimal HTTP client for tests: HTTP/1.1 through a proxy (absolute-form, as with
//! `curl -x`) or directly, and HTTP/2 with prior knowledge.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// A response as the client got it.
#[derive(Debug, Clone)]
pub struct Got {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: String,
    /// Trailers.
    pub trailers: Option<HeaderMap>,
}

impl Got {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Send<'a> {
    /// Method (GET when empty).
    pub method: &'a str,
    /// Absolute URL (`http://host:port/path`).
    pub url: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// Body.
    pub body: &'a str,
}

/// `GET url` through `proxy` (absolute form, like `curl -x`).
pub async fn get(proxy: SocketAddr, url: &str) -> Got {
    via_proxy(
        proxy,
        Send {
            url,
            ..Default::default()
        },
    )
    .await
}

/// `GET path` on a proxy's admin listener.
pub async fn admin_get(admin: SocketAddr, path: &str) -> Got {
    get(admin, &format!("http://{admin}{path}")).await
}

/// Sends one HTTP/1.1 request to `proxy` in absolute form, like `curl -x`.
pub async fn via_proxy(proxy: SocketAddr, send: Send<'_>) -> Got {
    let stream = TcpStream::connect(proxy).await.expect("connect to proxy");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = build(&send, true);
    collect(sender.send_request(req).await.expect("response")).await
}

/// Sends one HTTP/1.1 request to `addr` in origin form (`GET /path` with a Host
/// header), as a browser or curl does to a server or gateway.
pub async fn direct(addr: SocketAddr, send: Send<'_>) -> Got {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = build(&send, true);
    let origin: http::Uri = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .expect("origin form");
    *req.uri_mut() = origin;
    collect(sender.send_request(req).await.expect("response")).await
}

/// Sends one HTTP/2 (prior knowledge) request to `addr`.
pub async fn h2(addr: SocketAddr, send: Send<'_>) -> Got {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = build(&send, false);
    collect(sender.send_request(req).await.expect("response")).await
}

fn build(send: &Send<'_>, absolute_form: bool) -> Request<Full<Bytes>> {
    let uri: http::Uri = send.url.parse().expect("absolute URL");
    let method = if send.method.is_empty() {
        "GET"
    } else {
        send.method
    };
    let mut b = Request::builder().method(method);
    b = if absolute_form {
        b.uri(uri.clone()).header(
            "host",
            uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        )
    } else {
        b.uri(uri.clone())
    };
    for (k, v) in send.headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(send.body.to_string())))
        .expect("request")
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        trailers,
    }
}
