//! Istio's standard metrics, in the Prometheus text format.
//!
//! A request's labels resolve to one series: the key is built from values the proxy
//! already holds (`Arc`s of the two workloads, the service name, the status), looked up in
//! a copy-on-write map that readers load without a lock; only a new label combination
//! takes the insert lock. Series are bounded ([`MAX_SERIES`]): past it, requests are
//! counted in `weft_metrics_series_overflow_total` instead of a new series.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use weft_model::service::WorkloadInfo;

use weft_api::telemetry::IstioMetric;
use weft_model::telemetry::{MetricOverride, MetricsPolicy, TagChange};

use super::policy::TelemetryPolicy;
use crate::flags::ResponseFlags;

/// Envoy's default histogram bounds, which Istio uses for its three histograms
/// (milliseconds for durations, bytes for sizes).
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Most label combinations kept (HTTP and TCP each).
pub const MAX_SERIES: usize = 5_000;

/// Which side of the call reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reporter {
    /// The client's sidecar (outbound) or a gateway.
    Source,
    /// The server's sidecar (inbound).
    Destination,
}

impl Reporter {
    fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// The labels both HTTP and TCP series share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peers {
    /// Who reported.
    pub reporter: Reporter,
    /// The calling workload.
    pub source: Arc<WorkloadInfo>,
    /// The called workload.
    pub destination: Arc<WorkloadInfo>,
    /// The destination service's host (`unknown` when none).
    pub service: Arc<str>,
    /// `connection_security_policy`: `unknown` at the source, `none` (plaintext) or
    /// `mutual_tls` at the destination.
    pub security: &'static str,
}

/// One HTTP series' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// Shared labels.
    pub peers: Peers,
    /// `http`, `grpc` (`request_protocol`).
    pub protocol: &'static str,
    /// Response status.
    pub code: u16,
    /// gRPC status, when the response carried one.
    pub grpc: Option<u16>,
    /// Response flags.
    pub flags: ResponseFlags,
    /// The values of a Telemetry's tagOverrides UPSERT expressions for this request, by
    /// expression text.
    pub extra: Vec<(Arc<str>, String)>,
}

