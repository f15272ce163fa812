//! The embedded trace store: spans arrive as OTLP ([`receiver`]) or Zipkin JSON
//! ([`zipkin`]), are kept in a bounded
//! in-memory store (by span count and bytes; the oldest go first), and are searched the
//! way Jaeger's query service searches them ([`jaeger`]).

pub mod jaeger;
pub mod receiver;
pub mod zipkin;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use weft_proto::otlp;

/// A tag value.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    /// Text.
    Text(String),
    /// A flag.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// Bytes (shown as hex).
    Bytes(Vec<u8>),
}

impl TagValue {
    /// The value as Jaeger's tag search compares it.
    pub fn text(&self) -> String {
        match self {
            TagValue::Text(s) => s.clone(),
            TagValue::Bool(b) => b.to_string(),
            TagValue::Int(i) => i.to_string(),
            TagValue::Float(f) => f.to_string(),
            TagValue::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }
}

/// One stored span.
#[derive(Debug, Clone)]
pub struct StoredSpan {
    /// Trace.
    pub trace_id: [u8; 16],
    /// Span.
    pub span_id: [u8; 8],
    /// Parent span, if any.
    pub parent: Option<[u8; 8]>,
    /// The process's `service.name`.
    pub service: String,
    /// The span's name.
    pub operation: String,
    /// Start, microseconds since the epoch.
    pub start_us: u64,
    /// Duration, microseconds.
    pub duration_us: u64,
    /// Span tags (with `span.kind`).
    pub tags: Vec<(String, TagValue)>,
    /// The process's (resource's) attributes, shared by the spans of one resource.
    pub process: Arc<Vec<(String, TagValue)>>,
    /// Approximate memory held.
    pub size: usize,
}

impl StoredSpan {
    fn tag(&self, key: &str) -> Option<String> {
        self.tags
            .iter()
            .chain(self.process.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.text())
    }
}

/// A search, as Jaeger's `/api/traces` takes it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Service (exact, or without its `.namespace` suffix).
    pub service: Option<String>,
    /// Operation (span name).
    pub operation: Option<String>,
    /// Tags every matching span has (`http.status_code=200`, `error=true`).
    pub tags: Vec<(String, String)>,
    /// Earliest span start (µs since the epoch).
    pub start_us: Option<u64>,
    /// Latest span start (µs since the epoch).
    pub end_us: Option<u64>,
    /// Shortest span (µs).
    pub min_duration_us: Option<u64>,
    /// Longest span (µs).
    pub max_duration_us: Option<u64>,
    /// Most traces returned.
    pub limit: usize,
}

/// A service name matches exactly, or without its namespace (`bff-service` finds
/// `bff-service.default`, Istio's canonical service name).
pub fn service_matches(stored: &str, wanted: &str) -> bool {
    stored == wanted
        || stored
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.') && !rest[1..].contains('.'))
}

impl Query {
    fn matches(&self, s: &StoredSpan) -> bool {
        self.service
            .as_deref()
            .is_none_or(|w| service_matches(&s.service, w))
            && self.operation.as_deref().is_none_or(|o| s.operation == o)
            && self.start_us.is_none_or(|t| s.start_us >= t)
            && self.end_us.is_none_or(|t| s.start_us <= t)
            && self.min_duration_us.is_none_or(|d| s.duration_us >= d)
            && self.max_duration_us.is_none_or(|d| s.duration_us <= d)
            && self
                .tags
                .iter()
                .all(|(k, v)| s.tag(k).is_some_and(|have| have == *v))
    }
}

#[derive(Debug, Default)]
struct Inner {
    spans: VecDeque<Arc<StoredSpan>>,
    bytes: usize,
    evicted: u64,
}

/// The bounded store.
#[derive(Debug)]
pub struct TraceStore {
    inner: Mutex<Inner>,
    max_spans: usize,
    max_bytes: usize,
}

/// Counters of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Spans held.
    pub spans: usize,
    /// Bytes held (approximate).
    pub bytes: usize,
    /// Spans evicted to stay within the bounds.
    pub evicted: u64,
}

