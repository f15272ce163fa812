//! Telemetry: what every request and connection leaves behind.
//!
//! A request gets an [`Observation`] when it arrives; the HTTP path fills in who the
//! other side is and which service it is for; the response body is wrapped in an
//! [`ObservedBody`] that counts its bytes and, when the body is done, records the
//! request in [`metrics`] (Istio's standard metrics).
//!
//! Peer metadata: like Istio's metadata exchange, a client sidecar tells the server
//! sidecar who is calling in one request header ([`PEER_HEADER`]), which the server
//! sidecar reads and removes; the client sidecar knows the destination workload from the
//! endpoint it picked (registered workloads carry their name and labels).

pub mod access_log;
pub mod mesh;
pub mod metrics;
pub mod policy;
pub mod spans;
pub mod stats;
pub mod trace_context;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;
use weft_model::service::WorkloadInfo;

use self::metrics::{Metrics, Peers, Reporter, RequestKey, RequestSample};
use crate::flags::ResponseFlags;
use crate::http::body::Body;

/// The request header carrying the calling workload, from client sidecar to server sidecar.
pub const PEER_HEADER: &str = "x-weft-peer";

/// Most distinct callers remembered (each becomes one shared `Arc`).
const MAX_PEERS: usize = 1024;

/// Where requests' telemetry goes besides metrics.
#[derive(Debug, Default)]
pub struct Sinks {
    /// Spans, when tracing is on: the mesh's default provider, or the proxy's flag.
    pub tracer: Option<Arc<spans::Tracer>>,
    /// Access log lines, when on: the mesh's `accessLogFile`, or the proxy's flag.
    pub access_log: Option<Arc<access_log::AccessLog>>,
    /// Tracers of the providers Telemetry resources name, by provider.
    pub tracers: HashMap<String, Arc<spans::Tracer>>,
    /// Access logs of the providers Telemetry resources name, by provider.
    pub file_logs: HashMap<String, Arc<access_log::AccessLog>>,
    /// `tracer` is the proxy's `--trace-endpoint`: it takes every provider's spans.
    pub flag_tracer: bool,
    /// `access_log` is the proxy's `--access-log`: it takes every provider's lines.
    pub flag_log: bool,
}

impl Sinks {
    /// The tracer for `provider` (`None`: the default one).
    pub fn tracer_for(&self, provider: Option<&str>) -> Option<&Arc<spans::Tracer>> {
        match provider {
            None => self.tracer.as_ref(),
            Some(_) if self.flag_tracer => self.tracer.as_ref(),
            Some(name) => self.tracers.get(name),
        }
    }

    /// True when some access log of `side` is open.
    fn logs_on(&self, side: &policy::SidePolicy) -> bool {
        self.logs_for(side).next().is_some()
    }

    /// The open access logs `side` writes to, each with its filter: the mesh's file (or
    /// the proxy's flag's, which takes every provider's lines) and the named providers'.
    /// One log may come more than once (the flag's, or two providers on one file): write
    /// a line to it once.
    pub fn logs_for<'s>(
        &'s self,
        side: &'s policy::SidePolicy,
    ) -> impl Iterator<
        Item = (
            &'s Arc<access_log::AccessLog>,
            Option<&'s policy::Expression>,
        ),
    > {
        side.logs.iter().filter_map(|(target, filter)| {
            let log = match target {
                policy::LogTarget::Mesh => self.access_log.as_ref()?,
                policy::LogTarget::Provider(_) if self.flag_log => self.access_log.as_ref()?,
                policy::LogTarget::Provider(name) => self.file_logs.get(name)?,
            };
            Some((log, filter.as_ref()))
        })
    }
}

