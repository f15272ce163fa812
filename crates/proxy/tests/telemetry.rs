//! Istio's standard metrics as a scraper sees them: a client sidecar (productpage-v1)
//! calls reviews through the server sidecar of reviews-v2; both report the call, each
//! from its side, with both workloads named; an injected fault is counted with its flag;
//! an inbound TCP connection is counted with its bytes.

mod common;

use common::Harness;
use weft_model::service::WorkloadInfo;
use weft_testkit::client::get;
use weft_testkit::upstream;

fn workload(name: &str, app: &str, version: &str, sa: &str) -> WorkloadInfo {
    let labels = [("app", app), ("version", version)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    WorkloadInfo::new(name, "default", sa, &labels)
}

/// The value of the one line of `text` starting with `metric{` and holding every label.
fn value(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .collect();
    assert!(
        found.len() <= 1,
        "several {metric} series match {labels:?}: {found:#?}"
    );
    found.first()?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sidecars_report_a_call_with_both_workloads() {
    let app = upstream::named("reviews v2").await;
    let server_yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: reviews}}\n";
    let server = Harness::sidecar(
        server_yaml,
        Some(app.addr),
        workload("reviews-v2", "reviews", "v2", "bookinfo-reviews"),
        &[("app", "reviews"), ("version", "v2")],
    )
    .await;
    let inbound = server.proxy.inbound.expect("inbound listener");
    let client_yaml = format!(
        r#"{server_yaml}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2}}
spec:
  address: 127.0.0.1
  ports: {{http: {port}}}
  labels: {{app: reviews, version: v2}}
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - match: [{{uri: {{prefix: /fault}}}}]
    fault: {{abort: {{httpStatus: 500, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: reviews}}}}]
  - route: [{{destination: {{host: reviews}}}}]
"#,
        port = inbound.port()
    );
    let client = Harness::sidecar(
        &client_yaml,
        None,
        workload(
            "productpage-v1",
            "productpage",
            "v1",
            "bookinfo-productpage",
        ),
        &[("app", "productpage"), ("version", "v1")],
    )
    .await;

    for _ in 0..3 {
        let got = get(client.proxy.outbound, "http://reviews:9080/").await;
        assert_eq!(
            (got.status.as_u16(), got.body.as_str()),
            (200, "reviews v2")
        );
    }
    let got = get(client.proxy.outbound, "http://reviews:9080/fault").await;
    assert_eq!(got.status.as_u16(), 500);
    // The caller's identity header stops at the server sidecar.
    assert!(
        app.seen()
            .iter()
            .all(|s| !s.headers.contains_key("x-weft-peer"))
    );

    let source = client.stats().await;
    let both = [
        "source_workload=\"productpage-v1\"",
        "source_workload_namespace=\"default\"",
        "source_principal=\"cluster.local/ns/default/sa/bookinfo-productpage\"",
        "source_app=\"productpage\"",
        "source_version=\"v1\"",
        "destination_service=\"reviews.default.svc.cluster.local\"",
        "destination_service_name=\"reviews\"",
        "destination_service_namespace=\"default\"",
        "request_protocol=\"http\"",
    ];
    let mut ok = vec![
        "reporter=\"source\"",
        "response_code=\"200\"",
        "response_flags=\"-\"",
    ];
    ok.extend(both);
    ok.extend([
        "destination_workload=\"reviews-v2\"",
        "destination_version=\"v2\"",
        "destination_principal=\"cluster.local/ns/default/sa/bookinfo-reviews\"",
    ]);
    assert_eq!(
        value(&source, "istio_requests_total", &ok),
        Some(3.0),
        "{source}"
    );
    let mut faulted = vec![
        "reporter=\"source\"",
        "response_code=\"500\"",
        "response_flags=\"FI\"",
    ];
    faulted.extend(both);
    assert_eq!(
        value(&source, "istio_requests_total", &faulted),
        Some(1.0),
        "{source}"
    );
    // Histograms: every request falls under +Inf; the body was 10 bytes each time.
    let mut bucket = ok.clone();
    bucket.push("le=\"+Inf\"");
    assert_eq!(
        value(
            &source,
            "istio_request_duration_milliseconds_bucket",
            &bucket
        ),
        Some(3.0)
    );
    assert_eq!(value(&source, "istio_response_bytes_sum", &ok), Some(30.0));
    assert!(source.contains("# TYPE istio_request_duration_milliseconds histogram"));
    assert!(source.contains("weft_config_version 1"));

    let destination = server.stats().await;
    let mut seen = vec![
        "reporter=\"destination\"",
        "response_code=\"200\"",
        "destination_workload=\"reviews-v2\"",
        "destination_app=\"reviews\"",
        "connection_security_policy=\"none\"",
    ];
    seen.extend(both);
    assert_eq!(
        value(&destination, "istio_requests_total", &seen),
        Some(3.0),
        "{destination}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_tcp_connections_are_counted_with_their_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = upstream::tcp_echo().await;
    let server = Harness::sidecar(
        "",
        Some(echo),
        workload("db-v1", "db", "v1", "db"),
        &[("app", "db")],
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(server.proxy.inbound.expect("inbound"))
        .await
        .expect("connect");
    conn.write_all(b"\x00\x01binary hello")
        .await
        .expect("write");
    let mut echoed = [0u8; 14];
    conn.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"\x00\x01binary hello");
    drop(conn);
    let labels = [
        "reporter=\"destination\"",
        "destination_workload=\"db-v1\"",
        "request_protocol=\"tcp\"",
    ];
    let stats = weft_testkit::eventually(
        "the connection to be counted",
        std::time::Duration::from_secs(5),
        || async {
            let s = server.stats().await;
            (value(&s, "istio_tcp_connections_closed_total", &labels) == Some(1.0)).then_some(s)
        },
    )
    .await;
    assert_eq!(
        value(&stats, "istio_tcp_connections_opened_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        value(&stats, "istio_tcp_received_bytes_total", &labels),
        Some(14.0)
    );
    assert_eq!(
        value(&stats, "istio_tcp_sent_bytes_total", &labels),
        Some(14.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_is_counted_as_dc() {
    use tokio::io::AsyncWriteExt;
    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: slow}}\nspec:\n  hosts: [slow.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n"
    );
    let client = Harness::sidecar(
        &yaml,
        None,
        workload("impatient-v1", "impatient", "v1", "impatient"),
        &[],
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(client.proxy.outbound)
        .await
        .expect("connect");
    conn.write_all(b"GET http://slow/ HTTP/1.1\r\nhost: slow\r\n\r\n")
        .await
        .expect("request");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(conn);
    let labels = [
        "reporter=\"source\"",
        "response_code=\"0\"",
        "response_flags=\"DC\"",
        "destination_service=\"slow.default.svc.cluster.local\"",
    ];
    weft_testkit::eventually(
        "the abandoned request to be counted",
        std::time::Duration::from_secs(5),
        || async {
            let stats = client.stats().await;
            (value(&stats, "istio_requests_total", &labels) == Some(1.0)).then_some(())
        },
    )
    .await;
}
