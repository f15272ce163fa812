//! The golden signals of one service or workload over a time range, as Istio's Grafana
//! service and workload dashboards show them: request rate by response code, success
//! rate, p50/p90/p99 duration, request and response sizes, TCP bytes and connections.
//!
//! Inbound is what the server sidecars saw (`reporter="destination"`), outbound what the
//! workloads' own sidecars saw calling out (`reporter="source"`), as in those dashboards.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::source::{MetricsSource, Selector};
use crate::history::{Edge, Reporter, RequestRow, Row, TICK_SECS, tick_of};

/// What a page shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subject {
    /// A service (`destination_service_name`).
    Service,
    /// A workload.
    Workload,
}

/// Which way the traffic goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    /// Calls it serves.
    Inbound,
    /// Calls it makes.
    Outbound,
}

fn selector(subject: Subject, direction: Direction, namespace: &str, name: &str) -> Selector {
    let (ns, name) = (namespace.to_string(), name.to_string());
    match (subject, direction) {
        (Subject::Service, Direction::Inbound) => Selector {
            reporter: Some(Reporter::Destination),
            equal: vec![
                ("destination_service_name", name),
                ("destination_service_namespace", ns),
            ],
        },
        (Subject::Service, Direction::Outbound) => Selector {
            reporter: Some(Reporter::Source),
            equal: vec![
                ("source_canonical_service", name),
                ("source_workload_namespace", ns),
            ],
        },
        (Subject::Workload, Direction::Inbound) => Selector {
            reporter: Some(Reporter::Destination),
            equal: vec![
                ("destination_workload", name),
                ("destination_workload_namespace", ns),
            ],
        },
        (Subject::Workload, Direction::Outbound) => Selector {
            reporter: Some(Reporter::Source),
            equal: vec![("source_workload", name), ("source_workload_namespace", ns)],
        },
    }
}

/// The series a sample is drawn in: by version (a service's inbound), by caller (a
/// workload's inbound), by destination service (outbound).
fn group(subject: Subject, direction: Direction, edge: &Edge) -> String {
    let Edge {
        source,
        destination,
        service,
        ..
    } = edge;
    match (subject, direction) {
        (Subject::Service, Direction::Inbound) => destination.version.to_string(),
        (Subject::Workload, Direction::Inbound) => {
            if source.is_unknown() {
                "outside the mesh".into()
            } else {
                source.workload.to_string()
            }
        }
        (_, Direction::Outbound) => service.to_string(),
    }
}