impl TraceStore {
    /// A store holding at most `max_spans` spans and about `max_bytes` bytes.
    pub fn new(max_spans: usize, max_bytes: usize) -> Self {
        TraceStore {
            inner: Mutex::new(Inner::default()),
            max_spans: max_spans.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds spans, evicting the oldest past the bounds.
    pub fn add(&self, spans: Vec<StoredSpan>) {
        let mut inner = self.lock();
        for s in spans {
            inner.bytes += s.size;
            inner.spans.push_back(Arc::new(s));
        }
        while inner.spans.len() > self.max_spans || inner.bytes > self.max_bytes {
            let Some(old) = inner.spans.pop_front() else {
                break;
            };
            inner.bytes -= old.size;
            inner.evicted += 1;
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            spans: inner.spans.len(),
            bytes: inner.bytes,
            evicted: inner.evicted,
        }
    }

    /// Every service with spans, sorted.
    pub fn services(&self) -> Vec<String> {
        let inner = self.lock();
        let set: std::collections::BTreeSet<String> =
            inner.spans.iter().map(|s| s.service.clone()).collect();
        set.into_iter().collect()
    }

    /// The operations of `service`, sorted.
    pub fn operations(&self, service: &str) -> Vec<String> {
        let inner = self.lock();
        let set: std::collections::BTreeSet<String> = inner
            .spans
            .iter()
            .filter(|s| service_matches(&s.service, service))
            .map(|s| s.operation.clone())
            .collect();
        set.into_iter().collect()
    }

    /// Traces with a span matching `q`, newest first, each with all its spans.
    pub fn find(&self, q: &Query) -> Vec<Vec<Arc<StoredSpan>>> {
        let inner = self.lock();
        // The newest matching span of each trace orders the traces.
        let mut latest: HashMap<[u8; 16], u64> = HashMap::new();
        for s in inner.spans.iter().filter(|s| q.matches(s)) {
            let e = latest.entry(s.trace_id).or_insert(0);
            *e = (*e).max(s.start_us);
        }
        let mut ids: Vec<([u8; 16], u64)> = latest.into_iter().collect();
        ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ids.truncate(if q.limit == 0 { 20 } else { q.limit });
        let wanted: HashSet<[u8; 16]> = ids.iter().map(|(id, _)| *id).collect();
        let mut traces: HashMap<[u8; 16], Vec<Arc<StoredSpan>>> = HashMap::new();
        for s in inner.spans.iter().filter(|s| wanted.contains(&s.trace_id)) {
            traces.entry(s.trace_id).or_default().push(s.clone());
        }
        ids.into_iter()
            .filter_map(|(id, _)| {
                let mut spans = traces.remove(&id)?;
                spans.sort_by_key(|s| s.start_us);
                Some(spans)
            })
            .collect()
    }

    /// The newest `limit` spans `keep` accepts, newest first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&StoredSpan) -> bool) -> Vec<Arc<StoredSpan>> {
        let inner = self.lock();
        let mut out: Vec<Arc<StoredSpan>> = inner
            .spans
            .iter()
            .rev()
            .filter(|s| keep(s))
            .take(limit)
            .cloned()
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.start_us + s.duration_us));
        out
    }

    /// One trace's spans, by start.
    pub fn trace(&self, id: &[u8; 16]) -> Vec<Arc<StoredSpan>> {
        let inner = self.lock();
        let mut spans: Vec<_> = inner
            .spans
            .iter()
            .filter(|s| s.trace_id == *id)
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.start_us);
        spans
    }

    /// Calls between services (parent span's service → child span's), for spans that
    /// started within [`from_us`, `to_us`].
    pub fn dependencies(&self, from_us: u64, to_us: u64) -> BTreeMap<(String, String), u64> {
        let inner = self.lock();
        let by_id: HashMap<([u8; 16], [u8; 8]), &StoredSpan> = inner
            .spans
            .iter()
            .map(|s| ((s.trace_id, s.span_id), &**s))
            .collect();
        let mut calls = BTreeMap::new();
        for s in inner
            .spans
            .iter()
            .filter(|s| s.start_us >= from_us && s.start_us <= to_us)
        {
            let Some(parent) = s.parent.and_then(|p| by_id.get(&(s.trace_id, p))) else {
                continue;
            };
            if parent.service != s.service {
                *calls
                    .entry((parent.service.clone(), s.service.clone()))
                    .or_insert(0) += 1;
            }
        }
        calls
    }
}

fn tag_value(v: Option<otlp::AnyValue>) -> TagValue {
    use otlp::any_value::Value as V;
    match v.and_then(|v| v.value) {
        Some(V::StringValue(s)) => TagValue::Text(s),
        Some(V::BoolValue(b)) => TagValue::Bool(b),
        Some(V::IntValue(i)) => TagValue::Int(i),
        Some(V::DoubleValue(f)) => TagValue::Float(f),
        Some(V::BytesValue(b)) => TagValue::Bytes(b),
        None => TagValue::Text(String::new()),
    }
}

