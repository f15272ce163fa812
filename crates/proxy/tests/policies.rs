//! Retries, timeouts, fault injection and mirroring, observed from the client and upstreams.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, service, subsets, virtual_service};
use weft_testkit::client::{Send, get, via_proxy};
use weft_testkit::eventually;
use weft_testkit::upstream::{self, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_upstream_is_retried_as_configured_then_given_up() {
    // Fails the first two requests, then succeeds.
    let flaky = upstream::http(Arc::new(|n, _| {
        if n < 2 {
            Reply::status(503, "busy")
        } else {
            Reply::ok("finally")
        }
    }))
    .await;
    let rules =
        "  - route: [{destination: {host: flaky}}]\n    retries: {attempts: 2, retryOn: \"503\"}\n";
    let h = Harness::start(&format!(
        "{}{}",
        service("flaky", 8080, "HTTP", &[(flaky.addr, "v1")]),
        virtual_service("flaky", rules)
    ))
    .await;
    let got = via_proxy(
        h.proxy.outbound,
        Send {
            method: "POST",
            url: "http://flaky:8080/",
            body: "payload",
            ..Default::default()
        },
    )
    .await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "finally"));
    assert_eq!(flaky.hits(), 3, "one try and exactly two retries");
    assert!(
        flaky.seen().iter().all(|s| s.body == "payload"),
        "every try carries the whole body"
    );

    let always = upstream::http(Arc::new(|_, _| Reply::status(503, "down"))).await;
    let h = Harness::start(&format!(
        "{}{}",
        service("flaky", 8080, "HTTP", &[(always.addr, "v1")]),
        virtual_service("flaky", rules)
    ))
    .await;
    let got = get(h.proxy.outbound, "http://flaky:8080/").await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (503, "down"),
        "the last upstream answer is returned"
    );
    assert_eq!(always.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_does_not_retry_503() {
    let always = upstream::http(Arc::new(|_, _| Reply::status(503, "down"))).await;
    let h = Harness::start(&format!(
        "{}{}",
        service("svc", 8080, "HTTP", &[(always.addr, "v1")]),
        virtual_service("svc", "  - route: [{destination: {host: svc}}]\n")
    ))
    .await;
    let got = get(h.proxy.outbound, "http://svc:8080/").await;
    assert_eq!(got.status, 503);
    assert_eq!(
        always.hits(),
        1,
        "Istio 1.24+: 503 is not in the default retry policy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_and_overall_timeouts() {
    // The first try hangs; the retry answers at once.
    let slow_first = upstream::http(Arc::new(|n, _| {
        if n == 0 {
            Reply {
                delay: Duration::from_secs(5),
                ..Reply::ok("slow")
            }
        } else {
            Reply::ok("fast")
        }
    }))
    .await;
    let rules = "  - route: [{destination: {host: svc}}]\n    retries: {attempts: 1, perTryTimeout: 200ms, retryOn: gateway-error}\n";
    let h = Harness::start(&format!(
        "{}{}",
        service("svc", 8080, "HTTP", &[(slow_first.addr, "v1")]),
        virtual_service("svc", rules)
    ))
    .await;
    let got = get(h.proxy.outbound, "http://svc:8080/").await;
    assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "fast"));
    assert_eq!(slow_first.hits(), 2);

    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_secs(5),
        ..Reply::ok("slow")
    }))
    .await;
    let rules = "  - route: [{destination: {host: svc}}]\n    timeout: 300ms\n";
    let h = Harness::start(&format!(
        "{}{}",
        service("svc", 8080, "HTTP", &[(slow.addr, "v1")]),
        virtual_service("svc", rules)
    ))
    .await;
    let start = Instant::now();
    let got = get(h.proxy.outbound, "http://svc:8080/").await;
    assert_eq!(
        (got.status.as_u16(), got.header("x-weft-response-flags")),
        (504, Some("UT"))
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the route timeout cut the wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_and_delay() {
    let app = upstream::named("app").await;
    let rules = "  - match: [{uri: {prefix: /abort}}]\n    fault: {abort: {httpStatus: 500, percent: 100}}\n    route: [{destination: {host: svc}}]\n  - match: [{uri: {prefix: /grpc}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: svc}}]\n  - fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}\n    route: [{destination: {host: svc}}]\n";
    let h = Harness::start(&format!(
        "{}{}",
        service("svc", 8080, "HTTP", &[(app.addr, "v1")]),
        virtual_service("svc", rules)
    ))
    .await;
    let aborted = get(h.proxy.outbound, "http://svc:8080/abort").await;
    assert_eq!(
        (
            aborted.status.as_u16(),
            aborted.header("x-weft-response-flags")
        ),
        (500, Some("FI"))
    );
    let grpc = via_proxy(
        h.proxy.outbound,
        Send {
            method: "POST",
            url: "http://svc:8080/grpc",
            headers: &[("content-type", "application/grpc")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (grpc.status.as_u16(), grpc.header("grpc-status")),
        (200, Some("14"))
    );
    assert_eq!(app.hits(), 0, "aborted requests never reach the app");
    let start = Instant::now();
    let delayed = get(h.proxy.outbound, "http://svc:8080/").await;
    assert_eq!(delayed.body, "app");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "the delay was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_copies_arrive_and_never_affect_the_answer() {
    let main = upstream::named("main").await;
    let shadow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(500),
        ..Reply::status(500, "shadow broke")
    }))
    .await;
    let rules = "  - route: [{destination: {host: svc, subset: v1}}]\n    mirror: {host: svc, subset: v2}\n";
    let yaml = format!(
        "{}{}{}",
        service(
            "svc",
            8080,
            "HTTP",
            &[(main.addr, "v1"), (shadow.addr, "v2")]
        ),
        subsets("svc"),
        virtual_service("svc", rules)
    );
    let h = Harness::start(&yaml).await;
    for _ in 0..5 {
        let got = via_proxy(
            h.proxy.outbound,
            Send {
                method: "POST",
                url: "http://svc:8080/x",
                body: "copy me",
                ..Default::default()
            },
        )
        .await;
        assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "main"));
    }
    eventually("5 mirrored copies", Duration::from_secs(5), || async {
        (shadow.hits() == 5).then_some(())
    })
    .await;
    let copy = &shadow.seen()[0];
    assert_eq!(
        copy.headers.get("host").and_then(|v| v.to_str().ok()),
        Some("svc-shadow:8080")
    );
    assert_eq!(copy.body, "copy me");
}
