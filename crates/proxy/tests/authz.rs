//! AuthorizationPolicy at the server sidecar, as an attacker probes it: every spelling of
//! a denied path (double slashes, dot segments, percent-encoded slashes and dots, case
//! changes, a fragment, NUL) is refused and never reaches the app, which receives the one
//! normalized path; ALLOW with no rules denies everything; DENY wins over ALLOW.

mod common;

use std::time::Duration;

use common::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_model::service::WorkloadInfo;
use weft_testkit::upstream;

fn reviews() -> WorkloadInfo {
    let labels = [("app".to_string(), "reviews".to_string())]
        .into_iter()
        .collect();
    WorkloadInfo::new("reviews-v1", "default", "reviews", &labels)
}

/// Sends `GET {target}` with `host` as written (no client-side cleaning): (status, flags).
async fn raw(addr: std::net::SocketAddr, target: &str, host: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix("x-weft-response-flags: "))
        .unwrap_or("-")
        .trim()
        .to_string();
    (status, flags)
}

const POLICIES: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*", "/private/{**}"]}}]
  - to: [{operation: {hosts: ["internal.example.com"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: everyone, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - {}
---
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_denied_path_reaches_the_app() {
    let app = upstream::named("reviews").await;
    let server = Harness::sidecar(POLICIES, Some(app.addr), reviews(), &[("app", "reviews")]).await;
    let inbound = server.proxy.inbound.expect("inbound");

    // DENY wins over the ALLOW-everything policy.
    for attempt in [
        "/admin",
        "//admin",
        "/./admin",
        "/public/../admin",
        "/%2Fadmin",
        "/%2fadmin",
        "/%5Cadmin",
        "/x/%2e%2e/admin",
        "/x/%2E%2E/admin",
        "/%61dmin",
        "/admin/",
        "/admin/users",
        "/admin//users",
        "/admin?x=1",
        "/x\\..\\admin",
        "/private/",
        "/private/a/b/",
    ] {
        let (status, flags) = raw(inbound, attempt, "reviews").await;
        assert_eq!((status, flags.as_str()), (403, "RBAC"), "{attempt}");
    }
    // Host names compare without case.
    assert_eq!(raw(inbound, "/public", "INTERNAL.Example.com").await.0, 403);
    // A fragment never selects another resource; a NUL is refused outright.
    let (status, _) = raw(inbound, "/admin#top", "reviews").await;
    assert!(status == 403 || status == 400, "fragment: {status}");
    assert_eq!(raw(inbound, "/admin%00", "reviews").await.0, 400);
    assert!(
        app.seen()
            .iter()
            .all(|s| !s.path.to_ascii_lowercase().contains("admin")),
        "the app saw {:?}",
        app.seen()
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );

    // What is allowed goes through, and the app gets the normalized path.
    assert_eq!(raw(inbound, "//public/./page?q=1", "reviews").await.0, 200);
    assert_eq!(app.seen().last().expect("seen").path, "/public/page?q=1");
    // Paths are case-sensitive, as in Istio: /ADMIN is another resource.
    assert_eq!(raw(inbound, "/ADMIN", "reviews").await.0, 200);
    // The inbound side is not a forward proxy: a tunnel would skip every policy.
    let (status, _) = raw(inbound, "127.0.0.1:9", "127.0.0.1:9").await;
    assert!(
        status == 405 || status == 400,
        "a tunnel on the inbound side: {status}"
    );

    // Denials are counted with their flag.
    let stats = server.stats().await;
    assert!(
        stats.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("response_code=\"403\"")
            && l.contains("response_flags=\"RBAC\"")),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_with_no_rules_denies_everything_and_scopes_apply() {
    let app = upstream::named("reviews").await;
    let yaml = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: elsewhere, namespace: other}
spec:
  action: DENY
  rules: [{}]
---
"#;
    let server = Harness::sidecar(yaml, Some(app.addr), reviews(), &[("app", "reviews")]).await;
    let inbound = server.proxy.inbound.expect("inbound");
    for path in ["/", "/anything"] {
        assert_eq!(
            raw(inbound, path, "reviews").await,
            (403, "RBAC".to_string())
        );
    }
    assert_eq!(app.hits(), 0);

    // Source IP blocks and header conditions.
    let app = upstream::named("ratings").await;
    let yaml = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-loopback-with-key, namespace: istio-system}
spec:
  rules:
  - from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]
    when:
    - key: request.headers[x-api-key]
      values: ["secret-*"]
  - from: [{source: {principals: ["*"]}}]
---
"#;
    let server = Harness::sidecar(yaml, Some(app.addr), reviews(), &[("app", "reviews")]).await;
    let inbound = server.proxy.inbound.expect("inbound");
    assert_eq!(
        raw(inbound, "/", "reviews").await.0,
        403,
        "no key, no mTLS identity"
    );
    let mut s = tokio::net::TcpStream::connect(inbound)
        .await
        .expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nhost: reviews\r\nx-api-key: secret-123\r\nconnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_admits_its_rate_plus_burst_and_answers_429() {
    let app = upstream::named("reviews").await;
    let yaml = r#"apiVersion: policy.weft.dev/v1alpha1
kind: RateLimit
metadata: {name: per-user, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  limit: {requests: 5, interval: 10s, burst: 2}
  bucketBy: {header: x-user}
  match: [{paths: ["/api/*"]}]
---
"#;
    let server = Harness::sidecar(yaml, Some(app.addr), reviews(), &[("app", "reviews")]).await;
    let inbound = server.proxy.inbound.expect("inbound");
    let call = |user: &'static str, path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(inbound)
            .await
            .expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: reviews\r\nx-user: {user}\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("read");
        answer
    };
    let mut admitted = 0;
    let mut limited = Vec::new();
    for _ in 0..20 {
        let answer = call("alice", "/api/items").await;
        if answer.starts_with("HTTP/1.1 200") {
            admitted += 1;
        } else {
            limited.push(answer);
        }
    }
    // 5 per 10 s: nothing refills during the test; 5 + burst 2 admitted.
    assert_eq!(admitted, 7);
    assert_eq!(limited.len(), 13);
    let refused = &limited[0];
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    for header in [
        "x-weft-response-flags: RL",
        "x-ratelimit-remaining: 0",
        "x-ratelimit-reset: ",
        "retry-after: ",
        "x-ratelimit-limit: 5",
    ] {
        assert!(
            refused
                .to_ascii_lowercase()
                .contains(&header.to_ascii_lowercase()),
            "{header} in {refused}"
        );
    }
    // Another user has a bucket of their own; paths outside the match are not counted.
    assert!(call("bob", "/api/items").await.starts_with("HTTP/1.1 200"));
    assert!(call("alice", "/health").await.starts_with("HTTP/1.1 200"));
    let stats = server.stats().await;
    assert!(
        stats.lines().any(|l| l.starts_with("istio_requests_total{")
            && l.contains("response_code=\"429\"")
            && l.contains("response_flags=\"RL\"")
            && l.ends_with(" 13")),
        "{stats}"
    );
}
