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
/// the connection: `(name, request, status)`.
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
            501,
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

/// HTTP/2 frames written by hand, for the floods a well-behaved client never sends.
mod h2_frames {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PING: u8 = 6;
    pub const CONTINUATION: u8 = 9;
    pub const END_STREAM: u8 = 1;
    pub const END_HEADERS: u8 = 4;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// `GET http://x/` in HPACK: static-table method, scheme and path, a literal authority.
    pub fn get_block() -> Vec<u8> {
        vec![0x82, 0x86, 0x84, 0x41, 0x01, b'x']
    }

    /// A literal header field without indexing, `name: <value_len bytes>`.
    pub fn literal(name: &str, value_len: usize) -> Vec<u8> {
        let mut b = vec![0x00];
        b.extend(int(name.len(), 7));
        b.extend_from_slice(name.as_bytes());
        b.extend(int(value_len, 7));
        b.extend(std::iter::repeat_n(b'a', value_len));
        b
    }

    fn int(mut n: usize, prefix: u8) -> Vec<u8> {
        let max = (1usize << prefix) - 1;
        if n < max {
            return vec![n as u8];
        }
        let mut out = vec![max as u8];
        n -= max;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
        out
    }
}

/// What a flood did to its connection: closed by the proxy (GOAWAY or EOF), or still
/// open when the flood was over.
async fn flood(addr: SocketAddr, frames: impl Iterator<Item = Vec<u8>>) -> bool {
    use h2_frames::*;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = s.split();
    let mut start = PREFACE.to_vec();
    start.extend(frame(SETTINGS, 0, 0, &[]));
    let write = async {
        wr.write_all(&start).await?;
        for f in frames {
            wr.write_all(&f).await?;
        }
        wr.flush().await
    };
    let read = async {
        let mut buf = vec![0u8; 65536];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        closed = read => closed,
        written = write => {
            if written.is_err() {
                return true;
            }
            // Give the proxy a moment to answer the end of the flood.
            let mut buf = vec![0u8; 65536];
            let mut closed = false;
            while let Ok(n) = tokio::time::timeout(Duration::from_millis(500), rd.read(&mut buf)).await {
                if matches!(n, Ok(0) | Err(_)) {
                    closed = true;
                    break;
                }
            }
            closed
        }
    }
}

/// A normal HTTP/2 request on a new connection: its status.
async fn h2_get(addr: SocketAddr) -> u16 {
    let got = weft_testkit::client::h2(
        addr,
        weft_testkit::client::Send {
            url: "http://x/",
            ..Default::default()
        },
    )
    .await;
    got.status.as_u16()
}

/// A flood: its name, its frames, and whether the proxy must close the connection.
type Flood = (&'static str, Box<dyn Iterator<Item = Vec<u8>> + Send>, bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_floods_leave_the_proxy_serving() {
    use h2_frames::*;
    let app = upstream::named("app").await;
    let (_proxy, gateway) = gateway(app.addr, ConnectionLimits::default()).await;
    assert_eq!(h2_get(gateway).await, 200);
    let get = get_block();
    let floods: Vec<Flood> = vec![
        (
            "rapid reset: 20000 streams opened and reset at once",
            Box::new((0..20_000u32).flat_map(move |i| {
                let id = 2 * i + 1;
                let mut f = frame(HEADERS, END_HEADERS | END_STREAM, id, &get_block());
                f.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
                [f]
            })),
            true,
        ),
        (
            "CONTINUATION without end: 100000 frames of one header block",
            Box::new(
                std::iter::once(frame(HEADERS, END_STREAM, 1, &get))
                    .chain((0..100_000).map(|_| frame(CONTINUATION, 0, 1, &literal("x-c", 20)))),
            ),
            true,
        ),
        (
            "a 1 MB header block",
            Box::new(std::iter::once(frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[get.clone(), literal("x-big", 1 << 20)].concat(),
            ))),
            false,
        ),
        (
            "SETTINGS: 100000 frames",
            Box::new((0..100_000).map(|_| frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]))),
            false,
        ),
        (
            "PING: 100000 frames",
            Box::new((0..100_000u64).map(|i| frame(PING, 0, 0, &i.to_be_bytes()))),
            false,
        ),
        (
            "empty DATA: 100000 frames on one stream",
            Box::new(
                std::iter::once(frame(
                    HEADERS,
                    END_HEADERS,
                    1,
                    &[0x83, 0x86, 0x84, 0x41, 1, b'x'],
                ))
                .chain((0..100_000).map(|_| frame(DATA, 0, 1, &[]))),
            ),
            false,
        ),
    ];
    for (name, frames, must_close) in floods {
        let started = std::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(60), flood(gateway, frames))
            .await
            .unwrap_or_else(|_| panic!("{name}: the flood did not end"));
        if must_close {
            assert!(closed, "{name}: the proxy keeps the connection");
        }
        // Whatever it did to that connection, the proxy serves others, promptly.
        let status = tokio::time::timeout(Duration::from_secs(5), h2_get(gateway))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer after the flood"));
        assert_eq!(
            status,
            200,
            "{name} (closed: {closed}, {:?})",
            started.elapsed()
        );
    }
}