/// One histogram: cumulative counts are computed when rendered.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    /// Sum in thousandths of the unit (microseconds, millibytes), to stay integral.
    sum_milli: AtomicU64,
    /// Values observed.
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = BUCKETS.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_milli
            .fetch_add((value * 1000.0) as u64, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct RequestSeries {
    count: AtomicU64,
    duration_ms: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

#[derive(Debug, Default)]
struct TcpSeries {
    opened: AtomicU64,
    closed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// Series keyed by their labels. foldhash, seeded per process, instead of SipHash: the
/// lookup runs once per request and hashes every label (bench/callgrind: SipHash was about
/// 5 % of a request's instructions).
type SeriesMap<K, V> = HashMap<K, Arc<V>, foldhash::fast::RandomState>;

/// A bounded map of series, read without locks.
#[derive(Debug)]
struct Family<K, V> {
    map: ArcSwap<SeriesMap<K, V>>,
    insert: Mutex<()>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Default> Family<K, V> {
    fn new() -> Self {
        Family {
            map: ArcSwap::from_pointee(SeriesMap::default()),
            insert: Mutex::new(()),
        }
    }

    /// The series of `key`, created when new; `None` once the family is full.
    fn get(&self, key: &K) -> Option<Arc<V>> {
        if let Some(s) = self.map.load().get(key) {
            return Some(s.clone());
        }
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load();
        if let Some(s) = current.get(key) {
            return Some(s.clone());
        }
        if current.len() >= MAX_SERIES {
            return None;
        }
        let mut next = SeriesMap::clone(&current);
        let series = Arc::new(V::default());
        next.insert(key.clone(), series.clone());
        self.map.store(Arc::new(next));
        Some(series)
    }

    fn sorted(&self) -> Vec<(K, Arc<V>)>
    where
        K: Ord,
    {
        let mut all: Vec<(K, Arc<V>)> = self
            .map
            .load()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The proxy's Istio metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestKey, RequestSeries>,
    tcp: Family<Peers, TcpSeries>,
    overflow: AtomicU64,
    strict_refused: AtomicU64,
    connection_overflow: AtomicU64,
    idle_timeouts: AtomicU64,
    header_timeouts: AtomicU64,
    handed_back: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::new(),
            tcp: Family::new(),
            overflow: AtomicU64::new(0),
            strict_refused: AtomicU64::new(0),
            connection_overflow: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            handed_back: AtomicU64::new(0),
        }
    }
}

/// One finished request, as the metrics need it.
#[derive(Debug)]
pub struct RequestSample {
    /// Labels.
    pub key: RequestKey,
    /// From the request's arrival to the end of its response.
    pub duration: Duration,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
}

impl Metrics {
    /// Counts a plaintext connection refused because PeerAuthentication is STRICT.
    pub fn strict_refused(&self) {
        self.strict_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed on accept because its listener was at `--max-connections`.
    pub fn connection_overflow(&self) {
        self.connection_overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a downstream connection closed after the idle timeout.
    pub fn idle_timeout(&self) {
        self.idle_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a downstream connection closed because a request's headers took longer
    /// than the header timeout.
    pub fn header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP/1.1 keep-alive connection taken back from the codec between
    /// requests, to wait for its next request holding only its socket.
    pub fn handed_back(&self) {
        self.handed_back.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one request in the metrics `policy` leaves on.
    pub fn request(&self, sample: &RequestSample, policy: &MetricsPolicy) {
        let Some(s) = self.requests.get(&sample.key) else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if policy.enabled(IstioMetric::RequestCount) {
            s.count.fetch_add(1, Ordering::Relaxed);
        }
        if policy.enabled(IstioMetric::RequestDuration) {
            s.duration_ms
                .observe(sample.duration.as_secs_f64() * 1000.0);
        }
        if policy.enabled(IstioMetric::RequestSize) {
            s.request_bytes.observe(sample.request_bytes as f64);
        }
        if policy.enabled(IstioMetric::ResponseSize) {
            s.response_bytes.observe(sample.response_bytes as f64);
        }
    }

    /// Counts a TCP connection opened, when `policy` leaves the count on.
    pub fn tcp_opened(&self, peers: &Peers, policy: &MetricsPolicy) {
        if !policy.enabled(IstioMetric::TcpOpenedConnections) {
            return;
        }
        match self.tcp.get(peers) {
            Some(s) => {
                s.opened.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a TCP connection closed after `sent` bytes to the client and `received` from
    /// it, in the metrics `policy` leaves on.
    pub fn tcp_closed(&self, peers: &Peers, sent: u64, received: u64, policy: &MetricsPolicy) {
        let on = |m: IstioMetric| policy.enabled(m);
        let any = [
            IstioMetric::TcpClosedConnections,
            IstioMetric::TcpSentBytes,
            IstioMetric::TcpReceivedBytes,
        ]
        .into_iter()
        .any(on);
        if !any {
            return;
        }
        if let Some(s) = self.tcp.get(peers) {
            if on(IstioMetric::TcpClosedConnections) {
                s.closed.fetch_add(1, Ordering::Relaxed);
            }
            if on(IstioMetric::TcpSentBytes) {
                s.sent.fetch_add(sent, Ordering::Relaxed);
            }
            if on(IstioMetric::TcpReceivedBytes) {
                s.received.fetch_add(received, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text exposition of every series, as the Telemetry `policy` in force
    /// shapes it: a disabled metric is left out, labels are removed or set, and series
    /// that a removed label no longer tells apart are added together.
    pub fn render(&self, out: &mut String, policy: &TelemetryPolicy) {
        let requests = self.requests.sorted();
        let on = |metric: IstioMetric| {
            policy.client.metrics.enabled(metric) || policy.server.metrics.enabled(metric)
        };
        let side = |r: Reporter| policy.side(r == Reporter::Source);
        // Each series' labels are formatted once for the families no override changes.
        let plain: Vec<String> = requests.iter().map(|(k, _)| request_labels(k)).collect();
        let labels_of = |i: usize, k: &RequestKey, metric: IstioMetric| match side(k.peers.reporter)
            .metric(metric)
        {
            Some(o) if !o.tags.is_empty() => {
                let mut pairs = peer_label_pairs(&k.peers);
                pairs.extend(request_only_pairs(k));
                overridden(pairs, o, &k.extra)
            }
            _ => plain[i].clone(),
        };
        let count = IstioMetric::RequestCount;
        if on(count) {
            family(
                out,
                "istio_requests_total",
                "counter",
                "Requests, by source and destination workload, service, and response.",
            );
            let mut series = Merged::default();
            for (i, (k, s)) in requests.iter().enumerate() {
                // A series only the disabled metric saw is not exported.
                let n = s.count.load(Ordering::Relaxed);
                if n > 0 && side(k.peers.reporter).metrics.enabled(count) {
                    series.counter(labels_of(i, k, count), n);
                }
            }
            for (labels, n) in series.counters() {
                let _ = writeln!(out, "istio_requests_total{{{labels}}} {n}");
            }
        }
        for (metric, name, help, pick) in [
            (
                IstioMetric::RequestDuration,
                "istio_request_duration_milliseconds",
                "Request duration, from the request's arrival to the end of the response.",
                (|s: &RequestSeries| &s.duration_ms) as fn(&RequestSeries) -> &Histogram,
            ),
            (
                IstioMetric::RequestSize,
                "istio_request_bytes",
                "Request body sizes.",
                |s: &RequestSeries| &s.request_bytes,
            ),
            (
                IstioMetric::ResponseSize,
                "istio_response_bytes",
                "Response body sizes.",
                |s: &RequestSeries| &s.response_bytes,
            ),
        ] {
            if !on(metric) {
                continue;
            }
            family(out, name, "histogram", help);
            let mut series = Merged::default();
            for (i, (k, s)) in requests.iter().enumerate() {
                let h = pick(s);
                if h.count.load(Ordering::Relaxed) > 0
                    && side(k.peers.reporter).metrics.enabled(metric)
                {
                    series.histogram(labels_of(i, k, metric), h);
                }
            }
            for (labels, h) in series.histograms() {
                histogram(out, name, labels, h);
            }
        }
        let tcp = self.tcp.sorted();
        let tcp_plain: Vec<String> = tcp.iter().map(|(k, _)| peer_labels(k)).collect();
        for (metric, name, help, pick) in [
            (
                IstioMetric::TcpOpenedConnections,
                "istio_tcp_connections_opened_total",
                "TCP connections opened.",
                (|s: &TcpSeries| &s.opened) as fn(&TcpSeries) -> &AtomicU64,
            ),
            (
                IstioMetric::TcpClosedConnections,
                "istio_tcp_connections_closed_total",
                "TCP connections closed.",
                |s: &TcpSeries| &s.closed,
            ),
            (
                IstioMetric::TcpSentBytes,
                "istio_tcp_sent_bytes_total",
                "Bytes sent to the client on TCP connections (counted when they close).",
                |s: &TcpSeries| &s.sent,
            ),
            (
                IstioMetric::TcpReceivedBytes,
                "istio_tcp_received_bytes_total",
                "Bytes received from the client on TCP connections (counted when they close).",
                |s: &TcpSeries| &s.received,
            ),
        ] {
            if !on(metric) {
                continue;
            }
            family(out, name, "counter", help);
            let mut series = Merged::default();
            for (i, (k, s)) in tcp.iter().enumerate() {
                let side = side(k.reporter);
                if !side.metrics.enabled(metric) {
                    continue;
                }
                let tail = [
                    ("request_protocol".to_string(), "tcp".to_string()),
                    ("response_flags".to_string(), "-".to_string()),
                ];
                let labels = match side.metric(metric) {
                    Some(o) if !o.tags.is_empty() => {
                        let mut pairs = peer_label_pairs(k);
                        pairs.extend(tail);
                        overridden(pairs, o, &[])
                    }
                    _ => format!(
                        "{},request_protocol=\"tcp\",response_flags=\"-\"",
                        tcp_plain[i]
                    ),
                };
                series.counter(labels, pick(s).load(Ordering::Relaxed));
            }
            for (labels, n) in series.counters() {
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }
        family(
            out,
            "weft_metrics_series_overflow_total",
            "counter",
            "Requests and connections not recorded in a series because the series limit was reached.",
        );
        let _ = writeln!(
            out,
            "weft_metrics_series_overflow_total {}",
            self.overflow.load(Ordering::Relaxed)
        );
        family(
            out,
            "weft_inbound_plaintext_refused_total",
            "counter",
            "Inbound connections closed because they were not mesh mTLS and PeerAuthentication is STRICT.",
        );
        let _ = writeln!(
            out,
            "weft_inbound_plaintext_refused_total {}",
            self.strict_refused.load(Ordering::Relaxed)
        );
        family(
            out,
            "weft_downstream_cx_overflow_total",
            "counter",
            "Connections closed on accept because their listener had --max-connections open (Envoy's downstream_cx_overflow).",
        );
        let _ = writeln!(
            out,
            "weft_downstream_cx_overflow_total {}",
            self.connection_overflow.load(Ordering::Relaxed)
        );
        family(
            out,
            "weft_downstream_cx_idle_timeout_total",
            "counter",
            "Downstream connections closed after moving no byte for the idle timeout (Envoy's downstream_cx_idle_timeout).",
        );
        let _ = writeln!(
            out,
            "weft_downstream_cx_idle_timeout_total {}",
            self.idle_timeouts.load(Ordering::Relaxed)
        );
        family(
            out,
            "weft_downstream_rq_header_timeout_total",
            "counter",
            "Downstream connections closed because a request's headers took longer than --request-header-timeout.",
        );
        let _ = writeln!(
            out,
            "weft_downstream_rq_header_timeout_total {}",
            self.header_timeouts.load(Ordering::Relaxed)
        );
        family(
            out,
            "weft_downstream_cx_handed_back_total",
            "counter",
            "HTTP/1.1 keep-alive connections taken back from the HTTP codec between requests (its buffers freed), to wait for their next request holding only the socket.",
        );
        let _ = writeln!(
            out,
            "weft_downstream_cx_handed_back_total {}",
            self.handed_back.load(Ordering::Relaxed)
        );
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Summed) {
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(&h.buckets) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let count = h.count;
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let sum = h.sum_milli as f64 / 1000.0;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// A histogram's values read once (and added up across series that render alike).
#[derive(Debug, Default)]
struct Summed {
    buckets: [u64; BUCKETS.len()],
    sum_milli: u64,
    count: u64,
}

/// Series by their rendered labels, in first-seen order: series a removed label no
/// longer tells apart become one.
#[derive(Debug, Default)]
struct Merged {
    index: HashMap<String, usize>,
    counters: Vec<(String, u64)>,
    histograms: Vec<(String, Summed)>,
}

impl Merged {
    fn slot(&mut self, labels: String, len: usize) -> (usize, bool) {
        match self.index.get(&labels) {
            Some(i) => (*i, false),
            None => {
                self.index.insert(labels, len);
                (len, true)
            }
        }
    }

    fn counter(&mut self, labels: String, n: u64) {
        let (i, new) = self.slot(labels.clone(), self.counters.len());
        if new {
            self.counters.push((labels, 0));
        }
        self.counters[i].1 += n;
    }

    fn histogram(&mut self, labels: String, h: &Histogram) {
        let (i, new) = self.slot(labels.clone(), self.histograms.len());
        if new {
            self.histograms.push((labels, Summed::default()));
        }
        let s = &mut self.histograms[i].1;
        for (sum, b) in s.buckets.iter_mut().zip(&h.buckets) {
            *sum += b.load(Ordering::Relaxed);
        }
        s.sum_milli += h.sum_milli.load(Ordering::Relaxed);
        s.count += h.count.load(Ordering::Relaxed);
    }

    fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(l, n)| (l.as_str(), *n))
    }

    fn histograms(&self) -> impl Iterator<Item = (&str, &Summed)> {
        self.histograms.iter().map(|(l, h)| (l.as_str(), h))
    }
}

/// `pairs` (name, escaped value) changed by `o`'s tagOverrides, rendered: REMOVE drops a
/// label, UPSERT sets it to the request's value in `extra`. A series without one (recorded
/// before the override, or a TCP connection, which has no request to evaluate) keeps its
/// labels as they were.
fn overridden(
    mut pairs: Vec<(String, String)>,
    o: &MetricOverride,
    extra: &[(Arc<str>, String)],
) -> String {
    for (tag, change) in &o.tags {
        match change {
            TagChange::Remove => pairs.retain(|(name, _)| name != tag),
            TagChange::Upsert(expr) => {
                let Some((_, value)) = extra.iter().find(|(text, _)| &**text == expr.as_str())
                else {
                    continue;
                };
                let value = escape(value).into_owned();
                match pairs.iter_mut().find(|(name, _)| name == tag) {
                    Some(pair) => pair.1 = value,
                    None => pairs.push((tag.clone(), value)),
                }
            }
        }
    }
    pairs
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect::<Vec<_>>()
        .join(",")
}

fn peer_label_pairs(p: &Peers) -> Vec<(String, String)> {
    let (src, dst) = (&p.source, &p.destination);
    let (service_name, service_namespace) = match p.service.split_once('.') {
        Some((name, rest)) => (name, rest.split('.').next().unwrap_or("unknown")),
        None => (&*p.service, "unknown"),
    };
    [
        ("reporter", p.reporter.as_str().to_string()),
        ("source_workload", src.name.clone()),
        ("source_workload_namespace", src.namespace.clone()),
        ("source_principal", src.principal()),
        ("source_app", src.app.clone()),
        ("source_version", src.version.clone()),
        ("source_canonical_service", src.canonical_service.clone()),
        ("source_canonical_revision", src.canonical_revision.clone()),
        ("destination_workload", dst.name.clone()),
        ("destination_workload_namespace", dst.namespace.clone()),
        ("destination_principal", dst.principal()),
        ("destination_app", dst.app.clone()),
        ("destination_version", dst.version.clone()),
        (
            "destination_canonical_service",
            dst.canonical_service.clone(),
        ),
        (
            "destination_canonical_revision",
            dst.canonical_revision.clone(),
        ),
        ("destination_service", p.service.to_string()),
        ("destination_service_name", service_name.to_string()),
        (
            "destination_service_namespace",
            service_namespace.to_string(),
        ),
        ("connection_security_policy", p.security.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), escape(&v).into_owned()))
    .collect()
}

fn request_only_pairs(k: &RequestKey) -> [(String, String); 4] {
    let grpc = k.grpc.map_or_else(|| "-".to_string(), |g| g.to_string());
    [
        ("request_protocol".into(), k.protocol.to_string()),
        ("response_code".into(), k.code.to_string()),
        ("grpc_response_status".into(), grpc),
        ("response_flags".into(), k.flags.to_string()),
    ]
}

/// A label value escaped as the text format requires.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        std::borrow::Cow::Owned(
            value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// One series' shared labels, rendered (the hot form of [`peer_label_pairs`]).
fn peer_labels(p: &Peers) -> String {
    let (src, dst) = (&p.source, &p.destination);
    let service = escape(&p.service);
    // `name.namespace.svc.cluster.local`: Istio's destination_service_name and _namespace.
    let (service_name, service_namespace) = match p.service.split_once('.') {
        Some((name, rest)) => (name, rest.split('.').next().unwrap_or("unknown")),
        None => (&*p.service, "unknown"),
    };
    format!(
        "reporter=\"{}\",source_workload=\"{}\",source_workload_namespace=\"{}\",source_principal=\"{}\",source_app=\"{}\",source_version=\"{}\",source_canonical_service=\"{}\",source_canonical_revision=\"{}\",destination_workload=\"{}\",destination_workload_namespace=\"{}\",destination_principal=\"{}\",destination_app=\"{}\",destination_version=\"{}\",destination_canonical_service=\"{}\",destination_canonical_revision=\"{}\",destination_service=\"{service}\",destination_service_name=\"{}\",destination_service_namespace=\"{}\",connection_security_policy=\"{}\"",
        p.reporter.as_str(),
        escape(&src.name),
        escape(&src.namespace),
        escape(&src.principal()),
        escape(&src.app),
        escape(&src.version),
        escape(&src.canonical_service),
        escape(&src.canonical_revision),
        escape(&dst.name),
        escape(&dst.namespace),
        escape(&dst.principal()),
        escape(&dst.app),
        escape(&dst.version),
        escape(&dst.canonical_service),
        escape(&dst.canonical_revision),
        escape(service_name),
        escape(service_namespace),
        p.security,
    )
}

fn request_labels(k: &RequestKey) -> String {
    let grpc = k.grpc.map_or_else(|| "-".to_string(), |g| g.to_string());
    format!(
        "{},request_protocol=\"{}\",response_code=\"{}\",grpc_response_status=\"{grpc}\",response_flags=\"{}\"",
        peer_labels(&k.peers),
        k.protocol,
        k.code,
        k.flags,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Peers {
        let labels = [("app".to_string(), "bff".to_string())]
            .into_iter()
            .collect();
        Peers {
            reporter: Reporter::Source,
            source: Arc::new(WorkloadInfo::new("bff-v1", "default", "bff", &labels)),
            destination: Arc::new(WorkloadInfo::unknown()),
            service: "reviews.default.svc.cluster.local".into(),
            security: "unknown",
        }
    }

    #[test]
    fn one_series_per_label_set_with_cumulative_buckets() {
        let m = Metrics::default();
        let key = RequestKey {
            peers: peers(),
            protocol: "http",
            code: 200,
            grpc: None,
            flags: ResponseFlags::NONE,
            extra: Vec::new(),
        };
        for ms in [0.3, 3.0, 3.0, 7000.0] {
            m.request(
                &RequestSample {
                    key: key.clone(),
                    duration: Duration::from_secs_f64(ms / 1000.0),
                    request_bytes: 0,
                    response_bytes: 12,
                },
                &MetricsPolicy::default(),
            );
        }
        let mut out = String::new();
        m.render(&mut out, &TelemetryPolicy::default());
        let labels = request_labels(&key);
        assert!(out.contains(&format!("istio_requests_total{{{labels}}} 4\n")));
        assert!(out.contains(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"0.5\"}} 1\n"
        )));
        assert!(out.contains(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"5\"}} 3\n"
        )));
        assert!(out.contains(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"10000\"}} 4\n"
        )));
        assert!(out.contains(&format!("istio_response_bytes_sum{{{labels}}} 48\n")));
        assert!(labels.contains(
            "destination_service_name=\"reviews\",destination_service_namespace=\"default\""
        ));
        assert!(labels.contains("source_principal=\"cluster.local/ns/default/sa/bff\""));
        assert_eq!(out.matches("istio_requests_total{").count(), 1);
    }

    #[test]
    fn overrides_remove_and_set_labels_and_merge_what_they_no_longer_tell_apart() {
        let m = Metrics::default();
        for (code, flags) in [
            (200, ResponseFlags::NONE),
            (503, ResponseFlags::parse("UF")),
        ] {
            m.request(
                &RequestSample {
                    key: RequestKey {
                        peers: peers(),
                        protocol: "http",
                        code,
                        grpc: None,
                        flags,
                        extra: vec![
                            (Arc::from("'x'"), "shop".into()),
                            (Arc::from("'y'"), "yes".into()),
                        ],
                    },
                    duration: Duration::from_millis(3),
                    request_bytes: 0,
                    response_bytes: 1,
                },
                &MetricsPolicy::default(),
            );
        }
        let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: m, namespace: istio-system}\nspec:\n  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT}\n      tagOverrides: {response_code: {operation: REMOVE}, response_flags: {operation: REMOVE}, team: {value: \"'x'\"}}\n    - match: {metric: REQUEST_SIZE}\n      disabled: true\n    - match: {metric: REQUEST_DURATION}\n      tagOverrides: {team: {value: \"'y'\"}}\n";
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let resources: Vec<_> = loaded.resources.into_iter().map(|l| l.resource).collect();
        let resolved = weft_model::telemetry::resolve(
            &resources,
            &weft_model::ProxyScope::default(),
            &Default::default(),
        );
        let policy = TelemetryPolicy::compile(&resolved).expect("compiles");
        let mut out = String::new();
        m.render(&mut out, &policy);
        let counts: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(counts.len(), 1, "{out}");
        assert!(counts[0].ends_with(",team=\"shop\"} 2"), "{}", counts[0]);
        assert!(!counts[0].contains("response_code"), "{}", counts[0]);
        assert!(!out.contains("istio_request_bytes"), "disabled");
        let durations: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("istio_request_duration_milliseconds_count{"))
            .collect();
        assert_eq!(durations.len(), 2, "response_code kept: {durations:?}");
        assert!(
            durations.iter().all(|l| l.contains("team=\"yes\"")),
            "each metric its own expression: {durations:?}"
        );
        assert_eq!(
            out.matches("istio_response_bytes_count{").count(),
            2,
            "untouched metrics keep their labels"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
