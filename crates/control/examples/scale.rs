//! Control plane scale benchmark (run by `bench/control-scale`): one process serves the
//! control plane, another opens many light delta xDS streams (simulated proxies), loads
//! services through the API, applies one change and measures how long every proxy takes
//! to receive it, and the server's memory per connected proxy and CPU per push.
//!
//!   scale serve API XDS STATE_DIR
//!   scale drive API XDS PROXIES SERVICES SERVER_PID
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use weft_proto::ISTIO_RESOURCE_TYPE;
use weft_proto::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use weft_proto::discovery::{DeltaDiscoveryRequest, Node};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(&args[2], &args[3], &args[4]).await,
        Some("drive") => {
            drive(
                &args[2],
                &args[3],
                args[4].parse().unwrap(),
                args[5].parse().unwrap(),
                args[6].parse().unwrap(),
            )
            .await
        }
        _ => eprintln!(
            "usage: scale serve API XDS STATE | scale drive API XDS PROXIES SERVICES SERVER_PID"
        ),
    }
}

async fn serve(api: &str, xds: &str, state: &str) {
    let opts = weft_control::ControlOptions {
        api: api.parse().unwrap(),
        xds: xds.parse().unwrap(),
        registration_grace: Duration::from_secs(10),
        ..weft_control::ControlOptions::ephemeral(std::path::Path::new(state))
    };
    let _control = weft_control::start(opts).await.unwrap();
    std::future::pending::<()>().await;
}

async fn post(api: &str, path: &str, body: String) {
    let stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", api)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// (RSS KiB, CPU ticks user+system) of a process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

type Opened = (
    mpsc::Sender<DeltaDiscoveryRequest>,
    tonic::Streaming<weft_proto::discovery::DeltaDiscoveryResponse>,
);

/// One simulated proxy's stream, subscribed to everything.
async fn open(xds: &str, i: usize) -> Result<Opened, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{xds}")).await?;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: Some(Node {
            id: format!("sim-{i}"),
            ..Default::default()
        }),
        type_url: ISTIO_RESOURCE_TYPE.into(),
        resource_names_subscribe: vec!["*".into()],
        ..Default::default()
    })
    .await?;
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let stream = client
        .delta_aggregated_resources(requests)
        .await?
        .into_inner();
    Ok((tx, stream))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn drive(api: &str, xds: &str, proxies: usize, services: usize, server: u32) {
    let started = Instant::now();
    for i in 0..services {
        let se = format!(
            r#"{{"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{{"name":"svc-{i}"}},"spec":{{"hosts":["svc-{i}.default.svc.cluster.local"],"resolution":"STATIC","ports":[{{"number":8080,"name":"http","protocol":"HTTP"}}],"endpoints":[{{"address":"10.0.{}.{}","labels":{{"version":"v1"}}}}]}}}}"#,
            i / 250,
            i % 250 + 1
        );
        post(
            api,
            "/apis/networking.istio.io/v1/namespaces/default/serviceentries",
            se,
        )
        .await;
    }
    eprintln!("{services} services stored in {:?}", started.elapsed());
    let (rss_before, _) = usage(server);

    // Each simulated proxy: one stream, ACKs everything, records the highest version seen.
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..proxies).map(|_| AtomicU64::new(0)).collect());
    let received_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..proxies).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    for i in 0..proxies {
        let (seen, received_at, xds) = (seen.clone(), received_at.clone(), xds.to_string());
        let connecting = connecting.clone();
        tokio::spawn(async move {
            // A stream that ends (a connection reset while thousands connect) is opened
            // again, as a proxy would.
            loop {
                let (tx, mut stream) = {
                    // Connections open a few hundred at a time (the listen backlog is
                    // 1024), each retried: real proxies do not all connect at once.
                    let _slot = connecting.acquire().await.unwrap();
                    let mut tries = 0;
                    loop {
                        match open(&xds, i).await {
                            Ok(opened) => break opened,
                            Err(e) if tries < 50 => {
                                tries += 1;
                                drop(e);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => panic!("proxy {i}: {e}"),
                        }
                    }
                };
                while let Ok(Some(resp)) = stream.message().await {
                    let version: u64 = resp.system_version_info.parse().unwrap_or(0);
                    seen[i].fetch_max(version, Ordering::Relaxed);
                    received_at[i].store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let ack = DeltaDiscoveryRequest {
                        type_url: ISTIO_RESOURCE_TYPE.into(),
                        response_nonce: resp.nonce,
                        ..Default::default()
                    };
                    if tx.send(ack).await.is_err() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let synced = Instant::now();
    while seen
        .iter()
        .any(|s| s.load(Ordering::Relaxed) < services as u64)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync_time = synced.elapsed();
    eprintln!("{proxies} proxies connected and synced in {sync_time:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, ticks_before) = usage(server);

    // One apply: how long until every proxy has it?
    let vs = r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"svc-0"},"spec":{"hosts":["svc-0"],"http":[{"route":[{"destination":{"host":"svc-0"}}],"timeout":"2s"}]}}"#;
    let target = services as u64 + 1;
    let applied = epoch.elapsed().as_micros() as u64;
    post(
        api,
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
        vs.into(),
    )
    .await;
    while seen.iter().any(|s| s.load(Ordering::Relaxed) < target) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, ticks_after) = usage(server);
    let mut convergence: Vec<Duration> = received_at
        .iter()
        .map(|r| Duration::from_micros(r.load(Ordering::Relaxed).saturating_sub(applied)))
        .collect();
    convergence.sort();
    let hz = 100.0; // USER_HZ on Linux
    let cpu_per_push_ms = (ticks_after - ticks_before) as f64 / hz * 1000.0 / proxies as f64;
    let per_proxy_kib = (rss_after.saturating_sub(rss_before)) as f64 / proxies as f64;
    println!(
        "| proxies | services | initial sync | convergence p50 | convergence p99 | max | server RSS | RSS per proxy | CPU per push |"
    );
    println!(
        "|--------:|---------:|-------------:|----------------:|----------------:|----:|-----------:|--------------:|-------------:|"
    );
    println!(
        "| {proxies} | {services} | {:.2} s | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MiB | {:.1} KiB | {:.3} ms |",
        sync_time.as_secs_f64(),
        percentile(&convergence, 0.5).as_secs_f64() * 1000.0,
        percentile(&convergence, 0.99).as_secs_f64() * 1000.0,
        convergence.last().unwrap().as_secs_f64() * 1000.0,
        rss_after as f64 / 1024.0,
        per_proxy_kib,
        cpu_per_push_ms
    );
    std::process::exit(0);
}