/// Reads from `s` until `count` whole responses (head and `ok` body) have come.
async fn responses(s: &mut TcpStream, count: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count()
        < count
        || !got.ends_with(b"app")
    {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answers in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A keep-alive connection quiet for longer than the hand-back delay (hyper gives it back
/// and it waits for its next head holding only its socket) goes on being served: a single
/// request, two pipelined in one write, a head that arrives in two parts; the idle
/// timeout still counts from the last byte moved, and the header timeout from a head's
/// first byte while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_handed_back_while_idle_go_on_serving() {
    let app = upstream::named("app").await;
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_millis(3000),
        header_timeout: Duration::from_millis(2000),
        ..ConnectionLimits::default()
    };
    let (proxy, gateway) = gateway(app.addr, limits).await;
    let quiet = weft_proxy::listener::HAND_BACK_AFTER + Duration::from_millis(500);
    let request = format!("GET / HTTP/1.1\r\n{H}\r\n");
    let mut s = TcpStream::connect(gateway).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    responses(&mut s, 1).await;
    tokio::time::sleep(quiet).await;
    s.write_all(format!("{request}{request}").as_bytes())
        .await
        .expect("write");
    let two = responses(&mut s, 2).await;
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2, "{two}");
    tokio::time::sleep(quiet).await;
    let (first, rest) = request.split_at(10);
    s.write_all(first.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(rest.as_bytes()).await.expect("write");
    responses(&mut s, 1).await;
    assert_eq!(app.hits(), 4, "every request reached the app");
    // Silent from here: closed at the idle timeout after the last byte, not before.
    let last = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let took = last.elapsed();
    assert!(
        took >= Duration::from_millis(2800) && took < Duration::from_millis(4500),
        "idle connection closed after {took:?}"
    );
    // A head started after a hand-back is cut at the header timeout from its first byte.
    let mut slow = TcpStream::connect(gateway).await.expect("connect");
    slow.write_all(request.as_bytes()).await.expect("write");
    responses(&mut slow, 1).await;
    tokio::time::sleep(quiet).await;
    let started = std::time::Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
        .await
        .expect("write");
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("cut in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "cut without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "slow head cut after {took:?}"
    );
    let s = stats(&proxy).await;
    assert_eq!(
        counter(&s, "weft_downstream_cx_idle_timeout_total"),
        1,
        "{s}"
    );
    assert_eq!(
        counter(&s, "weft_downstream_rq_header_timeout_total"),
        1,
        "{s}"
    );
}

/// Draining closes a keep-alive connection waiting for its next request at once, and
/// lets one whose request is under way finish it, answered with `Connection: close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_waiting_connections_and_finishes_requests_under_way() {
    let slow = upstream::http(std::sync::Arc::new(|_, _| upstream::Reply {
        delay: Duration::from_millis(800),
        ..upstream::Reply::ok("app")
    }))
    .await;
    let (proxy, gateway) = gateway(slow.addr, ConnectionLimits::default()).await;
    let request = format!("GET / HTTP/1.1\r\n{H}\r\n");
    // One connection handed back and waiting, one served by hyper and idle, one busy.
    let mut waiting = TcpStream::connect(gateway).await.expect("connect");
    waiting.write_all(request.as_bytes()).await.expect("write");
    responses(&mut waiting, 1).await;
    tokio::time::sleep(weft_proxy::listener::HAND_BACK_AFTER + Duration::from_millis(500)).await;
    let mut served = TcpStream::connect(gateway).await.expect("connect");
    served.write_all(request.as_bytes()).await.expect("write");
    responses(&mut served, 1).await;
    let mut busy = TcpStream::connect(gateway).await.expect("connect");
    busy.write_all(request.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        counter(&stats(&proxy).await, "weft_downstream_cx_handed_back_total"),
        1,
        "only the first connection was quiet long enough"
    );
    proxy.shutdown();
    let mut buf = [0u8; 64];
    for (name, s) in [("waiting", &mut waiting), ("served", &mut served)] {
        let n = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the {name} connection closed at once"))
            .unwrap_or(0);
        assert_eq!(n, 0, "the {name} connection closed without an answer");
    }
    let answer = responses(&mut busy, 1).await;
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}
