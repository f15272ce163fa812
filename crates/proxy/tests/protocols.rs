//! Protocols through the proxy: HTTP/2 and gRPC trailers, WebSocket, CONNECT tunnels,
//! opaque TCP with detection (including server-first protocols), and the inbound side.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, service, virtual_service};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_testkit::client::{Send, get, h2};
use weft_testkit::upstream::{self, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_survive_both_http2_hops() {
    let grpc = upstream::http(Arc::new(|_, seen| {
        assert_eq!(seen.version, "HTTP/2.0", "the upstream hop is HTTP/2");
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            body: "\0\0\0\0\x02hi".into(),
            trailers: vec![
                ("grpc-status".into(), "0".into()),
                ("grpc-message".into(), "fine".into()),
            ],
            delay: Duration::ZERO,
        }
    }))
    .await;
    let h = Harness::start(&format!(
        "{}{}",
        service("greeter", 50051, "GRPC", &[(grpc.addr, "v1")]),
        virtual_service("greeter", "  - route: [{destination: {host: greeter}}]\n")
    ))
    .await;
    let got = h2(
        h.proxy.outbound,
        Send {
            method: "POST",
            url: "http://greeter:50051/helloworld.Greeter/SayHello",
            headers: &[("content-type", "application/grpc"), ("te", "trailers")],
            body: "\0\0\0\0\0",
        },
    )
    .await;
    assert_eq!(got.status, 200);
    let trailers = got.trailers.expect("trailers arrive");
    assert_eq!(
        trailers.get("grpc-status").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert_eq!(
        trailers.get("grpc-message").and_then(|v| v.to_str().ok()),
        Some("fine")
    );
    assert_eq!(grpc.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_downstream_to_http1_upstream() {
    let app = upstream::named("plain").await;
    let h = Harness::start(&service("web", 8080, "HTTP", &[(app.addr, "v1")])).await;
    let got = h2(
        h.proxy.outbound,
        Send {
            url: "http://web:8080/",
            ..Default::default()
        },
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "plain"));
    assert_eq!(app.seen()[0].version, "HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes() {
    let echo = upstream::websocket_echo().await;
    let h = Harness::start(&service("ws", 8080, "HTTP", &[(echo, "v1")])).await;
    let stream = TcpStream::connect(h.proxy.outbound).await.expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://ws:8080/chat", stream)
        .await
        .expect("upgrade through the proxy");
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .expect("send");
    let back = ws.next().await.expect("a message").expect("ok");
    assert_eq!(back.into_text().expect("text").as_str(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echoes_through_a_connect_tunnel() {
    let echo = upstream::tcp_echo().await;
    let h = Harness::start(&service("db", 5432, "TCP", &[(echo, "v1")])).await;
    let mut s = TcpStream::connect(h.proxy.outbound).await.expect("connect");
    s.write_all(b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"ping").await.expect("write");
    let n = s.read(&mut buf).await.expect("read");
    assert_eq!(&buf[..n], b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_fronts_the_app_for_http_and_tcp() {
    let app = upstream::named("local app").await;
    let h = Harness::start_with("", Some(app.addr)).await;
    let inbound = h.proxy.inbound.expect("inbound listener");
    let got = get(inbound, "http://anything:9080/x").await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "local app"));
    let seen = &app.seen()[0];
    assert!(
        seen.headers.get("x-forwarded-for").is_some(),
        "inbound appends the peer to x-forwarded-for"
    );

    let echo = upstream::tcp_echo().await;
    let h = Harness::start_with("", Some(echo)).await;
    let mut s = TcpStream::connect(h.proxy.inbound.expect("inbound"))
        .await
        .expect("connect");
    s.write_all(b"\x00\x01binary").await.expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.expect("read");
    assert_eq!(
        &buf[..n],
        b"\x00\x01binary",
        "non-HTTP bytes are proxied as TCP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_first_protocol_does_not_stall() {
    let mysqlish = upstream::server_first(b"220 hello\r\n").await;
    let h = Harness::start_with("", Some(mysqlish)).await;
    let mut s = TcpStream::connect(h.proxy.inbound.expect("inbound"))
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("greeting arrives after detection times out")
        .expect("read");
    assert_eq!(&buf[..n], b"220 hello\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_and_expect_continue_pass() {
    let app = upstream::http(Arc::new(|_, seen| {
        Reply::ok(format!("{} bytes", seen.body.len()))
    }))
    .await;
    let h = Harness::start(&service("up", 8080, "HTTP", &[(app.addr, "v1")])).await;
    let mut s = TcpStream::connect(h.proxy.outbound).await.expect("connect");
    s.write_all(b"POST http://up:8080/ HTTP/1.1\r\nHost: up:8080\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").await.expect("head");
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.expect("100 continue");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await
        .expect("body");
    let n = s.read(&mut buf).await.expect("response");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("11 bytes"),
        "{text}"
    );
}