/// One proxy's telemetry.
#[derive(Debug)]
pub struct Telemetry {
    /// The workload this proxy serves.
    pub me: Arc<WorkloadInfo>,
    /// Istio's metrics.
    pub metrics: Metrics,
    /// The tracer and the access log: set at start (`--trace-endpoint`, `--access-log`) or
    /// replaced when the control plane's mesh config changes; a request loads them once,
    /// lock-free, and keeps what it loaded to its end.
    pub sinks: ArcSwap<Sinks>,
    /// What became of the spans, across tracers.
    pub spans: Arc<spans::SpanCounters>,
    /// The proxy's id (`node_id` on spans).
    pub node_id: String,
    unknown: Arc<WorkloadInfo>,
    unknown_service: Arc<str>,
    peer_header: HeaderValue,
    peers: ArcSwap<HashMap<Bytes, Arc<WorkloadInfo>>>,
    peers_insert: Mutex<()>,
}

impl Telemetry {
    /// Telemetry for a proxy serving `me`, with spans going to `tracer` (started with
    /// `spans`' counters).
    pub fn new(
        me: WorkloadInfo,
        node_id: String,
        tracer: Option<spans::Tracer>,
        spans: Arc<spans::SpanCounters>,
        access_log: Option<access_log::AccessLog>,
    ) -> Self {
        let encoded = format!(
            "name={};namespace={};sa={};app={};version={};service={};revision={}",
            me.name,
            me.namespace,
            me.service_account,
            me.app,
            me.version,
            me.canonical_service,
            me.canonical_revision
        );
        Telemetry {
            peer_header: HeaderValue::from_str(&encoded)
                .unwrap_or_else(|_| HeaderValue::from_static("name=unknown")),
            me: Arc::new(me),
            metrics: Metrics::default(),
            sinks: ArcSwap::from_pointee(Sinks {
                flag_tracer: tracer.is_some(),
                flag_log: access_log.is_some(),
                tracer: tracer.map(Arc::new),
                access_log: access_log.map(Arc::new),
                ..Sinks::default()
            }),
            spans,
            node_id,
            unknown: Arc::new(WorkloadInfo::unknown()),
            unknown_service: Arc::from("unknown"),
            peers: ArcSwap::from_pointee(HashMap::new()),
            peers_insert: Mutex::new(()),
        }
    }

    /// The header value naming this proxy's workload to the server sidecar.
    pub fn peer_header(&self) -> HeaderValue {
        self.peer_header.clone()
    }

