//! The Telemetry API's decisions, made ready for the hot path: built once per
//! configuration from the model's [`ProxyTelemetry`] (CEL expressions compiled, environment
//! tags read), then only read by requests.
//!
//! Attributes a CEL expression can read, as Envoy names them: `request.method`, `.path`
//! (with query), `.url_path`, `.host`, `.scheme`, `.protocol`, `.id`, `.useragent`,
//! `.headers` (lower-case names); `response.code`, `.duration`, `.size`, `.flags`,
//! `.grpc_status`; `connection.mtls`; `source.address`, `.workload`, `.namespace`,
//! `.principal`, `destination.workload`, `.namespace`, `.service`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName};
use weft_api::telemetry::IstioMetric;
use weft_model::service::WorkloadInfo;
use weft_model::telemetry::{
    MetricOverride, MetricsPolicy, ProxyTelemetry, SideTelemetry, TagChange, TagSource,
};

/// One configuration's telemetry decisions, per side.
#[derive(Default)]
pub struct TelemetryPolicy {
    /// Outbound (and gateway) requests.
    pub client: SidePolicy,
    /// Inbound requests.
    pub server: SidePolicy,
    env: Option<Arc<cel::Env>>,
}

impl std::fmt::Debug for TelemetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryPolicy")
            .field("client", &self.client)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// One side's decisions.
#[derive(Debug, Default)]
pub struct SidePolicy {
    /// The tracing provider (`None`: the mesh default).
    pub tracing_provider: Option<String>,
    /// Percent of new traces sampled (`None`: the tracer's own).
    pub sampling: Option<f64>,
    /// Spans are not reported (context still propagates).
    pub disable_span_reporting: bool,
    /// Custom span tags.
    pub tags: Vec<(String, SpanTag)>,
    /// The access logs that take lines, each with its filter (only requests for which it
    /// is true are logged there).
    pub logs: Vec<(LogTarget, Option<Expression>)>,
    /// Which metrics are recorded and their label changes.
    pub metrics: MetricsPolicy,
    /// The UPSERT value expressions of request metrics, by their text, evaluated once per
    /// request (the text keys the value in the series).
    pub upserts: Vec<(Arc<str>, Expression)>,
}

impl SidePolicy {
    /// True when requests need their attributes kept for an expression.
    pub fn needs_attributes(&self) -> bool {
        self.logs.iter().any(|(_, f)| f.is_some()) || !self.upserts.is_empty()
    }

    /// The override of `metric`, if any.
    pub fn metric(&self, metric: IstioMetric) -> Option<&MetricOverride> {
        self.metrics.overrides.get(&metric)
    }
}

/// An access log a side writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// The mesh config's `accessLogFile`, or the proxy's `--access-log`.
    Mesh,
    /// An access log provider, by name.
    Provider(String),
}

/// A custom span tag's value, as resolved when the configuration is built.
#[derive(Debug, Clone)]
pub enum SpanTag {
    /// A literal or the proxy's environment variable, read once.
    Fixed(String),
    /// A request header, or the default.
    Header(HeaderName, String),
}

/// A compiled CEL expression and its source text.
#[derive(Debug)]
pub struct Expression {
    /// As written.
    pub text: String,
    program: cel::Program,
}

impl TelemetryPolicy {
    /// Compiles `t`. Expressions were compiled when their resources were validated, so an
    /// error here is a bug, reported as the update's error.
    pub fn compile(t: &ProxyTelemetry) -> Result<TelemetryPolicy, String> {
        let client = side(&t.client)?;
        let server = side(&t.server)?;
        let env = (client.needs_attributes() || server.needs_attributes())
            .then(|| Arc::new(cel::Env::stdlib()));
        Ok(TelemetryPolicy {
            client,
            server,
            env,
        })
    }

    /// The side of a request: client (outbound, gateways) or server (inbound).
    pub fn side(&self, client: bool) -> &SidePolicy {
        if client { &self.client } else { &self.server }
    }

    /// `attributes` made readable by this policy's expressions, once per request;
    /// `None` when the policy has no expression.
    pub fn bind(&self, attributes: &Attributes<'_>) -> Option<Bound> {
        let env = self.env.as_ref()?;
        let mut ctx = cel::Context::with_env(env.clone());
        attributes.bind(&mut ctx);
        Some(Bound(ctx))
    }
}

/// One request's attributes, bound for evaluation.
pub struct Bound(cel::Context<'static, 'static>);

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bound")
    }
}

impl Bound {
    /// Evaluates `e`; an evaluation error (a missing header, a type mismatch) is `None`.
    pub fn eval(&self, e: &Expression) -> Option<cel::Value> {
        match e.program.execute(&self.0) {
            Ok(v) => Some(v),
            Err(error) => {
                tracing::debug!(expression = %e.text, %error, "telemetry expression did not evaluate");
                None
            }
        }
    }

