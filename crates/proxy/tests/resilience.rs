//! Resilience from the client's side: circuit breaking, outlier detection, retry budgets.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, service};
use weft_testkit::client::{Send, admin_get, get};
use weft_testkit::eventually;
use weft_testkit::upstream::{self, Reply};

fn rule(host: &str, traffic_policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n{traffic_policy}---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_pool_get_503_uo_at_once() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(600),
        ..Reply::ok("done")
    }))
    .await;
    let dr = rule(
        "slow",
        "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("slow", 8080, "HTTP", &[(slow.addr, "v1")])
    ))
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let outbound = h.proxy.outbound;
        tasks.push(tokio::spawn(async move {
            let got = get(outbound, "http://slow:8080/").await;
            (got, start.elapsed())
        }));
        // Let each request take its place before the next one arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ok = 0;
    let mut overflowed = 0;
    for t in tasks {
        let (got, took) = t.await.expect("task");
        match got.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(got.header("x-weft-response-flags"), Some("UO"));
                assert!(
                    took < Duration::from_millis(550),
                    "an overflow is answered at once, not after waiting ({took:?})"
                );
                overflowed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        (ok, overflowed),
        (2, 3),
        "one in flight and one queued succeed; the rest overflow"
    );
    assert_eq!(slow.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_and_returns_after_its_time() {
    let bad = upstream::http(Arc::new(|_, _| Reply::status(500, "bad"))).await;
    let good = upstream::named("good").await;
    let dr = rule(
        "svc",
        "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 50}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("svc", 8080, "HTTP", &[(bad.addr, "v1"), (good.addr, "v1")])
    ))
    .await;
    let call = || async { get(h.proxy.outbound, "http://svc:8080/").await };
    for _ in 0..20 {
        call().await;
    }
    assert_eq!(bad.hits(), 2, "ejected after two consecutive 5xx");
    let ejected_at = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            call().await.body,
            "good",
            "traffic moved to the healthy endpoint"
        );
    }
    let admin = h.proxy.admin;
    let clusters = admin_get(admin, "/clusters").await;
    assert!(
        clusters.body.contains("\"health\": \"ejected\""),
        "{}",
        clusters.body
    );
    eventually(
        "the ejected endpoint gets traffic again",
        Duration::from_secs(5),
        || async {
            call().await;
            (bad.hits() > 2).then_some(())
        },
    )
    .await;
    assert!(
        ejected_at.elapsed() >= Duration::from_millis(900),
        "it came back only after baseEjectionTime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_is_capped_by_the_budget() {
    let failing = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(100),
        ..Reply::status(503, "down")
    }))
    .await;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc}\nspec:\n  hosts: [svc]\n  http:\n  - route: [{destination: {host: svc}}]\n    retries: {attempts: 5, retryOn: \"503\"}\n---\n";
    let dr = rule(
        "svc",
        "    retryBudget: {percent: 20, minRetryConcurrency: 1}\n",
    );
    let h = Harness::start(&format!(
        "{}{vs}{dr}",
        service("svc", 8080, "HTTP", &[(failing.addr, "v1")])
    ))
    .await;
    let clients = 20;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let outbound = h.proxy.outbound;
        tasks.push(tokio::spawn(async move {
            get(outbound, "http://svc:8080/").await
        }));
    }
    for t in tasks {
        let got = t.await.expect("task");
        assert_eq!(got.status, 503);
        assert_eq!(
            got.header("x-weft-response-flags"),
            Some("URX"),
            "no more retries, and the answer says so"
        );
    }
    let unbounded = clients * 6;
    assert!(
        failing.hits() < unbounded,
        "{} tries, the unbounded storm would be {unbounded}",
        failing.hits()
    );
    let admin = h.proxy.admin;
    let clusters = admin_get(admin, "/clusters").await;
    assert!(
        !clusters.body.contains("\"retry_overflows\": 0,"),
        "{}",
        clusters.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_its_active_check_leaves_rotation_and_comes_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let sick = upstream::http(Arc::new(move |_, seen| {
        if seen.path == "/healthz" {
            return if flag.load(Ordering::SeqCst) {
                Reply::ok("ok")
            } else {
                Reply::status(503, "sick")
            };
        }
        Reply::ok("sometimes-sick")
    }))
    .await;
    let good = upstream::named("good").await;
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc\n  annotations:\n    health.weft.io/check: '{\"http\": {\"path\": \"/healthz\"}, \"interval\": \"100ms\", \"timeout\": \"500ms\", \"unhealthyThreshold\": 2}'\nspec:\n  host: svc\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n---\n";
    let h = Harness::start(&format!(
        "{}{dr}",
        service("svc", 8080, "HTTP", &[(sick.addr, "v1"), (good.addr, "v1")])
    ))
    .await;
    let bodies = |n: usize| {
        let outbound = h.proxy.outbound;
        async move {
            let mut out = std::collections::BTreeSet::new();
            for _ in 0..n {
                out.insert(get(outbound, "http://svc:8080/").await.body);
            }
            out
        }
    };
    assert_eq!(
        bodies(10).await.len(),
        2,
        "both endpoints serve while healthy"
    );
    healthy.store(false, Ordering::SeqCst);
    eventually(
        "the failing endpoint leaves rotation",
        Duration::from_secs(5),
        || async { (bodies(10).await.into_iter().collect::<Vec<_>>() == ["good"]).then_some(()) },
    )
    .await;
    let seen_checks = sick.seen().iter().filter(|s| s.path == "/healthz").count();
    assert!(seen_checks >= 2, "the endpoint was probed");
    healthy.store(true, Ordering::SeqCst);
    eventually(
        "the endpoint comes back",
        Duration::from_secs(5),
        || async { (bodies(10).await.len() == 2).then_some(()) },
    )
    .await;
}

