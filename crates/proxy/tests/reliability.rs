//! Bad, slow and flooding clients against real listeners: the HTTP/1 battery answered
//! as Envoy's codec answers it, request heads that trickle cut at the header timeout,
//! idle connections cut at the idle timeout, and `--max-connections` closing what is
//! over it, while normal requests go on being served.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_model::ProxyScope;
use weft_proxy::listener::ConnectionLimits;
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::{any_port, fresh_dir, mesh, upstream};

const GATEWAY: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: app.example, port: {number: 8080}}}]
---
"#;

/// A gateway routing everything to `app`, within `limits`.
async fn gateway(app: SocketAddr, limits: ConnectionLimits) -> (RunningProxy, SocketAddr) {
    let yaml = format!(
        "{GATEWAY}apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: app, namespace: istio-system}}\nspec:\n  hosts: [app.example]\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: {}, ports: {{http: {}}}}}]\n",
        app.ip(),
        app.port()
    );
    let dir = fresh_dir("reliability-gw");
    let proxy = mesh::start_proxy(ProxyOptions {
        scope: ProxyScope {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            gateway: true,
        },
        gateways: vec![(80, any_port())],
        stats: Some(any_port()),
        limits,
        ..mesh::file_options(&dir, &yaml, "gateway")
    })
    .await;
    let addr = proxy.gateways[0].1;
    (proxy, addr)
}

/// A sidecar fronting `app` on its inbound listener.
async fn sidecar(app: SocketAddr) -> (RunningProxy, SocketAddr) {
    let dir = fresh_dir("reliability-sidecar");
    let proxy = mesh::start_proxy(ProxyOptions {
        app: Some(app),
        ..mesh::file_options(&dir, "", "sidecar")
    })
    .await;
    let inbound = proxy.inbound.expect("inbound");
    (proxy, inbound)
}

/// What a raw request got: the status (0 for none) and whether the proxy closed the
/// connection after answering.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&got);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, closed)
}

const H: &str = "Host: x\r\n";

/// Clients trickling header bytes at once.
const SLOW: usize = 3000;