    /// A caller known only by its mTLS principal (`<trust domain>/ns/<ns>/sa/<sa>`).
    pub fn peer_of_principal(&self, principal: &str) -> Arc<WorkloadInfo> {
        let mut parts = principal.split('/').skip(1);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa)) => Arc::new(WorkloadInfo::new(
                "",
                ns,
                sa,
                &std::collections::BTreeMap::new(),
            )),
            _ => self.unknown.clone(),
        }
    }

    /// The calling workload a request's [`PEER_HEADER`] names (removed from `headers`).
    pub fn take_peer(&self, headers: &mut HeaderMap) -> Arc<WorkloadInfo> {
        let Some(value) = headers.remove(PEER_HEADER) else {
            return self.unknown.clone();
        };
        let raw = Bytes::copy_from_slice(value.as_bytes());
        if let Some(known) = self.peers.load().get(&raw) {
            return known.clone();
        }
        let parsed = Arc::new(parse_peer(value.to_str().unwrap_or_default()));
        let _guard = self.peers_insert.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.peers.load();
        if current.len() < MAX_PEERS {
            let mut next = HashMap::clone(&current);
            next.insert(raw, parsed.clone());
            self.peers.store(Arc::new(next));
        }
        parsed
    }

    /// The labels of a TCP connection to `cluster`'s `endpoint` (none for passthrough).
    /// On the inbound side the caller is known only by `caller`, its mTLS principal (no
    /// header carries it on TCP).
    pub fn tcp_peers(
        &self,
        reporter: Reporter,
        cluster: Option<&crate::snapshot::ClusterRuntime>,
        endpoint: Option<&crate::snapshot::Endpoint>,
        caller: Option<&str>,
    ) -> Peers {
        let service = cluster
            .filter(|c| !c.service.is_empty())
            .map_or_else(|| self.unknown_service.clone(), |c| c.service.clone());
        let (source, destination, security) = match reporter {
            Reporter::Source => {
                let peer = endpoint
                    .and_then(|e| e.workload.load_full())
                    .unwrap_or_else(|| self.unknown.clone());
                (self.me.clone(), peer, "unknown")
            }
            Reporter::Destination => match caller {
                Some(p) => (self.peer_of_principal(p), self.me.clone(), "mutual_tls"),
                None => (self.unknown.clone(), self.me.clone(), "none"),
            },
        };
        Peers {
            reporter,
            source,
            destination,
            service,
            security,
        }
    }

    /// Starts observing a request that arrived now, under the Telemetry `policy` of the
    /// configuration in force.
    pub fn observe(
        self: &Arc<Self>,
        reporter: Reporter,
        grpc: bool,
        policy: Arc<policy::TelemetryPolicy>,
    ) -> Observation {
        Observation {
            telemetry: self.clone(),
            policy,
            start: Instant::now(),
            reporter,
            protocol: if grpc { "grpc" } else { "http" },
            request_bytes: 0,
            peer: self.unknown.clone(),
            service: self.unknown_service.clone(),
            details: None,
            mutual_tls: false,
            done: false,
        }
    }

    /// The sinks in force when the request `obs` needs its details kept (a span, an access
    /// log line, or attributes for an expression); `None` otherwise. One lock-free load
    /// per request.
    pub fn detail_sinks(&self, obs: &Observation) -> Option<Arc<Sinks>> {
        let sinks = self.sinks.load();
        let side = obs.side();
        (sinks.tracer_for(side.tracing_provider.as_deref()).is_some()
            || sinks.logs_on(side)
            || side.needs_attributes())
        .then(|| arc_swap::Guard::into_inner(sinks))
    }

    /// Joins (or starts) the request's trace: the next hop gets our span as its parent
    /// in `headers`. A sampled request's span, and with access logs every request's
    /// details, are kept in `obs` until it ends, with the `sinks` (from
    /// [`Telemetry::detail_sinks`]) they go to.
    pub fn begin(
        &self,
        obs: &mut Observation,
        headers: &mut HeaderMap,
        kind: spans::Kind,
        sinks: Arc<Sinks>,
        request: impl FnOnce() -> RequestLine,
    ) {
        let mut span = None;
        let mut trace_id = None;
        let side = obs.side();
        let logged = sinks.logs_on(side);
        let tracer = sinks.tracer_for(side.tracing_provider.as_deref()).cloned();
        if let Some(tracer) = &tracer {
            let incoming = trace_context::extract(headers);
            let sampled = incoming
                .as_ref()
                .and_then(|c| c.sampled)
                .or_else(|| trace_context::decision_only(headers))
                .unwrap_or_else(|| match side.sampling {
                    Some(percent) => spans::sample_at(percent),
                    None => tracer.sample(),
                });
            let id = incoming
                .as_ref()
                .map_or_else(trace_context::new_trace_id, |c| c.trace_id);
            let parent = incoming.as_ref().map(|c| c.parent);
            let span_id = trace_context::new_span_id();
            let formats = incoming.as_ref().map(|c| c.formats).unwrap_or_default();
            trace_context::inject(headers, &id, &span_id, parent.as_ref(), sampled, formats);
            trace_id = Some(id);
            if sampled {
                span = Some(SpanIds {
                    trace_id: id,
                    span_id,
                    parent,
                    kind,
                });
            }
        } else if logged {
            trace_id = trace_context::extract(headers).map(|c| c.trace_id);
        }
        if span.is_none() && !logged && !side.needs_attributes() {
            return;
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let custom_tags = match span {
            Some(_) if !side.disable_span_reporting => side
                .tags
                .iter()
                .map(|(name, tag)| {
                    let value = match tag {
                        policy::SpanTag::Fixed(v) => v.clone(),
                        policy::SpanTag::Header(h, default) => headers
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .map_or_else(|| default.clone(), str::to_string),
                    };
                    (name.clone(), value)
                })
                .collect(),
            _ => Vec::new(),
        };
        let request = request();
        let attributes = side.needs_attributes().then(|| {
            // What the app's request carries: the caller's identity header is the mesh's.
            let mut headers = headers.clone();
            headers.remove(PEER_HEADER);
            Box::new(policy::RequestAttributes {
                method: request.method.clone(),
                path: request.path.clone(),
                host: request.authority.clone(),
                scheme: request
                    .url
                    .split_once("://")
                    .map_or("http", |(s, _)| s)
                    .to_string(),
                protocol: request.protocol,
                headers,
                peer: request.peer.clone(),
            })
        });
        obs.details = Some(Box::new(Details {
            sinks,
            tracer,
            span,
            custom_tags,
            attributes,
            trace_id,
            start: std::time::SystemTime::now(),
            request,
            request_id: header("x-request-id"),
            forwarded_for: header("x-forwarded-for"),
            cluster: None,
            port: None,
            upstream: None,
            route: None,
        }));
    }
}

