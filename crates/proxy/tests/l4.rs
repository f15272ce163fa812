//! TCP and TLS rules: VirtualService `tcp` weights, `tls` SNI routing, and weft's TCP
//! fault extension.

mod common;

use common::{Harness, service, subsets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_testkit::upstream;

/// Opens a CONNECT tunnel; returns the stream, the response head, and tunnel bytes read with it.
async fn connect_through(
    proxy: std::net::SocketAddr,
    authority: &str,
) -> (TcpStream, String, Vec<u8>) {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(got.len(), |i| i + 4);
    let rest = got.split_off(end);
    (s, String::from_utf8_lossy(&got).into_owned(), rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_rules_route_by_weight_to_subsets() {
    let v1 = upstream::server_first(b"v1\n").await;
    let v2 = upstream::server_first(b"v2\n").await;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: db}\nspec:\n  hosts: [db]\n  tcp:\n  - match: [{port: 5432}]\n    route:\n    - {destination: {host: db, subset: v1}, weight: 0}\n    - {destination: {host: db, subset: v2}, weight: 100}\n";
    let h = Harness::start(&format!(
        "{}{}{vs}",
        service("db", 5432, "TCP", &[(v1, "v1"), (v2, "v2")]),
        subsets("db")
    ))
    .await;
    for _ in 0..5 {
        let (mut s, head, mut greeting) = connect_through(h.proxy.outbound, "db:5432").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        while greeting.len() < 3 {
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.expect("greeting");
            assert!(n > 0, "the tunnel closed early");
            greeting.extend_from_slice(&buf[..n]);
        }
        assert_eq!(greeting, b"v2\n");
    }
    // CONNECT tunnels are TCP connections in Istio's TCP metrics: 5 opened, 5 closed, and
    // the 3-byte greeting sent to the client each time.
    let series = |stats: &str, name: &str| -> Option<u64> {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains("destination_service=\"db"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let stats = weft_testkit::eventually(
        "the tunnels closed",
        std::time::Duration::from_secs(5),
        || async {
            let stats = h.stats().await;
            (series(&stats, "istio_tcp_connections_closed_total") == Some(5)).then_some(stats)
        },
    )
    .await;
    assert_eq!(
        series(&stats, "istio_tcp_connections_opened_total"),
        Some(5),
        "{stats}"
    );
    assert_eq!(
        series(&stats, "istio_tcp_sent_bytes_total"),
        Some(15),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_fault_extension_resets_connections() {
    let echo = upstream::tcp_echo().await;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: db\n  annotations:\n    fault.weft.io/tcp: '{\"abort\": {\"percentage\": 100}}'\nspec:\n  hosts: [db]\n  tcp:\n  - route: [{destination: {host: db}}]\n";
    let h = Harness::start(&format!(
        "{}{vs}",
        service("db", 5432, "TCP", &[(echo, "v1")])
    ))
    .await;
    let (_, head, _) = connect_through(h.proxy.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("x-weft-response-flags: FI"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rules_route_by_sni() {
    let a = upstream::tcp_echo().await;
    let b = upstream::tcp_echo().await;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tls}\nspec:\n  hosts: [\"*.example.com\"]\n  tls:\n  - match: [{port: 443, sniHosts: [api.example.com]}]\n    route: [{destination: {host: api.example.com}}]\n  - match: [{port: 443, sniHosts: [\"*.example.com\"]}]\n    route: [{destination: {host: www.example.com}}]\n";
    let entry = |name: &str, addr: std::net::SocketAddr| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {}}}\nspec:\n  hosts: [{name}]\n  resolution: STATIC\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  endpoints: [{{address: {}, ports: {{tls: {}}}}}]\n---\n",
            name.replace('.', "-"),
            addr.ip(),
            addr.port()
        )
    };
    let h = Harness::start(&format!(
        "{}{}{vs}",
        entry("api.example.com", a),
        entry("www.example.com", b)
    ))
    .await;
    let snapshot = h.proxy.snapshots.load();
    let target = |sni: &str| {
        weft_proxy::tcp::decide(&snapshot, None, Some(sni), None, 443).map(|d| d.target.to_string())
    };
    assert_eq!(target("api.example.com"), Some(a.to_string()));
    assert_eq!(
        target("shop.example.com"),
        Some(b.to_string()),
        "the wildcard rule"
    );
    assert_eq!(
        target("other.org"),
        None,
        "no rule, no service, no original destination"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_avoid_an_endpoint_failing_its_health_check() {
    let good = upstream::server_first(b"ok\n").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nobody listens on");
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: db\n  annotations:\n    health.weft.io/check: '{\"tcp\": {}, \"interval\": \"50ms\", \"timeout\": \"200ms\", \"unhealthyThreshold\": 1}'\nspec:\n  host: db\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n";
    let h = Harness::start(&format!(
        "{}{dr}",
        service("db", 5432, "TCP", &[(good, "v1"), (dead, "v1")])
    ))
    .await;
    // Let the checks find the dead endpoint.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for _ in 0..10 {
        let (mut s, head, mut greeting) = connect_through(h.proxy.outbound, "db:5432").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        while greeting.len() < 3 {
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.expect("greeting");
            assert!(n > 0, "the tunnel closed: sent to the dead endpoint");
            greeting.extend_from_slice(&buf[..n]);
        }
        assert_eq!(greeting, b"ok\n");
    }
}
