//! The mesh's metrics history: Istio's standard metrics collected from every proxy
//! ([`scrape`]) into a bounded in-memory store, for the dashboard's graph and charts.
//!
//! Samples are kept per 10-second tick for one hour. A series is one combination of the
//! labels the dashboard groups by (reporter, source and destination workload, service,
//! response code and flags, mTLS); per tick it holds the requests counted in it, their
//! duration histogram (Istio's buckets) and their summed request and response bytes. Only
//! ticks with traffic take memory, and at most [`HistoryLimits::max_series`] series are
//! kept, so the store is bounded by `max_series × 360 × size_of::<RequestRow>()` (about
//! 100 bytes a row) whatever the mesh does; `docs/performance.md` has the measurement.

pub mod exposition;
pub mod labels;
pub mod scrape;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use self::exposition::Sample;
pub use self::labels::Labels;

/// Most series read from one proxy's exposition (twice what a weft proxy keeps of each
/// kind); the rest are counted in [`History::dropped_series`].
pub const MAX_SERIES_PER_PROXY: usize = 10_000;

/// Seconds per tick.
pub const TICK_SECS: u64 = 10;
/// Ticks kept: one hour.
pub const TICKS: u64 = 360;
/// Istio's histogram bounds (Envoy's defaults), then `+Inf`.
pub const BUCKETS: [f64; 20] = [
    0.5,
    1.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    60000.0,
    300000.0,
    600000.0,
    1800000.0,
    3600000.0,
    f64::INFINITY,
];

/// The tick of a Unix time in seconds.
pub fn tick_of(unix_secs: u64) -> u64 {
    unix_secs / TICK_SECS
}

/// Now, in Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Which side reported a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reporter {
    /// The client's sidecar, or a gateway.
    Source,
    /// The server's sidecar.
    Destination,
}

/// One end of a call as the labels name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// `*_workload`.
    pub workload: Arc<str>,
    /// `*_workload_namespace`.
    pub namespace: Arc<str>,
    /// `*_canonical_service` (else `*_app`).
    pub service: Arc<str>,
    /// `*_version`.
    pub version: Arc<str>,
}

impl Peer {
    /// True when the labels name no workload (a caller outside the mesh, or a request
    /// that reached no endpoint).
    pub fn is_unknown(&self) -> bool {
        &*self.workload == "unknown"
    }
}

/// Who called whom, as the labels of every Istio metric name it: what a TCP series is
/// kept by, and the first part of a request series' key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// Who reported it.
    pub reporter: Reporter,
    /// The caller.
    pub source: Peer,
    /// The workload that answered.
    pub destination: Peer,
    /// `destination_service_name`.
    pub service: Arc<str>,
    /// `destination_service_namespace`.
    pub service_namespace: Arc<str>,
    /// `connection_security_policy="mutual_tls"`.
    pub mtls: bool,
}

/// What a request series is kept by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// Who called whom.
    pub edge: Edge,
    /// `request_protocol`.
    pub protocol: Arc<str>,
    /// `response_code` (0: none, the connection failed).
    pub code: u16,
    /// `response_flags` (`-` for none).
    pub flags: Arc<str>,
}

impl RequestKey {
    /// Counted as an error: a 5xx, or no response at all.
    pub fn is_error(&self) -> bool {
        self.code >= 500 || self.code == 0
    }
}

/// What a TCP series is kept by.
pub type TcpKey = Edge;

/// Requests of one series in one tick (or summed over several).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestRow {
    /// The tick.
    pub tick: u32,
    /// Requests.
    pub requests: f32,
    /// Requests per duration bucket (not cumulative), by [`BUCKETS`].
    pub duration: [f32; 20],
    /// Summed duration, ms.
    pub duration_ms: f32,
    /// Summed request bytes.
    pub request_bytes: f32,
    /// Summed response bytes.
    pub response_bytes: f32,
}

/// A tick of a series: request rows and TCP rows are kept, trimmed and read alike.
pub trait Row: Copy {
    /// Its tick.
    fn tick(&self) -> u32;
    /// Adds `other` (its tick aside).
    fn add(&mut self, other: &Self);
}

impl Row for RequestRow {
    fn tick(&self) -> u32 {
        self.tick
    }

    fn add(&mut self, other: &RequestRow) {
        self.requests += other.requests;
        for (a, b) in self.duration.iter_mut().zip(&other.duration) {
            *a += *b;
        }
        self.duration_ms += other.duration_ms;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
    }
}

impl RequestRow {
    /// The `q` quantile of the durations (0..1), interpolated inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without requests.
    pub fn duration_quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.duration, q)
    }
}