/// An HTTP/1.1 upstream that, after answering, closes about half of its keep-alive
/// connections after a random idle moment of up to 3 ms.
async fn closes_idle_connections_at_random() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                    if fastrand::bool() {
                        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_causes_no_503() {
    let racy = closes_idle_connections_at_random().await;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: racy}\nspec:\n  hosts: [racy]\n  http:\n  - route: [{destination: {host: racy}}]\n    retries: {attempts: 0}\n---\n";
    let h = Harness::start(&format!(
        "{}{vs}",
        service("racy", 8080, "HTTP", &[(racy, "v1")])
    ))
    .await;
    let mut failures = Vec::new();
    for i in 0..400 {
        let got = get(h.proxy.outbound, "http://racy:8080/").await;
        if got.status != 200 {
            failures.push((
                i,
                got.status,
                got.header("x-weft-response-flags").map(String::from),
                got.body,
            ));
        }
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
    }
    assert!(
        failures.is_empty(),
        "with retries disabled, {} of 400 requests failed: {failures:?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_limits_and_h2_upgrade() {
    let app = upstream::named("app").await;
    let dr = rule(
        "svc",
        "    connectionPool:\n      http: {maxRequestsPerConnection: 1}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("svc", 8080, "HTTP", &[(app.addr, "v1")])
    ))
    .await;
    for _ in 0..3 {
        get(h.proxy.outbound, "http://svc:8080/").await;
    }
    let admin = h.proxy.admin;
    let clusters = admin_get(admin, "/clusters").await;
    assert!(
        clusters.body.contains("\"idle_connections\": 0"),
        "maxRequestsPerConnection: 1 keeps no connection: {}",
        clusters.body
    );
    assert!(clusters.body.contains("\"requests\": 3"));

    let kept = Harness::start(&service("svc", 8080, "HTTP", &[(app.addr, "v1")])).await;
    for _ in 0..3 {
        get(kept.proxy.outbound, "http://svc:8080/").await;
    }
    let admin = kept.proxy.admin;
    let clusters = admin_get(admin, "/clusters").await;
    assert!(
        clusters.body.contains("\"idle_connections\": 1"),
        "by default the connection is reused: {}",
        clusters.body
    );

    let upgraded = Harness::start(&format!(
        "{}{}",
        service("svc", 8080, "HTTP", &[(app.addr, "v1")]),
        rule(
            "svc",
            "    connectionPool:\n      http: {h2UpgradePolicy: UPGRADE}\n"
        )
    ))
    .await;
    get(upgraded.proxy.outbound, "http://svc:8080/").await;
    assert_eq!(
        app.seen().last().map(|s| s.version.clone()).as_deref(),
        Some("HTTP/2.0"),
        "h2UpgradePolicy: UPGRADE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = upstream::tcp_echo().await;
    let dr = rule(
        "db",
        "    connectionPool:\n      tcp: {idleTimeout: 300ms}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("db", 5432, "TCP", &[(echo, "v1")])
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(h.proxy.outbound)
        .await
        .expect("connect");
    s.write_all(b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    s.write_all(b"ping").await.expect("write");
    let n = s.read(&mut buf).await.expect("echo");
    assert_eq!(&buf[..n], b"ping", "traffic flows while active");
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the idle tunnel was closed");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "not before the idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_serializes_http2_requests() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(300),
        ..Reply::ok("done")
    }))
    .await;
    let dr = rule(
        "grpc",
        "    connectionPool:\n      http: {maxConcurrentStreams: 1}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("grpc", 50051, "GRPC", &[(slow.addr, "v1")])
    ))
    .await;
    let start = Instant::now();
    let outbound = h.proxy.outbound;
    let both = futures_util::future::join_all((0..2).map(|_| async move {
        weft_testkit::client::h2(
            outbound,
            Send {
                url: "http://grpc:50051/",
                ..Default::default()
            },
        )
        .await
    }))
    .await;
    assert!(both.iter().all(|g| g.status == 200));
    assert!(
        start.elapsed() >= Duration::from_millis(550),
        "one stream at a time: {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_timeout_header_bounds_the_request() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_secs(5),
        ..Reply::ok("late")
    }))
    .await;
    // No route timeout: the client's grpc-timeout (100 ms) is the deadline.
    let h = Harness::start(&service("grpc", 50051, "GRPC", &[(slow.addr, "v1")])).await;
    let started = Instant::now();
    let got = weft_testkit::client::h2(
        h.proxy.outbound,
        Send {
            url: "http://grpc:50051/",
            headers: &[
                ("content-type", "application/grpc"),
                ("grpc-timeout", "100m"),
            ],
            ..Default::default()
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the client's deadline, not the upstream's: {:?}",
        started.elapsed()
    );
    assert_eq!(
        got.header("x-weft-response-flags"),
        Some("UT"),
        "status {} body {:?}",
        got.status,
        got.body
    );
    // A hostile value is ignored, not a panic.
    let quick = upstream::named("quick").await;
    let h = Harness::start(&service("grpc", 50051, "GRPC", &[(quick.addr, "v1")])).await;
    let got = weft_testkit::client::h2(
        h.proxy.outbound,
        Send {
            url: "http://grpc:50051/",
            headers: &[("grpc-timeout", "18446744073709551615S")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_abandoning_its_upload_is_not_an_upstream_failure() {
    use tokio::io::AsyncWriteExt;
    let up = upstream::named("fine").await;
    let h = Harness::start(&service("svc", 8080, "HTTP", &[(up.addr, "v1")])).await;
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(h.proxy.outbound)
            .await
            .expect("connect");
        s.write_all(b"POST http://svc:8080/upload HTTP/1.1\r\nhost: svc:8080\r\ncontent-length: 100000\r\n\r\n")
            .await
            .expect("head");
        s.write_all(&[b'x'; 1000]).await.expect("part of the body");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = h.proxy.admin;
    let clusters = admin_get(admin, "/clusters").await.body;
    assert!(clusters.contains("\"failures\": 0"), "{clusters}");
    let got = get(h.proxy.outbound, "http://svc:8080/").await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "fine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_pool_slot_counts_against_the_route_timeout() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_secs(3),
        ..Reply::ok("done")
    }))
    .await;
    let dr = rule(
        "slow",
        "    connectionPool:\n      tcp: {maxConnections: 1}\n",
    );
    // /hold has no timeout and keeps the only connection busy; other paths have 200 ms.
    let vs = common::virtual_service(
        "slow",
        "  - match: [{uri: {prefix: /hold}}]\n    route: [{destination: {host: slow}}]\n  - timeout: 200ms\n    route: [{destination: {host: slow}}]\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}{vs}",
        service("slow", 8080, "HTTP", &[(slow.addr, "v1")])
    ))
    .await;
    let outbound = h.proxy.outbound;
    let _holder = tokio::spawn(async move { get(outbound, "http://slow:8080/hold").await });
    eventually("the slot is taken", Duration::from_secs(2), || async {
        (slow.hits() == 1).then_some(())
    })
    .await;
    let start = Instant::now();
    let got = get(outbound, "http://slow:8080/quick").await;
    assert_eq!(
        (got.status.as_u16(), got.header("x-weft-response-flags")),
        (504, Some("UT"))
    );
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "answered at the route timeout, not when the slot freed: {:?}",
        start.elapsed()
    );
}

