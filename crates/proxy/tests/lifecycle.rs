//! Configuration reloads under load, refusal of invalid changes, the admin API and draining.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Harness, service, subsets, virtual_service};
use weft_testkit::client::{Send, admin_get, get, via_proxy};
use weft_testkit::eventually;
use weft_testkit::upstream::{self, Reply};

fn config(v1: std::net::SocketAddr, v2: std::net::SocketAddr, subset: &str) -> String {
    format!(
        "{}{}{}",
        service("reviews", 8080, "HTTP", &[(v1, "v1"), (v2, "v2")]),
        subsets("reviews"),
        virtual_service(
            "reviews",
            &format!("  - route: [{{destination: {{host: reviews, subset: {subset}}}}}]\n")
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_continuous_load_fail_zero_requests() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let h = Arc::new(Harness::start(&config(v1.addr, v2.addr, "v1")).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (h, stop, ok, failed) = (h.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let got = get(h.proxy.outbound, "http://reviews:8080/").await;
                let counter = if got.status == 200 { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for (round, subset) in ["v2", "v1", "v2"].iter().enumerate() {
        let before = h.version();
        h.write(&config(v1.addr, v2.addr, subset));
        eventually(
            &format!("reload {round}"),
            Duration::from_secs(5),
            || async { (h.version() > before).then_some(()) },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed across reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 50);
    assert!(
        v1.hits() > 0 && v2.hits() > 0,
        "both configurations served traffic"
    );
    assert_eq!(h.version(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_change_is_refused_and_the_last_good_configuration_stays() {
    let v1 = upstream::named("v1").await;
    let v2 = upstream::named("v2").await;
    let h = Harness::start(&config(v1.addr, v2.addr, "v2")).await;
    h.write(&config(v1.addr, v2.addr, "v1").replace(
        "host: reviews, subset: v1",
        "host: reviews, subset: v1}, weight: -3, x: {",
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.version(), 1, "the invalid file was not applied");
    let got = get(h.proxy.outbound, "http://reviews:8080/").await;
    assert_eq!(got.body, "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_shows_config_and_clusters_and_drains() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_millis(400),
        ..Reply::ok("done")
    }))
    .await;
    let h = Harness::start(&service("slow", 8080, "HTTP", &[(slow.addr, "v1")])).await;
    let admin = h.proxy.admin;
    let ready = admin_get(admin, "/ready").await;
    assert_eq!(ready.status, 200);
    let dump = admin_get(admin, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump.body).expect("JSON");
    assert_eq!(dump["version"], 1);
    assert!(dump["mesh"]["clusters"]["outbound|8080||slow.default.svc.cluster.local"].is_object());

    let outbound = h.proxy.outbound;
    let in_flight = tokio::spawn(async move { get(outbound, "http://slow:8080/").await });
    eventually(
        "the request reached the upstream",
        Duration::from_secs(2),
        || async { (slow.hits() == 1).then_some(()) },
    )
    .await;
    let clusters = admin_get(admin, "/clusters").await;
    assert!(clusters.body.contains("\"active\": 1"), "{}", clusters.body);
    let quit = via_proxy(
        admin,
        Send {
            method: "POST",
            url: &format!("http://{admin}/quitquitquit"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(quit.status, 200);
    let finished = in_flight.await.expect("task");
    assert_eq!(
        (finished.status.as_u16(), finished.body.as_str()),
        (200, "done"),
        "in-flight requests finish during the drain"
    );
    eventually(
        "the listener stops accepting",
        Duration::from_secs(3),
        || async {
            tokio::net::TcpStream::connect(outbound)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_is_no_longer_counted_in_flight() {
    let slow = upstream::http(Arc::new(|_, _| Reply {
        delay: Duration::from_secs(30),
        ..Reply::ok("late")
    }))
    .await;
    let h = Harness::start(&service("slow", 8080, "HTTP", &[(slow.addr, "v1")])).await;
    let (admin, outbound) = (h.proxy.admin, h.proxy.outbound);
    let clusters = || async move { admin_get(admin, "/clusters").await.body };
    let client = tokio::spawn(async move { get(outbound, "http://slow:8080/").await });
    eventually(
        "the request is in flight",
        Duration::from_secs(3),
        || async { clusters().await.contains("\"active\": 1").then_some(()) },
    )
    .await;
    // The client goes away long before the upstream answers: least-request balancing
    // must not see that endpoint as busy forever.
    client.abort();
    eventually(
        "the cancelled request leaves the in-flight count",
        Duration::from_secs(5),
        || async { clusters().await.contains("\"active\": 0").then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_health_tells_whether_the_local_app_accepts_connections() {
    let app = upstream::named("app").await;
    let h = Harness::start_with(&service("reviews", 8080, "HTTP", &[]), Some(app.addr)).await;
    let up = admin_get(h.proxy.admin, "/app-health").await;
    assert_eq!(up.status, 200, "{}", up.body);
    // A port nothing listens on: what `weft up` sees before an app has bound its port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let h = Harness::start_with(&service("reviews", 8080, "HTTP", &[]), Some(closed)).await;
    let down = admin_get(h.proxy.admin, "/app-health").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains(&closed.to_string()), "{}", down.body);
    let no_app = Harness::start(&service("reviews", 8080, "HTTP", &[])).await;
    assert_eq!(
        admin_get(no_app.proxy.admin, "/app-health").await.status,
        404
    );
}