/// The ids of a sampled request's span.
#[derive(Debug, Clone, Copy)]
struct SpanIds {
    trace_id: trace_context::TraceId,
    span_id: trace_context::SpanId,
    parent: Option<trace_context::SpanId>,
    kind: spans::Kind,
}

/// What a span says about the request.
#[derive(Debug, Default)]
pub struct RequestLine {
    /// Method.
    pub method: String,
    /// `scheme://authority/path`.
    pub url: String,
    /// The authority.
    pub authority: String,
    /// `HTTP/1.1`, `HTTP/2`.
    pub protocol: &'static str,
    /// User-Agent.
    pub user_agent: String,
    /// The client's address.
    pub peer: String,
    /// The address the client reached (this listener, or the original destination).
    pub local: String,
    /// The path (with query), as received.
    pub path: String,
}

/// What a span or an access log line tells about a request, gathered on its way.
#[derive(Debug)]
pub struct Details {
    sinks: Arc<Sinks>,
    /// The tracer of this request's side.
    tracer: Option<Arc<spans::Tracer>>,
    span: Option<SpanIds>,
    /// The Telemetry API's custom tags, for the span.
    custom_tags: Vec<(String, String)>,
    /// What expressions read, when the side has any.
    attributes: Option<Box<policy::RequestAttributes>>,
    trace_id: Option<trace_context::TraceId>,
    start: std::time::SystemTime,
    request: RequestLine,
    request_id: String,
    forwarded_for: String,
    /// The route (`http[].name`, or `<vs>.<index>`).
    pub route: Option<String>,
    /// The upstream cluster.
    pub cluster: Option<Arc<str>>,
    /// The service port (the operation is `<service>:<port>/*`).
    pub port: Option<u16>,
    /// The endpoint that answered.
    pub upstream: Option<String>,
}

/// `name=..;namespace=..;sa=..;app=..;version=..;service=..;revision=..`; missing parts
/// are derived as for a local workload, else `unknown`.
fn parse_peer(text: &str) -> WorkloadInfo {
    let mut w = WorkloadInfo::unknown();
    for part in text.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim();
        if v.is_empty() || v.len() > 253 {
            continue;
        }
        let slot = match k.trim() {
            "name" => &mut w.name,
            "namespace" => &mut w.namespace,
            "sa" => &mut w.service_account,
            "app" => &mut w.app,
            "version" => &mut w.version,
            "service" => &mut w.canonical_service,
            "revision" => &mut w.canonical_revision,
            _ => continue,
        };
        *slot = v.to_string();
    }
    if w.name != "unknown" {
        w.derive_canonical();
    }
    w
}

/// One request in flight, recorded when its response ends.
#[derive(Debug)]
pub struct Observation {
    telemetry: Arc<Telemetry>,
    policy: Arc<policy::TelemetryPolicy>,
    start: Instant,
    reporter: Reporter,
    protocol: &'static str,
    /// Request body bytes (its Content-Length; 0 for a streamed body without one).
    pub request_bytes: u64,
    /// The workload at the other end: the destination (source reporter) or the caller
    /// (destination reporter).
    pub peer: Arc<WorkloadInfo>,
    /// The destination service's host.
    pub service: Arc<str>,
    /// The request's details, when it is sampled or access logs are on.
    pub details: Option<Box<Details>>,
    /// True when the request came over mutual TLS (`connection_security_policy`).
    pub mutual_tls: bool,
    done: bool,
}