    /// True when `e` holds (an error or a non-boolean is false).
    pub fn holds(&self, e: &Expression) -> bool {
        matches!(self.eval(e), Some(cel::Value::Bool(true)))
    }

    /// `e` as a label value (`unknown` when it does not evaluate).
    pub fn label(&self, e: &Expression) -> String {
        match self.eval(e) {
            Some(cel::Value::String(s)) => s.to_string(),
            Some(cel::Value::Int(i)) => i.to_string(),
            Some(cel::Value::UInt(u)) => u.to_string(),
            Some(cel::Value::Float(f)) => f.to_string(),
            Some(cel::Value::Bool(b)) => b.to_string(),
            _ => "unknown".to_string(),
        }
    }
}

fn compile(text: &str) -> Result<Expression, String> {
    Ok(Expression {
        text: text.to_string(),
        program: weft_api::telemetry::compile_cel(text)
            .map_err(|e| format!("telemetry expression {text:?}: {e}"))?,
    })
}

fn side(t: &SideTelemetry) -> Result<SidePolicy, String> {
    let tags = t
        .tracing
        .custom_tags
        .iter()
        .map(|(name, source)| {
            let tag = match source {
                TagSource::Literal(v) => SpanTag::Fixed(v.clone()),
                TagSource::Environment { name, default } => {
                    SpanTag::Fixed(std::env::var(name).unwrap_or_else(|_| default.clone()))
                }
                TagSource::Header { name, default } => SpanTag::Header(
                    HeaderName::try_from(name.as_str())
                        .map_err(|e| format!("custom tag header {name:?}: {e}"))?,
                    default.clone(),
                ),
            };
            Ok((name.clone(), tag))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let rule = |filter: &Option<String>| filter.as_deref().map(compile).transpose();
    let mut logs = Vec::new();
    if let Some(r) = &t.access_log.legacy {
        logs.push((LogTarget::Mesh, rule(&r.filter)?));
    }
    for (name, r) in &t.access_log.providers {
        logs.push((LogTarget::Provider(name.clone()), rule(&r.filter)?));
    }
    let upserts: BTreeSet<&str> = t
        .metrics
        .overrides
        .iter()
        .filter(|(metric, _)| REQUEST_METRICS.contains(metric))
        .flat_map(|(_, o)| o.tags.values())
        .filter_map(|change| match change {
            TagChange::Upsert(expr) => Some(expr.as_str()),
            TagChange::Remove => None,
        })
        .collect();
    let upserts = upserts
        .into_iter()
        .map(|expr| Ok((Arc::from(expr), compile(expr)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SidePolicy {
        tracing_provider: t.tracing.provider.clone(),
        sampling: t.tracing.sampling,
        disable_span_reporting: t.tracing.disable_span_reporting,
        tags,
        logs,
        metrics: t.metrics.clone(),
        upserts,
    })
}

/// The request metrics (the others are per TCP connection).
pub const REQUEST_METRICS: [IstioMetric; 4] = [
    IstioMetric::RequestCount,
    IstioMetric::RequestDuration,
    IstioMetric::RequestSize,
    IstioMetric::ResponseSize,
];

/// What the request kept for expressions: taken when it arrived.
#[derive(Debug, Default)]
pub struct RequestAttributes {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Authority.
    pub host: String,
    /// Scheme.
    pub scheme: String,
    /// `HTTP/1.1`, `HTTP/2`.
    pub protocol: &'static str,
    /// Headers.
    pub headers: HeaderMap,
    /// The client's address.
    pub peer: String,
}

/// Everything an expression can read about one finished request.
#[derive(Debug)]
pub struct Attributes<'a> {
    /// The request.
    pub request: &'a RequestAttributes,
    /// Response status (0 when none).
    pub code: u16,
    /// Response flags, as text.
    pub flags: String,
    /// gRPC status.
    pub grpc: Option<u16>,
    /// Request duration.
    pub duration: Duration,
    /// Response body bytes.
    pub response_bytes: u64,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Over mutual TLS.
    pub mtls: bool,
    /// The caller.
    pub source: &'a WorkloadInfo,
    /// The called workload.
    pub destination: &'a WorkloadInfo,
    /// The destination service host.
    pub service: &'a str,
}

impl Attributes<'_> {
    fn bind(&self, ctx: &mut cel::Context<'_, '_>) {
        use cel::Value;
        let text = |s: &str| Value::from(s);
        let r = self.request;
        let headers: HashMap<String, Value> = r
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), text(v.to_str().ok()?))))
            .collect();
        let path = r.path.as_str();
        let url_path = path.split_once('?').map_or(path, |(p, _)| p);
        let request: HashMap<String, Value> = [
            ("method", text(&r.method)),
            ("path", text(path)),
            ("url_path", text(url_path)),
            ("host", text(&r.host)),
            ("scheme", text(&r.scheme)),
            ("protocol", text(r.protocol)),
            (
                "id",
                text(
                    r.headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                ),
            ),
            (
                "useragent",
                text(
                    r.headers
                        .get(http::header::USER_AGENT)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                ),
            ),
            ("size", Value::Int(self.request_bytes as i64)),
            ("headers", Value::from(headers)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let duration = chrono::Duration::from_std(self.duration).unwrap_or_default();
        let mut response: HashMap<String, Value> = [
            ("code", Value::Int(i64::from(self.code))),
            ("duration", Value::Duration(duration)),
            ("size", Value::Int(self.response_bytes as i64)),
            ("flags", text(&self.flags)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(g) = self.grpc {
            response.insert("grpc_status".into(), Value::Int(i64::from(g)));
        }
        let workload = |w: &WorkloadInfo| -> HashMap<String, Value> {
            [
                ("workload", text(&w.name)),
                ("namespace", text(&w.namespace)),
                ("principal", text(&w.principal())),
                ("app", text(&w.app)),
                ("version", text(&w.version)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        };
        let mut source = workload(self.source);
        source.insert("address".into(), text(&r.peer));
        let mut destination = workload(self.destination);
        destination.insert("service".into(), text(self.service));
        let connection: HashMap<String, Value> =
            [("mtls".to_string(), Value::Bool(self.mtls))].into();
        ctx.add_variable_from_value("request", request);
        ctx.add_variable_from_value("response", response);
        ctx.add_variable_from_value("connection", connection);
        ctx.add_variable_from_value("source", source);
        ctx.add_variable_from_value("destination", destination);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::telemetry::{AccessLogPolicy, LogRule, TracingPolicy};

    fn policy(filter: &str, upsert: &str) -> TelemetryPolicy {
        let mut side = SideTelemetry {
            tracing: TracingPolicy::default(),
            access_log: AccessLogPolicy {
                legacy: Some(LogRule {
                    filter: Some(filter.into()),
                }),
                providers: Default::default(),
            },
            metrics: MetricsPolicy::default(),
        };
        side.metrics.overrides.insert(
            IstioMetric::RequestCount,
            MetricOverride {
                disabled: false,
                tags: [("path".to_string(), TagChange::Upsert(upsert.into()))].into(),
            },
        );
        TelemetryPolicy::compile(&ProxyTelemetry {
            client: side.clone(),
            server: side,
            applied: vec![],
        })
        .expect("compiles")
    }

    fn attributes<'a>(
        request: &'a RequestAttributes,
        code: u16,
        w: &'a WorkloadInfo,
    ) -> Attributes<'a> {
        Attributes {
            request,
            code,
            flags: "-".into(),
            grpc: None,
            duration: Duration::from_millis(1500),
            response_bytes: 10,
            request_bytes: 0,
            mtls: true,
            source: w,
            destination: w,
            service: "reviews.default.svc.cluster.local",
        }
    }

    #[test]
    fn expressions_read_istio_attributes() {
        let mut request = RequestAttributes {
            method: "POST".into(),
            path: "/cart?id=1".into(),
            host: "cart".into(),
            ..Default::default()
        };
        request
            .headers
            .insert("x-user", http::HeaderValue::from_static("ann"));
        let w = WorkloadInfo::unknown();
        let p = policy(
            "response.code >= 400 && request.method == 'POST' && request.headers['x-user'] == 'ann' && connection.mtls && response.duration > duration('1s')",
            "request.url_path",
        );
        let side = p.side(true);
        let filter = side.logs[0].1.as_ref().expect("a filter");
        let bound = |code| {
            p.bind(&attributes(&request, code, &w))
                .expect("expressions")
        };
        assert!(bound(503).holds(filter));
        assert!(!bound(200).holds(filter));
        let (text, value) = &side.upserts[0];
        assert_eq!(&**text, "request.url_path");
        assert_eq!(bound(200).label(value), "/cart");
        let missing = policy("request.headers['nope'] == 'x'", "'literal'");
        let side = missing.side(false);
        let bound = missing
            .bind(&attributes(&request, 200, &w))
            .expect("expressions");
        assert!(
            !bound.holds(side.logs[0].1.as_ref().expect("filter")),
            "a missing header makes the expression false, not an error"
        );
        assert_eq!(bound.label(&side.upserts[0].1), "literal");
    }
}
