//! Where the dashboard's numbers come from: the control plane's own [`History`], or a
//! real Prometheus (`--prometheus URL`) asked in PromQL. Both answer with the same rows,
//! so the graph and the charts are computed by one code path whichever is in use.

use std::sync::Arc;

use crate::history::{
    Edge, History, Labels, Reporter, RequestKey, RequestRow, Row, TICK_SECS, TcpKey, TcpRow,
    tick_of,
};

/// Which series a query wants: a reporter and equal labels (Istio's label names).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Only this reporter's samples.
    pub reporter: Option<Reporter>,
    /// `label = value` pairs, all of which must hold.
    pub equal: Vec<(&'static str, String)>,
}

impl Selector {
    fn peer_label<'k>(key_source: &'k crate::history::Peer, field: &str) -> Option<&'k str> {
        Some(match field {
            "workload" => &key_source.workload,
            "workload_namespace" => &key_source.namespace,
            "canonical_service" => &key_source.service,
            "version" => &key_source.version,
            _ => return None,
        })
    }

    /// The value `edge` has for one of Istio's label names.
    fn value<'k>(label: &str, edge: &'k Edge) -> Option<&'k str> {
        match label {
            "destination_service_name" => Some(&edge.service),
            "destination_service_namespace" => Some(&edge.service_namespace),
            _ => match label.strip_prefix("source_") {
                Some(field) => Self::peer_label(&edge.source, field),
                None => Self::peer_label(&edge.destination, label.strip_prefix("destination_")?),
            },
        }
    }

    /// True when a series of `edge` (a request series' edge, or a TCP series) is selected.
    pub fn keeps(&self, edge: &Edge) -> bool {
        self.reporter.is_none_or(|r| r == edge.reporter)
            && self
                .equal
                .iter()
                .all(|(label, want)| Self::value(label, edge) == Some(want.as_str()))
    }

    /// The selector as PromQL label matchers.
    fn promql(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.reporter {
            parts.push(format!(
                "reporter=\"{}\"",
                match r {
                    Reporter::Source => "source",
                    Reporter::Destination => "destination",
                }
            ));
        }
        for (label, value) in &self.equal {
            // Prometheus' label names for what the history calls canonical_service.
            parts.push(format!(
                "{label}=\"{}\"",
                value.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        }
        parts.join(",")
    }
}

/// The metrics source in use.
#[derive(Debug, Clone)]
pub enum MetricsSource {
    /// The control plane's own history.
    Local(Arc<History>),
    /// A Prometheus server.
    Prometheus(Arc<Prometheus>),
}

/// Rows per series.
pub type RequestSeries = Vec<(RequestKey, Vec<RequestRow>)>;
/// TCP rows per series.
pub type TcpSeries = Vec<(TcpKey, Vec<TcpRow>)>;

impl MetricsSource {
    /// What it is, for the page (`weft` or the Prometheus URL).
    pub fn describe(&self) -> String {
        match self {
            MetricsSource::Local(_) => "weft control (in-memory history)".into(),
            MetricsSource::Prometheus(p) => format!("Prometheus at {}", p.base),
        }
    }

    /// Each selected request series summed over the last `window_secs` (one row each).
    pub async fn request_totals(
        &self,
        now: u64,
        window_secs: u64,
        sel: &Selector,
    ) -> Result<Vec<(RequestKey, RequestRow)>, String> {
        match self {
            MetricsSource::Local(h) => {
                // Complete ticks only: the one in progress would make the rate jitter.
                let to = tick_of(now).saturating_sub(1);
                let from = (to + 1).saturating_sub((window_secs / TICK_SECS).max(1));
                Ok(h.request_rows(from, to, |k| sel.keeps(&k.edge))
                    .into_iter()
                    .map(|(k, rows)| {
                        let mut sum = RequestRow::default();
                        rows.iter().for_each(|r| sum.add(r));
                        (k, sum)
                    })
                    .collect())
            }
            MetricsSource::Prometheus(p) => {
                p.requests(now, window_secs, None, sel).await.map(|series| {
                    series
                        .into_iter()
                        .filter_map(|(k, mut rows)| rows.pop().map(|r| (k, r)))
                        .collect()
                })
            }
        }
    }

    /// Each selected request series per tick from `from` to `to` (Unix seconds).
    pub async fn request_ticks(
        &self,
        from: u64,
        to: u64,
        sel: &Selector,
    ) -> Result<RequestSeries, String> {
        match self {
            MetricsSource::Local(h) => {
                Ok(h.request_rows(tick_of(from), tick_of(to), |k| sel.keeps(&k.edge)))
            }
            MetricsSource::Prometheus(p) => p.requests(to, TICK_SECS, Some(from), sel).await,
        }
    }

    /// Each selected TCP series per tick from `from` to `to` (Unix seconds).
    pub async fn tcp_ticks(&self, from: u64, to: u64, sel: &Selector) -> Result<TcpSeries, String> {
        match self {
            MetricsSource::Local(h) => Ok(h.tcp_rows(tick_of(from), tick_of(to), |k| sel.keeps(k))),
            MetricsSource::Prometheus(p) => p.tcp(from, to, sel).await,
        }
    }
}

/// The labels every query keeps (what [`RequestKey`] holds).
const PEER_LABELS: &str = "reporter,source_workload,source_workload_namespace,source_app,source_canonical_service,source_version,destination_workload,destination_workload_namespace,destination_app,destination_canonical_service,destination_version,destination_service_name,destination_service_namespace,connection_security_policy";

/// One series of a PromQL answer: its labels and its (time, value) points.
type QueryResult = (Metric, Vec<(u64, f64)>);
/// A series' labels in a PromQL answer.
type Metric = serde_json::Map<String, serde_json::Value>;

/// A Prometheus server's HTTP API.
#[derive(Debug)]
pub struct Prometheus {
    /// `host:port`.
    authority: String,
    /// Path prefix (`/prometheus` behind a proxy), without the trailing slash.
    prefix: String,
    /// The URL as given.
    pub base: String,
}

impl Prometheus {
    /// The server at `url` (`http://host:port[/prefix]`).
    pub fn new(url: &str) -> Result<Prometheus, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("--prometheus {url:?}: give an http:// URL (like http://127.0.0.1:9090)")
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("--prometheus {url:?}: no host"));
        }
        Ok(Prometheus {
            authority: authority.to_string(),
            prefix: prefix.to_string(),
            base: url.to_string(),
        })
    }

    /// Runs `query`: an instant query at `at`, or a range query from `from` to `at` in
    /// steps of a tick. Each result: its labels and its (time, value) points.
    async fn query(
        &self,
        query: String,
        at: u64,
        from: Option<u64>,
    ) -> Result<Vec<QueryResult>, String> {
        let path = match from {
            // Prometheus' own now: ours, in whole seconds, would miss its latest samples.
            None => format!(
                "{}/api/v1/query?query={}",
                self.prefix,
                percent_encode(&query)
            ),
            Some(from) => format!(
                "{}/api/v1/query_range?query={}&start={}&end={}&step={TICK_SECS}",
                self.prefix,
                percent_encode(&query),
                tick_of(from) * TICK_SECS,
                tick_of(at) * TICK_SECS
            ),
        };
        let text = crate::history::scrape::fetch(&self.authority, &path)
            .await
            .map_err(|e| format!("Prometheus at {}: {e}", self.base))?;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("Prometheus at {}: not JSON: {e}", self.base))?;
        if answer["status"] != "success" {
            return Err(format!(
                "Prometheus at {}: {}",
                self.base,
                answer["error"].as_str().unwrap_or("query failed")
            ));
        }
        let point = |p: &serde_json::Value| -> Option<(u64, f64)> {
            let t = p.get(0)?.as_f64()? as u64;
            let v: f64 = p.get(1)?.as_str()?.parse().ok()?;
            v.is_finite().then_some((t, v))
        };
        Ok(answer["data"]["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let metric = r["metric"].as_object()?.clone();
                let points = match (r.get("value"), r.get("values")) {
                    (Some(v), _) => point(v).into_iter().collect(),
                    (_, Some(vs)) => vs.as_array()?.iter().filter_map(point).collect(),
                    _ => Vec::new(),
                };
                Some((metric, points))
            })
            .collect())
    }

    fn sample<'m>(
        metric: &'m serde_json::Map<String, serde_json::Value>,
    ) -> crate::history::exposition::Sample<'m> {
        crate::history::exposition::Sample {
            name: "",
            series: "",
            labels: metric
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), std::borrow::Cow::Borrowed(v.as_str()?))))
                .collect(),
            value: 0.0,
        }
    }

    /// Request rows: the requests of the last `window` seconds before `at` (an instant
    /// query), or of each tick from `from` (a range query). Counted as a per-second
    /// `rate` over at least [`RATE_WINDOW`] times the seconds wanted, as Grafana's and
    /// Kiali's queries do, so a window shorter than a few scrapes still has two samples.
    async fn requests(
        &self,
        at: u64,
        window: u64,
        from: Option<u64>,
        sel: &Selector,
    ) -> Result<RequestSeries, String> {
        // Strings shared within this answer only: nothing outlives the query.
        let labels = Labels::default();
        let m = sel.promql();
        let by = format!("{PEER_LABELS},request_protocol,response_code,response_flags");
        let (range, times) = match from {
            None => (window.max(RATE_WINDOW), window),
            Some(_) => (RATE_WINDOW, TICK_SECS),
        };
        let inc = |metric: &str, extra: &str| {
            format!("sum by ({by}{extra}) (rate({metric}{{{m}}}[{range}s])) * {times}")
        };
        let (requests, buckets, duration, request_bytes, response_bytes) = futures_util::try_join!(
            self.query(inc("istio_requests_total", ""), at, from),
            self.query(
                inc("istio_request_duration_milliseconds_bucket", ",le"),
                at,
                from
            ),
            self.query(inc("istio_request_duration_milliseconds_sum", ""), at, from),
            self.query(inc("istio_request_bytes_sum", ""), at, from),
            self.query(inc("istio_response_bytes_sum", ""), at, from),
        )?;
        let mut series: std::collections::HashMap<
            RequestKey,
            std::collections::BTreeMap<u64, RequestRow>,
        > = Default::default();
        // A row for every point of the request count; the other queries fill them in.
        for (metric, points) in &requests {
            let Some(key) = labels.request_key(&Self::sample(metric)) else {
                continue;
            };
            let rows = series.entry(key).or_default();
            for (t, _) in points {
                rows.entry(*t).or_insert(RequestRow {
                    tick: point_tick(*t, from),
                    ..RequestRow::default()
                });
            }
        }
        let mut fill = |results: &[QueryResult], set: &dyn Fn(&mut RequestRow, f64, &Metric)| {
            for (metric, points) in results {
                let Some(key) = labels.request_key(&Self::sample(metric)) else {
                    continue;
                };
                let Some(rows) = series.get_mut(&key) else {
                    continue;
                };
                for (t, v) in points {
                    if let Some(r) = rows.get_mut(t) {
                        set(r, *v, metric);
                    }
                }
            }
        };
        fill(&requests, &|r, v, _| r.requests += v as f32);
        fill(&duration, &|r, v, _| r.duration_ms += v as f32);
        fill(&request_bytes, &|r, v, _| r.request_bytes += v as f32);
        fill(&response_bytes, &|r, v, _| r.response_bytes += v as f32);
        // Cumulative `le` counts first, then differences between neighbours.
        fill(&buckets, &|r, v, metric| {
            let le = match metric.get("le").and_then(|l| l.as_str()) {
                Some("+Inf") => f64::INFINITY,
                Some(l) => l.parse().unwrap_or(f64::NAN),
                None => f64::NAN,
            };
            if let Some(i) = crate::history::BUCKETS.iter().position(|b| *b == le) {
                r.duration[i] += v as f32;
            }
        });
        Ok(series
            .into_iter()
            .map(|(k, rows)| {
                let rows = rows
                    .into_values()
                    .map(|mut r| {
                        // A bound missing from the answer holds what the one below holds
                        // (cumulative counts never fall); +Inf holds every request.
                        let mut cumulative = r.duration;
                        for i in 1..20 {
                            cumulative[i] = cumulative[i].max(cumulative[i - 1]);
                        }
                        cumulative[19] = cumulative[19].max(r.requests);
                        r.duration[0] = cumulative[0];
                        for i in (1..20).rev() {
                            r.duration[i] = (cumulative[i] - cumulative[i - 1]).max(0.0);
                        }
                        r
                    })
                    .filter(|r| r.requests > 0.0)
                    .collect::<Vec<_>>();
                (k, rows)
            })
            .filter(|(_, rows)| !rows.is_empty())
            .collect())
    }

    async fn tcp(&self, from: u64, to: u64, sel: &Selector) -> Result<TcpSeries, String> {
        let labels = Labels::default();
        let m = sel.promql();
        let inc = |metric: &str| {
            format!("sum by ({PEER_LABELS}) (rate({metric}{{{m}}}[{RATE_WINDOW}s])) * {TICK_SECS}")
        };
        let (sent, received, opened, closed) = futures_util::try_join!(
            self.query(inc("istio_tcp_sent_bytes_total"), to, Some(from)),
            self.query(inc("istio_tcp_received_bytes_total"), to, Some(from)),
            self.query(inc("istio_tcp_connections_opened_total"), to, Some(from)),
            self.query(inc("istio_tcp_connections_closed_total"), to, Some(from)),
        )?;
        let mut series: std::collections::HashMap<TcpKey, std::collections::BTreeMap<u64, TcpRow>> =
            Default::default();
        for (slot, results) in [sent, received, opened, closed].iter().enumerate() {
            for (metric, points) in results {
                let Some(key) = labels.tcp_key(&Self::sample(metric)) else {
                    continue;
                };
                let rows = series.entry(key).or_default();
                for (t, v) in points {
                    let r = rows.entry(*t).or_insert(TcpRow {
                        tick: point_tick(*t, Some(from)),
                        ..TcpRow::default()
                    });
                    let v = *v as f32;
                    match slot {
                        0 => r.sent += v,
                        1 => r.received += v,
                        2 => r.opened += v,
                        _ => r.closed += v,
                    }
                }
            }
        }
        Ok(series
            .into_iter()
            .map(|(k, rows)| (k, rows.into_values().collect()))
            .collect())
    }
}