/// The panels' JSON (crates/control/dashboard/API.md) for `range_secs` up to `now`.
pub async fn panels(
    metrics: &MetricsSource,
    subject: Subject,
    direction: Direction,
    namespace: &str,
    name: &str,
    now: u64,
    range_secs: u64,
) -> Result<Value, String> {
    let sel = selector(subject, direction, namespace, name);
    let from = now.saturating_sub(range_secs);
    // The tick in progress is left out: it would show as a drop to zero.
    let (first, last) = (tick_of(from), tick_of(now).saturating_sub(1));
    let ticks: Vec<u64> = (first..=last).collect();
    let index = |tick: u32| {
        usize::try_from(u64::from(tick).checked_sub(first)?)
            .ok()
            .filter(|i| *i < ticks.len())
    };
    let requests = metrics.request_ticks(from, now, &sel).await?;
    let tcp = metrics.tcp_ticks(from, now, &sel).await?;
    let n = ticks.len();
    let empty = || vec![None::<f64>; n];

    // Per group and tick: all requests summed; per (group, code): the count.
    let mut by_group: BTreeMap<String, Vec<RequestRow>> = BTreeMap::new();
    let mut errors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut by_code: BTreeMap<(String, u16), Vec<f64>> = BTreeMap::new();
    for (key, rows) in &requests {
        let code = &key.code;
        let g = group(subject, direction, &key.edge);
        let sums = by_group
            .entry(g.clone())
            .or_insert_with(|| vec![RequestRow::default(); n]);
        let errs = errors.entry(g.clone()).or_insert_with(|| vec![0.0; n]);
        let codes = by_code.entry((g, *code)).or_insert_with(|| vec![0.0; n]);
        for r in rows {
            let Some(i) = index(r.tick) else { continue };
            sums[i].add(r);
            codes[i] += f64::from(r.requests);
            if key.is_error() {
                errs[i] += f64::from(r.requests);
            }
        }
    }
    let per_second = |x: f64| Some(round3(x / TICK_SECS as f64));
    let series =
        |label: String, values: Vec<Option<f64>>| json!({"label": label, "values": values});

    let request_series: Vec<Value> = by_code
        .iter()
        .map(|((g, code), counts)| {
            let code = if *code == 0 {
                "no response".to_string()
            } else {
                code.to_string()
            };
            series(
                format!("{g} {code}"),
                counts
                    .iter()
                    .map(|c| if *c > 0.0 { per_second(*c) } else { Some(0.0) })
                    .collect(),
            )
        })
        .collect();
    let mut success = Vec::new();
    let mut latency = Vec::new();
    let mut request_size = Vec::new();
    let mut response_size = Vec::new();
    for (g, rows) in &by_group {
        let errs = &errors[g];
        success.push(series(
            g.clone(),
            rows.iter()
                .zip(errs)
                .map(|(r, e)| {
                    (r.requests > 0.0).then(|| round3(100.0 * (1.0 - e / f64::from(r.requests))))
                })
                .collect(),
        ));
        for (q, label) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
            latency.push(series(
                format!("{g} {label}"),
                rows.iter()
                    .map(|r| r.duration_quantile(q).map(round3))
                    .collect(),
            ));
        }
        let mean = |sum: fn(&RequestRow) -> f32| -> Vec<Option<f64>> {
            rows.iter()
                .map(|r| {
                    (r.requests > 0.0).then(|| round3(f64::from(sum(r)) / f64::from(r.requests)))
                })
                .collect()
        };
        request_size.push(series(format!("{g} mean"), mean(|r| r.request_bytes)));
        response_size.push(series(format!("{g} mean"), mean(|r| r.response_bytes)));
    }

    let mut tcp_bytes: Pairs = BTreeMap::new();
    let mut tcp_conns: Pairs = BTreeMap::new();
    for (key, rows) in &tcp {
        let g = group(subject, direction, key);
        let bytes = tcp_bytes
            .entry(g.clone())
            .or_insert_with(|| (empty(), empty()));
        for r in rows {
            let Some(i) = index(r.tick) else { continue };
            let add = |slot: &mut Option<f64>, v: f32| {
                *slot = Some(slot.unwrap_or(0.0) + round3(f64::from(v) / TICK_SECS as f64))
            };
            add(&mut bytes.0[i], r.sent);
            add(&mut bytes.1[i], r.received);
        }
        let conns = tcp_conns.entry(g).or_insert_with(|| (empty(), empty()));
        for r in rows {
            let Some(i) = index(r.tick) else { continue };
            let add = |slot: &mut Option<f64>, v: f32| {
                *slot = Some(slot.unwrap_or(0.0) + round3(f64::from(v) / TICK_SECS as f64))
            };
            add(&mut conns.0[i], r.opened);
            add(&mut conns.1[i], r.closed);
        }
    }
    let pairs = |m: Pairs, a: &str, b: &str| -> Vec<Value> {
        m.into_iter()
            .flat_map(|(g, (x, y))| [series(format!("{g} {a}"), x), series(format!("{g} {b}"), y)])
            .collect()
    };
    let panel = |id: &str, title: &str, unit: &str, series: Vec<Value>| json!({"id": id, "title": title, "unit": unit, "series": series});
    Ok(json!({
        "step": TICK_SECS,
        "timestamps": ticks.iter().map(|t| t * TICK_SECS).collect::<Vec<_>>(),
        "source": metrics.describe(),
        "panels": [
            panel("requests", "Request rate by response code", "req/s", request_series),
            panel("success", "Success rate (non-5xx)", "%", success),
            panel("latency", "Request duration", "ms", latency),
            panel("request_size", "Request size", "B", request_size),
            panel("response_size", "Response size", "B", response_size),
            panel("tcp_bytes", "TCP bytes", "B/s", pairs(tcp_bytes, "sent", "received")),
            panel("tcp_connections", "TCP connections", "conn/s", pairs(tcp_conns, "opened", "closed")),
        ],
    }))
}

/// Two series (sent and received, opened and closed) per group.
type Pairs = BTreeMap<String, (Vec<Option<f64>>, Vec<Option<f64>>)>;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
