//! Access logs as an operator reads them: a JSON line per request with the route, the
//! upstream and the ids; Istio's text format for a request without a route; a line per
//! TCP connection with its bytes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use weft_proxy::telemetry::access_log::{Format, Target};
use weft_proxy::{ProxyOptions, RunningProxy};
use weft_testkit::client::{Send, get, via_proxy};
use weft_testkit::{eventually, fresh_dir, mesh, upstream};

async fn proxy(dir: &Path, yaml: &str, app: Option<SocketAddr>, format: Format) -> RunningProxy {
    mesh::start_proxy(ProxyOptions {
        app,
        access_log: Some((Target::File(dir.join("access.log")), format)),
        ..mesh::file_options(dir, yaml, "sidecar~logged.default")
    })
    .await
}

async fn lines(path: &Path, n: usize) -> Vec<String> {
    eventually("the access log lines", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= n).then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_logged_as_json_and_as_istio_text() {
    let app = upstream::named("reviews").await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - name: to-reviews\n    match: [{{uri: {{prefix: /r}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n",
        app.addr.port()
    );
    let dir = fresh_dir("access-log-json");
    let p = proxy(&dir, &yaml, None, Format::Json).await;
    let got = via_proxy(
        p.outbound,
        Send {
            url: "http://reviews:9080/r?x=1",
            headers: &[
                ("x-request-id", "req-42"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("user-agent", "weft-test"),
            ],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 200);
    let line: serde_json::Value =
        serde_json::from_str(&lines(&dir.join("access.log"), 1).await[0]).expect("a JSON line");
    for (key, want) in [
        ("method", "GET"),
        ("path", "/r?x=1"),
        ("protocol", "HTTP/1.1"),
        ("response_flags", "-"),
        ("request_id", "req-42"),
        ("authority", "reviews:9080"),
        (
            "upstream_cluster",
            "outbound|9080||reviews.default.svc.cluster.local",
        ),
        ("route_name", "to-reviews"),
        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("user_agent", "weft-test"),
    ] {
        assert_eq!(line[key], want, "{key} in {line}");
    }
    assert_eq!(line["response_code"], 200);
    assert_eq!(line["bytes_sent"], 7);
    assert_eq!(line["upstream_host"], app.addr.to_string());
    assert!(
        line["start_time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let dir = fresh_dir("access-log-text");
    let p = proxy(&dir, &yaml, None, Format::Text).await;
    assert_eq!(
        get(p.outbound, "http://reviews:9080/nowhere")
            .await
            .status
            .as_u16(),
        404
    );
    let line = &lines(&dir.join("access.log"), 1).await[0];
    assert!(line.starts_with('['), "{line}");
    assert!(
        line.contains("] \"GET /nowhere HTTP/1.1\" 404 NR 0 "),
        "Istio's text format: {line}"
    );
    assert!(
        line.contains("\"reviews:9080\" \"-\" - "),
        "no upstream, no cluster: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_logged_with_their_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = upstream::tcp_echo().await;
    let dir = fresh_dir("access-log-tcp");
    let p = proxy(&dir, "", Some(echo), Format::Json).await;
    let mut conn = tokio::net::TcpStream::connect(p.inbound.expect("inbound"))
        .await
        .expect("connect");
    conn.write_all(b"\x00\x01ping").await.expect("write");
    let mut back = [0u8; 6];
    conn.read_exact(&mut back).await.expect("echo");
    drop(conn);
    let line: serde_json::Value =
        serde_json::from_str(&lines(&dir.join("access.log"), 1).await[0]).expect("JSON");
    assert_eq!(line["protocol"], "tcp");
    assert_eq!(line["bytes_received"], 6);
    assert_eq!(line["bytes_sent"], 6);
    assert_eq!(line["upstream_host"], echo.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_denied_by_authorization_policy_is_logged_403_rbac() {
    let app = upstream::named("reviews").await;
    // An ALLOW policy without rules allows nothing.
    let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: default}\nspec: {action: ALLOW}\n";
    let dir = fresh_dir("access-log-rbac");
    let p = proxy(&dir, yaml, Some(app.addr), Format::Json).await;
    let got = weft_testkit::client::direct(
        p.inbound.expect("inbound"),
        Send {
            url: "http://reviews/r",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(got.status.as_u16(), 403);
    assert_eq!(app.hits(), 0);
    let line: serde_json::Value =
        serde_json::from_str(&lines(&dir.join("access.log"), 1).await[0]).expect("a JSON line");
    assert_eq!(line["response_code"], 403, "{line}");
    assert_eq!(line["response_flags"], "RBAC", "{line}");
}