/// The shortest range a PromQL `rate` is taken over, in seconds: four scrapes at
/// Istio's default 15 s interval.
const RATE_WINDOW: u64 = 60;

/// The tick a PromQL point stands for: a range query's point at `t` counts the seconds
/// before `t`, which is the tick before the one `t` starts.
fn point_tick(t: u64, range: Option<u64>) -> u32 {
    let tick = match range {
        Some(_) => tick_of(t).saturating_sub(1),
        None => tick_of(t),
    };
    u32::try_from(tick).unwrap_or(u32::MAX)
}

/// `text` as a URL query value.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_promql_matchers() {
        let sel = Selector {
            reporter: Some(Reporter::Destination),
            equal: vec![("destination_service_name", "a\"b".into())],
        };
        assert_eq!(
            sel.promql(),
            "reporter=\"destination\",destination_service_name=\"a\\\"b\""
        );
        assert_eq!(percent_encode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
    }

    #[test]
    fn prometheus_urls_must_be_http() {
        assert!(Prometheus::new("127.0.0.1:9090").is_err());
        let p = Prometheus::new("http://127.0.0.1:9090/prom/").expect("parses");
        assert_eq!(
            (p.authority.as_str(), p.prefix.as_str()),
            ("127.0.0.1:9090", "/prom")
        );
    }
}
