//! `weft top`: live request rate, success rate and latency percentiles per service and
//! version, from the proxies' Istio metrics (what Linkerd's `viz stat` shows; Istio has
//! no such command). Each proxy of the mesh `weft up` started is scraped twice, an
//! interval apart, and the difference is shown, as the server side saw it
//! (`reporter="destination"`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use super::up::state::State;

/// Arguments of `weft top`.
#[derive(clap::Args)]
pub struct Args {
    /// Where `weft up` keeps its state (the proxies to scrape).
    #[arg(long, default_value = ".weft/up")]
    state_dir: PathBuf,
    /// How long to measure.
    #[arg(long, value_parser = weft_api::duration::parse_duration, default_value = "2s")]
    interval: Duration,
    /// Keep measuring and printing until interrupted.
    #[arg(long)]
    watch: bool,
}

/// What one scrape says about one service version.
#[derive(Debug, Default, Clone)]
struct Sample {
    requests: f64,
    failures: f64,
    /// Cumulative counts by upper bound (ms).
    buckets: BTreeMap<u64, f64>,
}

type Key = (String, String);

fn label<'l>(labels: &'l str, name: &str) -> Option<&'l str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// Server-side request counts and duration buckets per (service, version).
fn parse(text: &str, into: &mut BTreeMap<Key, Sample>) {
    for line in text.lines() {
        let (metric, rest) = match line.split_once('{') {
            Some(x) => x,
            None => continue,
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if label(labels, "reporter") != Some("destination") {
            continue;
        }
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key = (
            label(labels, "destination_service_name")
                .unwrap_or("unknown")
                .to_string(),
            label(labels, "destination_version")
                .unwrap_or("unknown")
                .to_string(),
        );
        let sample = into.entry(key).or_default();
        match metric {
            "istio_requests_total" => {
                sample.requests += value;
                if label(labels, "response_code").is_some_and(|c| c.starts_with('5')) {
                    sample.failures += value;
                }
            }
            "istio_request_duration_milliseconds_bucket" => {
                // Bounds above 1 ms are whole numbers; 0.5 ms is kept as 0.
                let le = label(labels, "le").unwrap_or("+Inf");
                let bound = if le == "+Inf" {
                    u64::MAX
                } else {
                    le.parse::<f64>().map_or(u64::MAX, |b| b as u64)
                };
                *sample.buckets.entry(bound).or_default() += value;
            }
            _ => {}
        }
    }
}

fn scrape(state: &State) -> BTreeMap<Key, Sample> {
    let mut all = BTreeMap::new();
    for addr in state
        .workloads
        .iter()
        .map(|w| &w.stats)
        .filter(|s| !s.is_empty())
    {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if write!(
            stream,
            "GET /stats/prometheus HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        )
        .is_err()
        {
            continue;
        }
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        parse(&text, &mut all);
    }
    all
}

/// The bound under which `q` of the requests fell (linear within the bucket).
fn percentile(buckets: &BTreeMap<u64, f64>, q: f64) -> Option<f64> {
    let total = *buckets.get(&u64::MAX)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0u64, 0.0);
    for (bound, count) in buckets {
        if *count >= rank {
            if *bound == u64::MAX {
                return Some(previous.0 as f64);
            }
            let share = (rank - previous.1) / (count - previous.1).max(f64::MIN_POSITIVE);
            return Some(previous.0 as f64 + share * (*bound - previous.0) as f64);
        }
        previous = (*bound, *count);
    }
    None
}

fn print(before: &BTreeMap<Key, Sample>, after: &BTreeMap<Key, Sample>, seconds: f64) {
    println!(
        "{:<32} {:<10} {:>9} {:>9} {:>9} {:>9}",
        "SERVICE", "VERSION", "RPS", "SUCCESS", "P50", "P99"
    );
    for (key, now) in after {
        let then = before.get(key).cloned().unwrap_or_default();
        let requests = now.requests - then.requests;
        if requests <= 0.0 {
            continue;
        }
        let failures = now.failures - then.failures;
        let delta: BTreeMap<u64, f64> = now
            .buckets
            .iter()
            .map(|(b, c)| (*b, c - then.buckets.get(b).copied().unwrap_or(0.0)))
            .collect();
        let ms = |q| percentile(&delta, q).map_or_else(|| "-".into(), |v| format!("{v:.0}ms"));
        println!(
            "{:<32} {:<10} {:>9.1} {:>8.1}% {:>9} {:>9}",
            key.0,
            key.1,
            requests / seconds,
            100.0 * (requests - failures) / requests,
            ms(0.5),
            ms(0.99),
        );
    }
}

/// Runs `weft top`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(state) = State::load(&args.state_dir)? else {
        bail!(
            "no mesh is up (no state in {}); start one with `weft up`",
            args.state_dir.display()
        );
    };
    loop {
        let before = scrape(&state);
        std::thread::sleep(args.interval);
        let after = scrape(&state);
        if after.is_empty() {
            bail!("no proxy of the mesh answered on its stats listener");
        }
        print(&before, &after, args.interval.as_secs_f64());
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_buckets() {
        let buckets: BTreeMap<u64, f64> = [(1, 0.0), (5, 50.0), (10, 100.0), (u64::MAX, 100.0)]
            .into_iter()
            .collect();
        assert_eq!(percentile(&buckets, 0.5), Some(5.0));
        assert_eq!(percentile(&buckets, 0.75), Some(7.5));
        assert_eq!(percentile(&BTreeMap::new(), 0.5), None);
    }

    #[test]
    fn server_side_series_are_summed_per_version() {
        let text = r#"istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v2",response_code="200"} 7
istio_requests_total{reporter="destination",destination_service_name="reviews",destination_version="v2",response_code="503"} 3
istio_requests_total{reporter="source",destination_service_name="reviews",destination_version="v2",response_code="200"} 100
"#;
        let mut all = BTreeMap::new();
        parse(text, &mut all);
        let s = &all[&("reviews".to_string(), "v2".to_string())];
        assert_eq!((s.requests, s.failures), (10.0, 3.0));
    }
}