/// The `q` quantile of per-bucket counts over [`BUCKETS`].
pub fn quantile(counts: &[f32; 20], q: f64) -> Option<f64> {
    let total: f64 = counts.iter().map(|c| f64::from(*c)).sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut seen = 0.0;
    for (i, count) in counts.iter().enumerate() {
        let count = f64::from(*count);
        if seen + count >= rank && count > 0.0 {
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let upper = BUCKETS[i];
            if upper.is_infinite() {
                // As histogram_quantile: the highest finite bound.
                return Some(lower);
            }
            return Some(lower + (upper - lower) * ((rank - seen) / count));
        }
        seen += count;
    }
    Some(BUCKETS[18])
}

/// TCP traffic of one series in one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TcpRow {
    /// The tick.
    pub tick: u32,
    /// Bytes sent to the destination.
    pub sent: f32,
    /// Bytes received from it.
    pub received: f32,
    /// Connections opened.
    pub opened: f32,
    /// Connections closed.
    pub closed: f32,
}

impl Row for TcpRow {
    fn tick(&self) -> u32 {
        self.tick
    }

    fn add(&mut self, other: &TcpRow) {
        self.sent += other.sent;
        self.received += other.received;
        self.opened += other.opened;
        self.closed += other.closed;
    }
}

/// The store's bounds.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Most series (request and TCP together); new ones beyond are dropped and counted.
    pub max_series: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { max_series: 4096 }
    }
}

/// What one proxy's counters stood at when last read, to turn its cumulative counters
/// into per-tick increments (a proxy restart resets them: the new value is the increment).
#[derive(Debug, Default)]
struct Cumulative {
    requests: HashMap<RequestKey, Totals>,
    tcp: HashMap<TcpKey, [f64; 4]>,
}

/// A request series' cumulative counters.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    requests: f64,
    /// Cumulative per-bucket (`le`) counts, as exposed.
    le: [f64; 20],
    /// Which of the bounds the exposition had.
    le_seen: u32,
    duration_ms: f64,
    request_bytes: f64,
    response_bytes: f64,
}

#[derive(Debug, Default)]
struct Series {
    requests: HashMap<RequestKey, VecDeque<RequestRow>>,
    tcp: HashMap<TcpKey, VecDeque<TcpRow>>,
    /// The tick old rows were last dropped at (once a tick is enough).
    trimmed: u32,
}

/// The store.
#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    series: std::sync::Mutex<Series>,
    last: std::sync::Mutex<HashMap<String, Cumulative>>,
    labels: Labels,
    /// Series not kept because the store was full.
    pub dropped_series: AtomicU64,
    /// Scrapes that failed (unreachable proxy, bad answer).
    pub failed_scrapes: AtomicU64,
    /// Scrapes done.
    pub scrapes: AtomicU64,
    latest_tick: std::sync::atomic::AtomicU32,
}

