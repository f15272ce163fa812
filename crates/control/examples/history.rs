//! Metrics history benchmark (run by `bench/metrics-history`): PROXIES simulated proxies,
//! each serving Istio's metrics for its calls on its own loopback port, scraped by the
//! control plane's scraper as in `weft control`. Prints the CPU a scrape round takes,
//! and the store's memory once it holds a full hour.
//!
//!   history PROXIES MAX_SERIES
//!
//! Every proxy `w<i>` calls two others with some 200s and some 503s, so it reports 4
//! series as a client and 4 as a server (each a duration histogram and byte sums), as a
//! sidecar of a busy mesh would.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use weft_control::history::{History, HistoryLimits, TICK_SECS, TICKS, scrape};

const BOUNDS: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/// Proxy `i`'s exposition after `round` scrapes' worth of calls.
fn exposition(i: usize, n: usize, round: u64) -> String {
    let mut out = String::with_capacity(64 << 10);
    let calls = |salt: usize| round * ((i + salt) % 7 + 1) as u64;
    let peer = |side: &str, w: usize| {
        format!(
            "{side}_workload=\"w{w}\",{side}_workload_namespace=\"ns{}\",{side}_principal=\"cluster.local/ns/ns{}/sa/w{w}\",{side}_app=\"svc{w}\",{side}_version=\"v1\",{side}_canonical_service=\"svc{w}\",{side}_canonical_revision=\"v1\"",
            w % 10,
            w % 10
        )
    };
    let mut series = Vec::new();
    for (k, other) in [(i + 1) % n, (i + 7) % n].into_iter().enumerate() {
        series.push((
            "source",
            peer("source", i),
            peer("destination", other),
            other,
            k,
        ));
        let caller = (i + n - 1 - 6 * k) % n;
        series.push((
            "destination",
            peer("source", caller),
            peer("destination", i),
            i,
            k + 2,
        ));
    }
    for (reporter, src, dst, service, salt) in series {
        for (code, share) in [("200", 10), ("503", 1)] {
            let labels = format!(
                "reporter=\"{reporter}\",{src},{dst},destination_service=\"svc{service}.ns{}.svc.cluster.local\",destination_service_name=\"svc{service}\",destination_service_namespace=\"ns{}\",connection_security_policy=\"mutual_tls\",request_protocol=\"http\",response_code=\"{code}\",grpc_response_status=\"-\",response_flags=\"-\"",
                service % 10,
                service % 10
            );
            let count = calls(salt) * share;
            out.push_str(&format!("istio_requests_total{{{labels}}} {count}\n"));
            let mut cumulative = 0;
            for (b, le) in BOUNDS.iter().enumerate() {
                // Most calls take 1-10 ms, a few 25-100 ms.
                cumulative = match b {
                    0 | 1 => 0,
                    2 => count / 2,
                    3 => count * 9 / 10,
                    4..=6 => count * 99 / 100,
                    _ => count,
                }
                .max(cumulative);
                out.push_str(&format!(
                    "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"
                ));
            }
            out.push_str(&format!(
                "istio_request_duration_milliseconds_sum{{{labels}}} {}\nistio_request_duration_milliseconds_count{{{labels}}} {count}\nistio_request_bytes_sum{{{labels}}} {}\nistio_response_bytes_sum{{{labels}}} {}\n",
                count * 4,
                count * 120,
                count * 900
            ));
        }
    }
    out
}

/// This process's CPU time (user + system) in seconds, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let max_series: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4096);
    let round = Arc::new(AtomicU64::new(1));
    let mut targets = Vec::new();
    for i in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        targets.push((
            weft_proto::node_id(false, &format!("w{i}"), &format!("ns{}", i % 10)),
            listener.local_addr().unwrap().to_string(),
        ));
        let round = round.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let round = round.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let text = exposition(i, n, round.load(Ordering::Relaxed));
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let bytes: usize = (0..n).map(|i| exposition(i, n, 1).len()).sum();
    println!("| what | value |\n|---|---|");
    println!("| simulated proxies | {n} |");
    println!(
        "| exposition per scrape round | {:.1} MiB |",
        bytes as f64 / (1 << 20) as f64
    );

    // Scraping over HTTP, as `weft control` does every 5 s: CPU per round (the simulated
    // proxies' serving is in this process too, so this is an upper bound).
    let history = Arc::new(History::new(HistoryLimits { max_series }));
    let t0 = 1_800_000_000u64;
    let rounds = 6;
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for r in 0..rounds {
        round.store(r + 1, Ordering::Relaxed);
        scrape::scrape_targets(&history, targets.clone(), Some(t0 + r * TICK_SECS)).await;
    }
    let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    println!(
        "| scrape round over HTTP (CPU, proxies' serving included) | {:.0} ms CPU, {:.0} ms wall |",
        cpu * 1000.0 / rounds as f64,
        wall * 1000.0 / rounds as f64
    );
    println!(
        "| share of one core at one round per 5 s | {:.1} % |",
        cpu / rounds as f64 / 5.0 * 100.0
    );

    // Filling an hour: the same expositions ingested directly, one round a tick, each
    // made just before it is read (so the bench's own text is not what RSS measures).
    let generate = {
        let start = cpu_seconds();
        for i in 0..n {
            std::hint::black_box(exposition(i, n, rounds + 1));
        }
        cpu_seconds() - start
    };
    let before = rss_mib();
    let start = cpu_seconds();
    for r in rounds..=TICKS + rounds {
        for (i, (id, _)) in targets.iter().enumerate() {
            history.ingest(id, &exposition(i, n, r + 1), t0 + r * TICK_SECS);
        }
    }
    let ingest_only = (cpu_seconds() - start - generate * (TICKS + 1) as f64).max(0.0);
    let (series, rows) = history.size();
    println!(
        "| store parsing and ingest only, per round | {:.0} ms CPU |",
        ingest_only * 1000.0 / (TICKS + 1) as f64
    );
    println!("| series kept (cap {max_series}) | {series} |");
    println!(
        "| samples of series not kept (the cap; counted each round) | {} |",
        history.dropped_series.load(Ordering::Relaxed)
    );
    println!("| rows held (an hour of 10 s ticks) | {rows} |");
    println!(
        "| bytes per row | {} |",
        std::mem::size_of::<weft_control::history::RequestRow>()
    );
    println!(
        "| process RSS growth while filling the hour | {:.1} MiB ({:.1} MiB at the end) |",
        rss_mib() - before,
        rss_mib()
    );
    println!(
        "| bound stated (cap × 360 rows × row size) | {:.1} MiB |",
        (max_series * TICKS as usize * std::mem::size_of::<weft_control::history::RequestRow>())
            as f64
            / (1 << 20) as f64
    );
}