impl Observation {
    /// The Telemetry policy of this request's side.
    fn side(&self) -> &policy::SidePolicy {
        self.policy.side(self.reporter == Reporter::Source)
    }

    /// Records the request (once).
    fn finish(
        &mut self,
        status: u16,
        grpc: Option<u16>,
        flags: ResponseFlags,
        response_bytes: u64,
    ) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let t = self.telemetry.clone();
        let (source, destination, security) = match self.reporter {
            Reporter::Source => (t.me.clone(), self.peer.clone(), "unknown"),
            Reporter::Destination if self.mutual_tls => {
                (self.peer.clone(), t.me.clone(), "mutual_tls")
            }
            Reporter::Destination => (self.peer.clone(), t.me.clone(), "none"),
        };
        let duration = self.start.elapsed();
        let policy = self.policy.clone();
        let side = policy.side(self.reporter == Reporter::Source);
        let mut extra = Vec::new();
        if let Some(details) = self.details.take() {
            let attributes = details
                .attributes
                .as_ref()
                .map(|request| policy::Attributes {
                    request,
                    code: status,
                    flags: flags.to_string(),
                    grpc,
                    duration,
                    response_bytes,
                    request_bytes: self.request_bytes,
                    mtls: self.mutual_tls,
                    source: &source,
                    destination: &destination,
                    service: &self.service,
                });
            let bound = attributes.as_ref().and_then(|a| policy.bind(a));
            let mut written: Vec<&Arc<access_log::AccessLog>> = Vec::new();
            for (log, filter) in details.sinks.logs_for(side) {
                let logged = match (filter, &bound) {
                    (Some(filter), Some(b)) => b.holds(filter),
                    (Some(_), None) => false,
                    (None, _) => true,
                };
                if !logged || written.iter().any(|w| Arc::ptr_eq(w, log)) {
                    continue;
                }
                written.push(log);
                log.request(
                    &details,
                    status,
                    flags,
                    self.request_bytes,
                    response_bytes,
                    duration,
                );
            }
            drop(written);
            if let Some(b) = &bound {
                extra = side
                    .upserts
                    .iter()
                    .map(|(text, e)| (text.clone(), b.label(e)))
                    .collect();
            }
            drop(bound);
            drop(attributes);
            if let (Some(ids), Some(tracer), false) = (
                details.span,
                details.tracer.clone(),
                side.disable_span_reporting,
            ) {
                tracer.record(finished_span(
                    &t,
                    ids,
                    *details,
                    &self.service,
                    status,
                    flags,
                ));
            }
        }
        if side.metrics.requests_off() {
            return;
        }
        let key = RequestKey {
            peers: Peers {
                reporter: self.reporter,
                source,
                destination,
                service: self.service.clone(),
                security,
            },
            protocol: self.protocol,
            code: status,
            grpc,
            flags,
            extra,
        };
        t.metrics.request(
            &RequestSample {
                key,
                duration: self.start.elapsed(),
                request_bytes: self.request_bytes,
                response_bytes,
            },
            &side.metrics,
        );
    }
}