impl History {
    /// An empty store with `limits`.
    pub fn new(limits: HistoryLimits) -> History {
        History {
            limits,
            series: Default::default(),
            last: Default::default(),
            labels: Labels::default(),
            dropped_series: AtomicU64::new(0),
            failed_scrapes: AtomicU64::new(0),
            scrapes: AtomicU64::new(0),
            latest_tick: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Takes one scrape of proxy `proxy`'s exposition `text`, made at `unix_secs`.
    pub fn ingest(&self, proxy: &str, text: &str, unix_secs: u64) {
        let (requests, tcp) = self.read(text);
        // Ticks never go back (a clock stepped back lands in the latest tick).
        let tick = u32::try_from(tick_of(unix_secs)).unwrap_or(u32::MAX);
        let tick = self
            .latest_tick
            .fetch_max(tick, Ordering::Relaxed)
            .max(tick);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        // A proxy seen for the first time (or again after it left): its counters so far
        // belong to no tick of ours; they only become the base, as Prometheus' increase()
        // ignores a series' first sample.
        let first = !last.contains_key(proxy);
        let before = last.entry(proxy.to_string()).or_default();
        if first {
            before.requests = requests;
            before.tcp = tcp;
            return;
        }
        let mut request_rows = Vec::new();
        for (key, now) in &requests {
            let was = before.requests.get(key).copied().unwrap_or_default();
            // A counter that went down was reset (the proxy restarted): all of it is new.
            let reset = now.requests < was.requests;
            let base = if reset { Totals::default() } else { was };
            let mut row = RequestRow {
                tick,
                requests: (now.requests - base.requests).max(0.0) as f32,
                duration_ms: (now.duration_ms - base.duration_ms).max(0.0) as f32,
                request_bytes: (now.request_bytes - base.request_bytes).max(0.0) as f32,
                response_bytes: (now.response_bytes - base.response_bytes).max(0.0) as f32,
                ..RequestRow::default()
            };
            let mut below_now = 0.0;
            let mut below_base = 0.0;
            for i in 0..20 {
                let n = (now.le[i] - below_now) - (base.le[i] - below_base);
                row.duration[i] = n.max(0.0) as f32;
                below_now = now.le[i];
                below_base = base.le[i];
            }
            if row.requests > 0.0 {
                request_rows.push((key.clone(), row));
            }
        }
        let mut tcp_rows = Vec::new();
        for (key, now) in &tcp {
            let was = before.tcp.get(key).copied().unwrap_or_default();
            let reset = now.iter().zip(&was).any(|(n, w)| n < w);
            let base = if reset { [0.0; 4] } else { was };
            let row = TcpRow {
                tick,
                sent: (now[0] - base[0]) as f32,
                received: (now[1] - base[1]) as f32,
                opened: (now[2] - base[2]) as f32,
                closed: (now[3] - base[3]) as f32,
            };
            if row.sent + row.received + row.opened + row.closed > 0.0 {
                tcp_rows.push((key.clone(), row));
            }
        }
        before.requests = requests;
        before.tcp = tcp;
        drop(last);
        self.add(tick, request_rows, tcp_rows);
    }

    /// Forgets a proxy's last counters (it left the mesh).
    pub fn forget(&self, proxy: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(proxy);
    }

    /// Proxies whose counters are remembered.
    pub fn proxies(&self) -> Vec<String> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn add(&self, tick: u32, requests: Vec<(RequestKey, RequestRow)>, tcp: Vec<(TcpKey, TcpRow)>) {
        let oldest = tick.saturating_sub(TICKS as u32 - 1);
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let Series {
            requests: by_key,
            tcp: tcp_by_key,
            trimmed,
        } = &mut *s;
        // Rows older than an hour go; a series with none left goes too.
        if *trimmed != tick {
            *trimmed = tick;
            trim(by_key, oldest);
            trim(tcp_by_key, oldest);
            self.labels.prune();
        }
        let mut count = by_key.len() + tcp_by_key.len();
        let (cap, dropped) = (self.limits.max_series, &self.dropped_series);
        insert(by_key, requests, tick, &mut count, cap, dropped);
        insert(tcp_by_key, tcp, tick, &mut count, cap, dropped);
    }

    /// Request rows with ticks in `from..=to`, per series (only series with some).
    pub fn request_rows(
        &self,
        from: u64,
        to: u64,
        keep: impl Fn(&RequestKey) -> bool,
    ) -> Vec<(RequestKey, Vec<RequestRow>)> {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        rows_in(&s.requests, from, to, keep)
    }

    /// TCP rows with ticks in `from..=to`, per series (only series with some).
    pub fn tcp_rows(
        &self,
        from: u64,
        to: u64,
        keep: impl Fn(&TcpKey) -> bool,
    ) -> Vec<(TcpKey, Vec<TcpRow>)> {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        rows_in(&s.tcp, from, to, keep)
    }

    /// Series kept and rows held (for `/metrics` and the bench).
    pub fn size(&self) -> (usize, usize) {
        let s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let rows = s.requests.values().map(VecDeque::len).sum::<usize>()
            + s.tcp.values().map(VecDeque::len).sum::<usize>();
        (s.requests.len() + s.tcp.len(), rows)
    }

    /// The cumulative counters of one exposition, by series (labels the store does not
    /// keep, such as principals, are summed over).
    fn read(&self, text: &str) -> (HashMap<RequestKey, Totals>, HashMap<TcpKey, [f64; 4]>) {
        let mut requests: HashMap<RequestKey, Totals> = HashMap::new();
        let mut tcp: HashMap<TcpKey, [f64; 4]> = HashMap::new();
        // The key of each series is built once, not for each of its 25 lines.
        let mut request_keys: HashMap<&str, Option<RequestKey>> = HashMap::new();
        let mut tcp_keys: HashMap<&str, Option<TcpKey>> = HashMap::new();
        let mut over = 0u64;
        for s in exposition::samples(text) {
            if !s.value.is_finite() {
                continue;
            }
            let tcp_slot = match s.name {
                "istio_tcp_sent_bytes_total" => Some(0),
                "istio_tcp_received_bytes_total" => Some(1),
                "istio_tcp_connections_opened_total" => Some(2),
                "istio_tcp_connections_closed_total" => Some(3),
                _ => None,
            };
            if let Some(slot) = tcp_slot {
                let key = tcp_keys
                    .entry(s.series)
                    .or_insert_with(|| self.labels.tcp_key(&s));
                if let Some(key) = key {
                    if tcp.len() < MAX_SERIES_PER_PROXY || tcp.contains_key(key) {
                        tcp.entry(key.clone()).or_default()[slot] += s.value;
                    } else {
                        over += 1;
                    }
                }
                continue;
            }
            let field: fn(&mut Totals, &Sample<'_>) = match s.name {
                "istio_requests_total" => |t, s| t.requests += s.value,
                "istio_request_duration_milliseconds_bucket" => |t, s| {
                    let le = match s.label("le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(le) => le.parse().unwrap_or(f64::NAN),
                        None => f64::NAN,
                    };
                    if let Some(i) = BUCKETS.iter().position(|b| *b == le) {
                        t.le[i] += s.value;
                        t.le_seen |= 1 << i;
                    }
                },
                "istio_request_duration_milliseconds_sum" => |t, s| t.duration_ms += s.value,
                "istio_request_bytes_sum" => |t, s| t.request_bytes += s.value,
                "istio_response_bytes_sum" => |t, s| t.response_bytes += s.value,
                _ => continue,
            };
            let key = request_keys
                .entry(s.series)
                .or_insert_with(|| self.labels.request_key(&s));
            if let Some(key) = key {
                let room = requests.len() < MAX_SERIES_PER_PROXY;
                match requests.get_mut(key) {
                    Some(t) => field(t, &s),
                    None if room => field(requests.entry(key.clone()).or_default(), &s),
                    None => over += 1,
                }
            }
        }
        if over > 0 {
            self.dropped_series.fetch_add(over, Ordering::Relaxed);
        }
        // A bucket bound the exposition lacks holds what the bound below it holds, so
        // differences between neighbours stay right (+Inf: every request).
        for t in requests.values_mut() {
            for i in 0..20 {
                if t.le_seen & (1 << i) == 0 {
                    t.le[i] = if i == 19 {
                        t.requests
                    } else if i == 0 {
                        0.0
                    } else {
                        t.le[i - 1]
                    };
                }
            }
        }
        (requests, tcp)
    }
}

/// Appends `row`, growing the buffer at most to an hour of ticks (a plain push would
/// double it to 512).
fn push_bounded<T>(rows: &mut VecDeque<T>, row: T) {
    if rows.len() == rows.capacity() {
        let room = (TICKS as usize).saturating_sub(rows.len()).max(1);
        rows.reserve_exact(rows.len().max(4).min(room));
    }
    rows.push_back(row);
}

/// Adds each `(key, row)` to its series at `tick`; a new series only while fewer than
/// `cap` are kept (`count` of them so far), else the row is counted in `dropped`.
fn insert<K: Eq + std::hash::Hash, R: Row>(
    series: &mut HashMap<K, VecDeque<R>>,
    rows: Vec<(K, R)>,
    tick: u32,
    count: &mut usize,
    cap: usize,
    dropped: &AtomicU64,
) {
    for (key, row) in rows {
        let full = *count >= cap;
        let kept = match series.get_mut(&key) {
            Some(kept) => kept,
            None if full => {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            None => {
                *count += 1;
                series.entry(key).or_default()
            }
        };
        match kept.back_mut() {
            Some(last) if last.tick() == tick => last.add(&row),
            _ => push_bounded(kept, row),
        }
    }
}

/// Each series' rows with ticks in `from..=to`, for the series `keep` accepts and that
/// have some.
fn rows_in<K: Clone, R: Row>(
    series: &HashMap<K, VecDeque<R>>,
    from: u64,
    to: u64,
    keep: impl Fn(&K) -> bool,
) -> Vec<(K, Vec<R>)> {
    series
        .iter()
        .filter(|(k, _)| keep(k))
        .filter_map(|(k, rows)| {
            let picked: Vec<R> = rows
                .iter()
                .filter(|r| (from..=to).contains(&u64::from(r.tick())))
                .copied()
                .collect();
            (!picked.is_empty()).then(|| (k.clone(), picked))
        })
        .collect()
}

/// Drops rows older than `oldest`, and series left with none.
fn trim<K, R: Row>(series: &mut HashMap<K, VecDeque<R>>, oldest: u32) {
    series.retain(|_, rows| {
        while rows.front().is_some_and(|r| r.tick() < oldest) {
            rows.pop_front();
        }
        !rows.is_empty()
    });
}

#[cfg(test)]
mod tests;