/// Envoy 1.40's answers (measured with its default HTTP connection manager), each closing
/// the connection: `(name, request, status)`. Where Envoy answers `501` (a
/// Transfer-Encoding other than chunked), weft's codec answers `400`; both refuse and close.
fn battery() -> Vec<(&'static str, String, u16)> {
    vec![
        (
            "content-length and transfer-encoding",
            format!(
                "POST / HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        ("garbage request line", "GARBAGE\r\n\r\n".into(), 400),
        (
            "space before colon",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n".into(),
            400,
        ),
        (
            "two different content-lengths",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            400,
        ),
        (
            "non-numeric content-length",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: abc\r\n\r\n"),
            400,
        ),
        (
            "negative content-length",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n"),
            400,
        ),
        (
            "content-length with a plus sign",
            format!("POST / HTTP/1.1\r\n{H}Content-Length: +2\r\n\r\nab"),
            400,
        ),
        (
            "bad chunk size",
            format!(
                "POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
            ),
            400,
        ),
        (
            "NUL in a header value",
            format!("GET / HTTP/1.1\r\n{H}X-A: a\0b\r\n\r\n"),
            400,
        ),
        (
            "transfer-encoding not chunked",
            format!("POST / HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n"),
            400,
        ),
        (
            "headers over 60 KiB",
            format!("GET / HTTP/1.1\r\n{H}X-A: {}\r\n\r\n", "a".repeat(100_000)),
            431,
        ),
        (
            "HTTP/1.1 without Host",
            "GET / HTTP/1.1\r\n\r\n".into(),
            400,
        ),
        (
            "invalid header name",
            format!("GET / HTTP/1.1\r\n{H}X(A: b\r\n\r\n"),
            400,
        ),
        (
            "space in the request target",
            format!("GET /a b HTTP/1.1\r\n{H}\r\n"),
            400,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http1_battery_is_answered_as_envoy_answers_it() {
    let app = upstream::named("app").await;
    let (_gw, gateway) = gateway(app.addr, ConnectionLimits::default()).await;
    let (_sidecar, inbound) = sidecar(app.addr).await;
    let mut wrong = Vec::new();
    for (name, request, status) in battery() {
        let got = raw(gateway, request.as_bytes()).await;
        if got != (status, true) {
            wrong.push(format!(
                "gateway, {name}: got {got:?}, want ({status}, closed)"
            ));
        }
        // A sidecar's inbound side sniffs: bytes that are not HTTP at all are TCP there,
        // as in Istio; everything else is refused the same way.
        if name != "garbage request line" {
            let got = raw(inbound, request.as_bytes()).await;
            if got != (status, true) {
                wrong.push(format!(
                    "inbound, {name}: got {got:?}, want ({status}, closed)"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(app.hits(), 0, "no refused request reached the app");
    // Well-formed requests pass, and keep their connection.
    for ok in [
        format!("GET / HTTP/1.1\r\n{H}\r\n"),
        format!("GET http://x/ HTTP/1.1\r\n{H}\r\n"),
        format!(
            "POST / HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
        ),
    ] {
        assert_eq!(raw(gateway, ok.as_bytes()).await, (200, false), "{ok:?}");
    }
}

async fn stats(proxy: &RunningProxy) -> String {
    let addr = proxy.stats.expect("stats listener");
    weft_testkit::client::admin_get(addr, "/stats/prometheus")
        .await
        .body
}

fn counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends a request line and then one header byte every 200 ms, until the proxy closes
/// the connection; how long that took (from before connecting: the first write is the
/// head's first byte at the latest).
async fn trickle(addr: SocketAddr) -> Duration {
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) => return started.elapsed(),
            // Closed with the client's bytes unread: a reset, also a close.
            Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => {
                if s.write_all(b"a").await.is_err() {
                    return started.elapsed();
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_at_the_header_timeout_while_normal_requests_go_on() {
    let app = upstream::named("app").await;
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    let (proxy, gateway) = gateway(app.addr, limits).await;
    // Many clients trickle header bytes; each is cut after about the header timeout.
    let slow: Vec<_> = (0..SLOW).map(|_| tokio::spawn(trickle(gateway))).collect();
    // A keep-alive connection idle longer than the header timeout is not a slow head.
    let mut keep = TcpStream::connect(gateway).await.expect("connect");
    let request = format!("GET / HTTP/1.1\r\n{H}\r\n");
    for round in 0..4 {
        keep.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), keep.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "round {round}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Normal requests on new connections are served throughout.
        assert_eq!(raw_status(gateway).await, 200, "round {round}");
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    for t in slow {
        let took = t.await.expect("trickler");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
            "a slow head was cut after {took:?}"
        );
    }
    let s = stats(&proxy).await;
    assert_eq!(
        counter(&s, "weft_downstream_rq_header_timeout_total"),
        SLOW as u64,
        "{s}"
    );
}

/// One request on a new connection with `Connection: close`: its status.
async fn raw_status(addr: SocketAddr) -> u16 {
    raw(
        addr,
        format!("GET / HTTP/1.1\r\n{H}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_at_the_idle_timeout() {
    let app = upstream::named("app").await;
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_millis(1500),
        ..ConnectionLimits::default()
    };
    let (proxy, gateway) = gateway(app.addr, limits).await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(gateway).await.expect("connect");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        counter(
            &stats(&proxy).await,
            "weft_downstream_cx_idle_timeout_total"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_and_counted() {
    let app = upstream::named("app").await;
    let limits = ConnectionLimits {
        max_connections: Some(2),
        ..ConnectionLimits::default()
    };
    let (proxy, gateway) = gateway(app.addr, limits).await;
    let request = format!("GET / HTTP/1.1\r\n{H}\r\n");
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gateway).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        open.push(s);
    }
    // A third connection is closed at once, unanswered.
    let (status, closed) = raw(gateway, request.as_bytes()).await;
    assert_eq!((status, closed), (0, true));
    assert_eq!(
        counter(&stats(&proxy).await, "weft_downstream_cx_overflow_total"),
        1
    );
    // The open ones are unaffected.
    open[0].write_all(request.as_bytes()).await.expect("write");
    let mut buf = [0u8; 1024];
    let n = open[0].read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // One closes: a new connection is served again.
    drop(open.pop());
    weft_testkit::eventually("a slot frees", Duration::from_secs(5), || async {
        (raw_status(gateway).await == 200).then_some(())
    })
    .await;
}
