//! Spans: one per sampled request and proxy (a server span on the inbound side, a
//! client span on the outbound side and at gateways), exported in batches as OTLP over
//! HTTP (protobuf) or as Zipkin's JSON v2 ([`zipkin`]).
//!
//! Requests only push a finished span onto a bounded queue and never wait: when the
//! queue is full, or the collector is slow, absent or refuses a batch, spans are dropped
//! and counted (`weft_tracing_spans_dropped_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::sync::mpsc;
use weft_proto::otlp;

use super::trace_context::{SpanId, TraceId};

mod zipkin;
pub use weft_api::mesh_config::TraceProtocol;

/// Spans waiting for export, at most.
pub const QUEUE: usize = 4096;
/// Spans per export request, at most.
const BATCH: usize = 512;
/// How long a span may wait for its batch.
const FLUSH: Duration = Duration::from_millis(500);
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Client (outbound, gateway) or server (inbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The proxy calls out.
    Client,
    /// The proxy receives.
    Server,
}

/// A span attribute's value.
#[derive(Debug, Clone)]
pub enum Value {
    /// Text.
    Text(String),
    /// A number.
    Int(i64),
    /// A flag.
    Bool(bool),
}

/// A finished span.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Trace.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent: Option<SpanId>,
    /// Operation name.
    pub name: String,
    /// Client or server.
    pub kind: Kind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Tags.
    pub attributes: Vec<(&'static str, Value)>,
    /// The Telemetry API's custom tags.
    pub custom_tags: Vec<(String, String)>,
    /// True for 5xx and failures (`error=true`).
    pub error: bool,
}

/// Where spans are exported and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Exporter {
    /// The OTLP/HTTP endpoint, `http://host:port/v1/traces`.
    pub endpoint: Uri,
    /// Headers sent with every export.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long one export may take.
    pub timeout: Duration,
    /// How spans are encoded.
    pub protocol: TraceProtocol,
}

impl Exporter {
    /// Exports OTLP to `endpoint`, without extra headers, within the default timeout.
    pub fn new(endpoint: Uri) -> Exporter {
        Exporter {
            endpoint,
            headers: Vec::new(),
            timeout: EXPORT_TIMEOUT,
            protocol: TraceProtocol::Otlp,
        }
    }
}

/// What became of the spans, counted across tracers (the mesh config may replace the
/// tracer at runtime; the counters go on).
#[derive(Debug, Default)]
pub struct SpanCounters {
    /// Spans dropped (queue full, export failed).
    pub dropped: AtomicU64,
    /// Spans the collector accepted.
    pub exported: AtomicU64,
}

/// Where spans go, and how many.
#[derive(Debug)]
pub struct Tracer {
    /// Share of new traces sampled, in percent (a caller's decision wins).
    pub sampling: f64,
    queue: mpsc::Sender<FinishedSpan>,
    counters: Arc<SpanCounters>,
}

impl Tracer {
    /// A tracer exporting through `exporter` spans of a proxy whose resource is
    /// `resource`, counting into `counters`; the exporter runs on the current runtime
    /// and ends (after its last batch) when the tracer is dropped.
    pub fn start(
        exporter: Exporter,
        sampling: f64,
        resource: Vec<(&'static str, String)>,
        counters: Arc<SpanCounters>,
    ) -> Tracer {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export(rx, exporter, resource, counters.clone()));
        Tracer {
            sampling: sampling.clamp(0.0, 100.0),
            queue,
            counters,
        }
    }

    /// True when a new trace (no caller decision) is sampled.
    pub fn sample(&self) -> bool {
        sample_at(self.sampling)
    }

    /// Queues a finished span; never waits.
    pub fn record(&self, span: FinishedSpan) {
        if self.queue.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// True in `percent` of the calls (a Telemetry's `randomSamplingPercentage`).
pub fn sample_at(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && fastrand::f64() * 100.0 < percent)
}

async fn export(
    mut rx: mpsc::Receiver<FinishedSpan>,
    exporter: Exporter,
    resource: Vec<(&'static str, String)>,
    counters: Arc<SpanCounters>,
) {
    let endpoint = &exporter.endpoint;
    let service = resource
        .iter()
        .find(|(k, _)| *k == "service.name")
        .map_or_else(|| "unknown_service".to_string(), |(_, v)| v.clone());
    let resource = otlp::Resource {
        attributes: resource
            .into_iter()
            .map(|(k, v)| attribute(k, Value::Text(v)))
            .collect(),
        dropped_attributes_count: 0,
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let (body, content_type) = match exporter.protocol {
            TraceProtocol::Otlp => (
                otlp_request(&resource, batch.drain(..)).encode_to_vec(),
                "application/x-protobuf",
            ),
            TraceProtocol::Zipkin { max_tag_length } => (
                zipkin::encode(&service, batch.drain(..), max_tag_length),
                "application/json",
            ),
        };
        let sent = post(&exporter, body, content_type);
        match tokio::time::timeout(exporter.timeout, sent).await {
            Ok(Ok(())) => {
                counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                tracing::debug!(%endpoint, error = %e, spans = n, "span export failed; spans dropped");
                counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                tracing::debug!(%endpoint, spans = n, "span export timed out; spans dropped");
                counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// One OTLP export request holding `spans` of `resource`.
fn otlp_request(
    resource: &otlp::Resource,
    spans: impl Iterator<Item = FinishedSpan>,
) -> otlp::ExportTraceServiceRequest {
    otlp::ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(otlp::InstrumentationScope {
                    name: "weft-proxy".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.map(to_otlp).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

async fn post(exporter: &Exporter, body: Vec<u8>, content_type: &str) -> Result<(), String> {
    let endpoint = &exporter.endpoint;
    let authority = endpoint
        .authority()
        .ok_or("the trace endpoint has no host")?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = endpoint
        .path_and_query()
        .map_or("/v1/traces", |p| p.as_str());
    let mut req = Request::post(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in &exporter.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("collector answered {status}"))
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attribute(key: &str, value: Value) -> otlp::KeyValue {
    use otlp::any_value::Value as V;
    otlp::KeyValue {
        key: key.to_string(),
        value: Some(otlp::AnyValue {
            value: Some(match value {
                Value::Text(s) => V::StringValue(s),
                Value::Int(i) => V::IntValue(i),
                Value::Bool(b) => V::BoolValue(b),
            }),
        }),
    }
}

fn to_otlp(s: FinishedSpan) -> otlp::Span {
    let kind = match s.kind {
        Kind::Client => otlp::span::SpanKind::Client,
        Kind::Server => otlp::span::SpanKind::Server,
    };
    let mut attributes: Vec<otlp::KeyValue> = s
        .attributes
        .into_iter()
        .map(|(k, v)| attribute(k, v))
        .chain(
            s.custom_tags
                .into_iter()
                .map(|(k, v)| attribute(&k, Value::Text(v))),
        )
        .collect();
    if s.error {
        attributes.push(attribute("error", Value::Bool(true)));
    }
    otlp::Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name,
        kind: kind as i32,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end),
        attributes,
        status: Some(otlp::Status {
            message: String::new(),
            code: if s.error {
                otlp::status::StatusCode::Error as i32
            } else {
                otlp::status::StatusCode::Unset as i32
            },
        }),
        // W3C "sampled", and whether the parent is remote (it always is for a proxy).
        flags: 0x01 | 0x100 | if s.parent.is_some() { 0x200 } else { 0 },
        ..Default::default()
    }
}