/// An HTTP/2 upstream that completes the connection preface, then answers nothing (no
/// response, no PING acknowledgement), counting the PING frames it receives.
async fn silent_h2_upstream() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pings = Arc::new(AtomicUsize::new(0));
    let counted = pings.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if s.read_exact(&mut preface).await.is_err() {
                    return;
                }
                // The server's (empty) SETTINGS.
                let _ = s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                loop {
                    let mut head = [0u8; 9];
                    if s.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = (usize::from(head[0]) << 16)
                        | (usize::from(head[1]) << 8)
                        | usize::from(head[2]);
                    let mut payload = vec![0u8; len];
                    if s.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let ack = head[4] & 1 == 1;
                    match head[3] {
                        // Acknowledge the client's SETTINGS, as any HTTP/2 server does.
                        4 if !ack => {
                            let _ = s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await;
                        }
                        6 if !ack => {
                            counted.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, pings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_keep_alive_pings_the_upstream_and_drops_a_silent_connection() {
    let (silent, pings) = silent_h2_upstream().await;
    let dr = rule(
        "h2",
        "    connectionPool:\n      http: {http2KeepAlive: {interval: 100ms, timeout: 200ms}}\n",
    );
    let h = Harness::start(&format!(
        "{}{dr}",
        service("h2", 8080, "HTTP2", &[(silent, "v1")])
    ))
    .await;
    let started = Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        get(h.proxy.outbound, "http://h2:8080/"),
    )
    .await
    .expect("the unanswered PING ends the request instead of leaving it hanging");
    assert!(got.status.is_server_error(), "{}", got.status);
    assert!(
        pings.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the upstream received PING frames"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
