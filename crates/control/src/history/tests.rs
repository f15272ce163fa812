use super::*;

fn exposition(workload: &str, requests: u64, fast: u64, code: u16) -> String {
    let labels = format!(
        "reporter=\"source\",source_workload=\"bff\",source_workload_namespace=\"default\",source_app=\"bff\",source_version=\"unknown\",source_canonical_service=\"bff\",destination_workload=\"{workload}\",destination_workload_namespace=\"default\",destination_app=\"rec\",destination_version=\"v1\",destination_canonical_service=\"rec\",destination_service=\"rec.default.svc.cluster.local\",destination_service_name=\"rec\",destination_service_namespace=\"default\",connection_security_policy=\"unknown\",request_protocol=\"http\",response_code=\"{code}\",response_flags=\"-\""
    );
    let mut out = format!(
        "# TYPE istio_requests_total counter\nistio_requests_total{{{labels}}} {requests}\n"
    );
    // `fast` requests took under 5 ms, the rest under 100 ms.
    for (i, le) in BUCKETS.iter().enumerate() {
        let le_text = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let n = if i < 2 {
            0
        } else if i < 6 {
            fast
        } else {
            requests
        };
        out.push_str(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le_text}\"}} {n}\n"
        ));
    }
    out.push_str(&format!(
        "istio_request_duration_milliseconds_sum{{{labels}}} {}\nistio_response_bytes_sum{{{labels}}} {}\n",
        requests * 10,
        requests * 100
    ));
    out
}

fn all(h: &History) -> Vec<(RequestKey, Vec<RequestRow>)> {
    h.request_rows(0, u64::MAX, |_| true)
}

#[test]
fn increments_per_tick_from_cumulative_counters() {
    let h = History::new(HistoryLimits::default());
    // The first scrape of a proxy is its base: what it counted before is no tick's.
    h.ingest("p1", &exposition("rec-v1", 1000, 400, 200), 990);
    assert!(all(&h).is_empty());
    h.ingest("p1", &exposition("rec-v1", 1010, 404, 200), 1000);
    h.ingest("p1", &exposition("rec-v1", 1025, 410, 200), 1010);
    let rows = all(&h);
    assert_eq!(rows.len(), 1);
    let (key, rows) = &rows[0];
    assert_eq!(&*key.edge.destination.workload, "rec-v1");
    assert_eq!(&*key.edge.source.service, "bff");
    assert_eq!(key.code, 200);
    assert_eq!(
        rows.iter().map(|r| r.requests).collect::<Vec<_>>(),
        vec![10.0, 15.0]
    );
    // The second tick: 6 fast (bucket le=5), 9 slower (le=100).
    assert_eq!(rows[1].duration[2], 6.0);
    assert_eq!(rows[1].duration[6], 9.0);
    assert_eq!(rows[1].duration.iter().sum::<f32>(), 15.0);
    assert_eq!(rows[1].response_bytes, 1500.0);
}

#[test]
fn a_restarted_proxy_counts_from_zero_again() {
    let h = History::new(HistoryLimits::default());
    h.ingest("p1", &exposition("rec-v1", 90, 40, 200), 990);
    h.ingest("p1", &exposition("rec-v1", 100, 50, 200), 1000);
    h.ingest("p1", &exposition("rec-v1", 7, 7, 200), 1010);
    let rows = &all(&h)[0].1;
    assert_eq!(rows[0].requests, 10.0);
    assert_eq!(rows[1].requests, 7.0);
}

#[test]
fn scrapes_in_one_tick_add_up_and_proxies_are_summed() {
    let h = History::new(HistoryLimits::default());
    h.ingest("p1", &exposition("rec-v1", 0, 0, 200), 990);
    h.ingest("p2", &exposition("rec-v1", 0, 0, 200), 990);
    h.ingest("p1", &exposition("rec-v1", 10, 10, 200), 1000);
    h.ingest("p1", &exposition("rec-v1", 12, 12, 200), 1005);
    h.ingest("p2", &exposition("rec-v1", 3, 3, 200), 1006);
    let rows = &all(&h)[0].1;
    assert_eq!(rows.len(), 1, "one tick of 10 s");
    assert_eq!(rows[0].requests, 15.0);
}

#[test]
fn the_store_keeps_an_hour_and_at_most_max_series() {
    let h = History::new(HistoryLimits { max_series: 2 });
    for (i, w) in ["a", "b", "c", "d"].iter().enumerate() {
        h.ingest(&format!("p{i}"), "", 990);
        h.ingest(&format!("p{i}"), &exposition(w, 1, 1, 200), 1000);
    }
    assert_eq!(h.size().0, 2);
    assert_eq!(h.dropped_series.load(Ordering::Relaxed), 2);
    // An hour and a tick later, the old rows (and so their series) are gone.
    h.ingest("p9", "", 1000 + 3600);
    h.ingest("p9", &exposition("e", 1, 1, 200), 1000 + 3600 + 10);
    assert_eq!(h.size(), (1, 1));
}

#[test]
fn quantiles_interpolate_inside_the_bucket() {
    let mut counts = [0f32; 20];
    counts[2] = 50.0; // (1, 5]
    counts[6] = 50.0; // (50, 100]
    assert_eq!(quantile(&counts, 0.5), Some(5.0));
    let p99 = quantile(&counts, 0.99).expect("some");
    assert!((99.0..=100.0).contains(&p99), "{p99}");
    assert_eq!(quantile(&[0.0; 20], 0.5), None);
    let mut overflow = [0f32; 20];
    overflow[19] = 3.0;
    assert_eq!(quantile(&overflow, 0.99), Some(3_600_000.0));
}

#[test]
fn errors_are_5xx_and_failed_connections() {
    let h = History::new(HistoryLimits::default());
    h.ingest("p1", "", 990);
    h.ingest("p1", &exposition("rec-v1", 4, 4, 503), 1000);
    h.ingest("p1", &exposition("rec-v1", 4, 4, 404), 1000);
    let keys: Vec<bool> = all(&h).iter().map(|(k, _)| k.is_error()).collect();
    assert!(keys.contains(&true) && keys.contains(&false));
}