/// The span Istio's proxies emit for a request: operation `<service>:<port>/*`, tagged
/// with the request, the response and the proxy.
fn finished_span(
    t: &Telemetry,
    ids: SpanIds,
    span: Details,
    service: &str,
    status: u16,
    flags: ResponseFlags,
) -> spans::FinishedSpan {
    use spans::Value::Text;
    let name = match (service, span.port) {
        ("unknown", _) | (_, None) => format!("{}/*", span.request.authority),
        (service, Some(port)) => format!("{service}:{port}/*"),
    };
    let error = status >= 500 || status == 0;
    let mut attributes = vec![
        ("component", Text("proxy".into())),
        ("node_id", Text(t.node_id.clone())),
        ("http.method", Text(span.request.method)),
        ("http.url", Text(span.request.url)),
        ("http.protocol", Text(span.request.protocol.into())),
        ("http.status_code", Text(status.to_string())),
        ("response_flags", Text(flags.to_string())),
        ("guid:x-request-id", Text(span.request_id)),
        ("user_agent", Text(span.request.user_agent)),
        ("peer.address", Text(span.request.peer)),
        ("istio.namespace", Text(t.me.namespace.clone())),
        (
            "istio.canonical_service",
            Text(t.me.canonical_service.clone()),
        ),
        (
            "istio.canonical_revision",
            Text(t.me.canonical_revision.clone()),
        ),
        ("istio.mesh_id", Text("cluster.local".into())),
    ];
    if let Some(cluster) = span.cluster {
        attributes.push(("upstream_cluster", Text(cluster.to_string())));
        attributes.push(("upstream_cluster.name", Text(cluster.to_string())));
    }
    if let Some(upstream) = span.upstream {
        attributes.push(("upstream_host", Text(upstream)));
    }
    spans::FinishedSpan {
        trace_id: ids.trace_id,
        span_id: ids.span_id,
        parent: ids.parent,
        name,
        kind: ids.kind,
        start: span.start,
        end: std::time::SystemTime::now(),
        attributes,
        custom_tags: span.custom_tags,
        error,
    }
}

/// A response body that records its request when it is done (or dropped).
#[derive(Debug)]
pub struct ObservedBody {
    inner: Body,
    observation: Option<Observation>,
    status: u16,
    grpc: Option<u16>,
    flags: ResponseFlags,
    bytes: u64,
}

impl ObservedBody {
    /// Wraps `response`'s body; its status, flags and gRPC status come from its headers
    /// (and trailers, read as they pass).
    pub fn wrap(
        response: http::Response<Body>,
        observation: Option<Observation>,
    ) -> http::Response<ObservedBody> {
        let status = response.status().as_u16();
        let headers = response.headers();
        let flags = headers
            .get(crate::http::headers::RESPONSE_FLAGS)
            .and_then(|v| v.to_str().ok())
            .map_or(ResponseFlags::NONE, ResponseFlags::parse);
        let grpc = grpc_status(headers);
        response.map(|inner| ObservedBody {
            inner,
            observation,
            status,
            grpc,
            flags,
            bytes: 0,
        })
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
            } else if let Some(trailers) = frame.trailers_ref() {
                if let Some(g) = grpc_status(trailers) {
                    self.grpc = Some(g);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(mut o) = self.observation.take() {
            o.finish(self.status, self.grpc, self.flags, self.bytes);
        }
    }
}

impl Drop for Observation {
    /// A request whose handling was dropped before a response existed: the client went
    /// away (Envoy reports status 0 and `DC`).
    fn drop(&mut self) {
        self.finish(0, None, ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_are_shared() {
        let t = Telemetry::new(
            WorkloadInfo::unknown(),
            "test".into(),
            None,
            Default::default(),
            None,
        );
        assert!(t.sinks.load().tracer_for(Some("otel")).is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            PEER_HEADER,
            HeaderValue::from_static(
                "name=bff;namespace=default;sa=bff;app=bff-service;version=v1",
            ),
        );
        let first = t.take_peer(&mut headers);
        assert!(
            headers.get(PEER_HEADER).is_none(),
            "removed before the app sees it"
        );
        assert_eq!((first.name.as_str(), first.version.as_str()), ("bff", "v1"));
        headers.insert(
            PEER_HEADER,
            HeaderValue::from_static(
                "name=bff;namespace=default;sa=bff;app=bff-service;version=v1",
            ),
        );
        assert!(Arc::ptr_eq(&first, &t.take_peer(&mut headers)));
        assert_eq!(t.take_peer(&mut headers).name, "unknown");
        assert_eq!(parse_peer("garbage;;name=").name, "unknown");
    }
}