/// Most attributes kept per span or resource, and the longest key or value kept.
const MAX_ATTRIBUTES: usize = 128;
const MAX_ATTRIBUTE_LEN: usize = 4096;

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ATTRIBUTE_LEN {
        let mut end = MAX_ATTRIBUTE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn tags(attributes: Vec<otlp::KeyValue>) -> Vec<(String, TagValue)> {
    attributes
        .into_iter()
        .take(MAX_ATTRIBUTES)
        .map(|kv| {
            let value = match tag_value(kv.value) {
                TagValue::Text(t) => TagValue::Text(truncate(t)),
                TagValue::Bytes(mut b) => {
                    b.truncate(MAX_ATTRIBUTE_LEN / 2);
                    TagValue::Bytes(b)
                }
                other => other,
            };
            (truncate(kv.key), value)
        })
        .collect()
}

fn tags_size(tags: &[(String, TagValue)]) -> usize {
    tags.iter()
        .map(|(k, v)| {
            k.len()
                + 32
                + match v {
                    TagValue::Text(t) => t.len(),
                    TagValue::Bytes(b) => b.len(),
                    _ => 8,
                }
        })
        .sum()
}

/// The spans of an OTLP export request; spans with malformed ids are skipped and counted.
pub fn from_otlp(request: otlp::ExportTraceServiceRequest) -> (Vec<StoredSpan>, usize) {
    let mut out = Vec::new();
    let mut rejected = 0;
    for rs in request.resource_spans {
        let process = Arc::new(tags(rs.resource.map(|r| r.attributes).unwrap_or_default()));
        // The resource is shared: its size is charged to its first span only.
        let mut process_size = tags_size(&process);
        let service = process
            .iter()
            .find(|(k, _)| k == "service.name")
            .map_or_else(|| "unknown_service".to_string(), |(_, v)| v.text());
        for ss in rs.scope_spans {
            for span in ss.spans {
                let (Ok(trace_id), Ok(span_id)) = (
                    <[u8; 16]>::try_from(span.trace_id.as_slice()),
                    <[u8; 8]>::try_from(span.span_id.as_slice()),
                ) else {
                    rejected += 1;
                    continue;
                };
                let parent = <[u8; 8]>::try_from(span.parent_span_id.as_slice())
                    .ok()
                    .filter(|p| p.iter().any(|b| *b != 0));
                let kind = match otlp::span::SpanKind::try_from(span.kind) {
                    Ok(otlp::span::SpanKind::Server) => Some("server"),
                    Ok(otlp::span::SpanKind::Client) => Some("client"),
                    Ok(otlp::span::SpanKind::Producer) => Some("producer"),
                    Ok(otlp::span::SpanKind::Consumer) => Some("consumer"),
                    _ => None,
                };
                let mut span_tags = tags(span.attributes);
                if let Some(kind) = kind {
                    span_tags.push(("span.kind".into(), TagValue::Text(kind.into())));
                }
                let start_us = span.start_time_unix_nano / 1000;
                let duration_us = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano)
                    / 1000;
                let name = truncate(span.name);
                let size =
                    200 + name.len() + tags_size(&span_tags) + std::mem::take(&mut process_size);
                out.push(StoredSpan {
                    trace_id,
                    span_id,
                    parent,
                    service: service.clone(),
                    operation: name,
                    start_us,
                    duration_us,
                    tags: span_tags,
                    process: process.clone(),
                    size,
                });
            }
        }
    }
    (out, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        start: u64,
        duration: u64,
    ) -> StoredSpan {
        StoredSpan {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            service: service.into(),
            operation: format!("{service}:8080/*"),
            start_us: start,
            duration_us: duration,
            tags: vec![("http.status_code".into(), TagValue::Text("200".into()))],
            process: Arc::new(Vec::new()),
            size: 100,
        }
    }

    #[test]
    fn search_filters_and_orders_newest_first() {
        let store = TraceStore::new(100, 1 << 20);
        store.add(vec![
            span(1, 1, None, "bff-service.default", 1_000, 50_000),
            span(
                1,
                2,
                Some(1),
                "recommendation-service.default",
                2_000,
                10_000,
            ),
            span(2, 3, None, "bff-service.default", 5_000, 200_000),
        ]);
        let q = Query {
            service: Some("bff-service".into()),
            min_duration_us: Some(100_000),
            ..Query::default()
        };
        let found = store.find(&q);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0][0].trace_id, [2; 16]);
        let all = store.find(&Query {
            tags: vec![("http.status_code".into(), "200".into())],
            ..Query::default()
        });
        assert_eq!(
            all.iter().map(|t| t[0].trace_id[0]).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(all[1].len(), 2, "a trace comes with all its spans");
        let deps = store.dependencies(0, u64::MAX);
        assert_eq!(
            deps.get(&(
                "bff-service.default".into(),
                "recommendation-service.default".into()
            )),
            Some(&1)
        );
    }

    #[test]
    fn the_oldest_spans_go_first_past_the_bounds() {
        let store = TraceStore::new(2, 1 << 20);
        store.add(
            (1..=3)
                .map(|i| span(i, i, None, "s", u64::from(i), 1))
                .collect(),
        );
        assert_eq!(store.stats().spans, 2);
        assert_eq!(store.stats().evicted, 1);
        assert!(store.trace(&[1; 16]).is_empty());
        let by_bytes = TraceStore::new(100, 250);
        by_bytes.add(
            (1..=3)
                .map(|i| span(i, i, None, "s", u64::from(i), 1))
                .collect(),
        );
        assert_eq!(by_bytes.stats().spans, 2);
    }

    #[test]
    fn service_names_match_with_or_without_namespace() {
        assert!(service_matches("bff-service.default", "bff-service"));
        assert!(service_matches(
            "bff-service.default",
            "bff-service.default"
        ));
        assert!(!service_matches("bff-service-two.default", "bff-service"));
        assert!(!service_matches("bff-service.default.x", "bff-service"));
    }
}
