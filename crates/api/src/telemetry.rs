//! `telemetry.istio.io` `Telemetry`: how a workload's traces, access logs and metrics are
//! generated, mesh-wide (the root namespace), per namespace, or per workload.
//!
//! Everything Istio's webhook accepts is read; what weft cannot honour is refused by name
//! with the reason, never ignored. CEL expressions (`accessLogging[].filter.expression`,
//! `metrics[].overrides[].tagOverrides[*].value`) are compiled here, so a bad one is
//! refused with the parser's error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::networking::WorkloadSelector;
use crate::security::authorization_policy::{
    PolicyTargetReference, check_attachment, warn_target_refs,
};
use crate::validate::{Validate, Validator};

/// Telemetry spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Telemetry {
    /// Workloads this resource applies to; without one, every workload of the namespace
    /// (of the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single targeted resource (superseded by `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Targeted resources (Gateway API gateways, waypoints' Services).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Metrics settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    /// Access logging settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

/// Istio's `ProviderRef`: an extension provider of the mesh config, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// The provider's name (`extensionProviders[].name`).
    #[serde(default)]
    pub name: String,
}

/// Istio's `WorkloadMode`: which side of a call a setting applies to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Both sides.
    #[default]
    ClientAndServer,
    /// The client side (the caller's sidecar, outbound).
    Client,
    /// The server side (the called sidecar, inbound).
    Server,
}

impl WorkloadMode {
    /// True when the mode covers the client side (`client`) or the server side.
    pub fn covers(self, client: bool) -> bool {
        match self {
            WorkloadMode::ClientAndServer => true,
            WorkloadMode::Client => client,
            WorkloadMode::Server => !client,
        }
    }
}

/// Istio's `TracingSelector` and `AccessLogging.LogSelector`: `mode` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeSelector {
    /// The side the setting applies to (default CLIENT_AND_SERVER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

impl ModeSelector {
    /// The mode of an optional selector.
    pub fn mode_of(selector: &Option<ModeSelector>) -> WorkloadMode {
        selector.as_ref().and_then(|s| s.mode).unwrap_or_default()
    }
}

/// Istio's `Tracing`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// Which side this applies to.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<ModeSelector>,
    /// The tracing provider (one at most); the mesh's default tracing provider when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Percent of new traces sampled, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Keep propagating trace context but report no span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Tags added to every span, by tag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Sample by `x-request-id` (accepted: weft samples each new trace once, at its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Add Istio's own tags to spans (weft always does; `false` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
}

/// Istio's `Tracing.CustomTag`: one of `literal`, `environment`, `header`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomTag {
    /// A fixed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<LiteralTag>,
    /// An environment variable of the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentTag>,
    /// A request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderTag>,
    /// Envoy's substitution formatter (refused: weft has no command operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatter: Option<serde_json::Value>,
}

/// Istio's `Tracing.Literal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiteralTag {
    /// The value.
    #[serde(default)]
    pub value: String,
}

/// Istio's `Tracing.Environment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentTag {
    /// The variable's name.
    #[serde(default)]
    pub name: String,
    /// The value when the variable is unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// Istio's `Tracing.RequestHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderTag {
    /// The header's name.
    #[serde(default)]
    pub name: String,
    /// The value when the request has no such header.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// Istio's `AccessLogging`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    /// Which side this applies to.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<ModeSelector>,
    /// The access log providers; the mesh's default ones when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Turn access logging off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// Istio's `AccessLogging.Filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogFilter {
    /// A CEL expression over the request's attributes; a request is logged when it is true.
    #[serde(default)]
    pub expression: String,
}

/// Istio's `Metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// The metrics providers (only Prometheus); the mesh's default ones when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Changes to the standard metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// How often metrics are reported (accepted: Prometheus scrapes weft's proxies, which
    /// always serve current values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<Duration>,
}

/// Istio's `MetricsOverrides`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsOverrides {
    /// Which metrics and side; all metrics on both sides when unset.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    /// Stop recording the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Labels changed, by label name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Istio's `MetricSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    /// One of Istio's standard metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<IstioMetric>,
    /// A custom metric by name (refused: weft defines no custom metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    /// Which side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
}

/// Istio's `MetricSelector.IstioMetric`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    /// Every metric below.
    #[default]
    AllMetrics,
    /// `istio_requests_total`.
    RequestCount,
    /// `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `istio_request_bytes`.
    RequestSize,
    /// `istio_response_bytes`.
    ResponseSize,
    /// `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `istio_request_messages_total` (gRPC).
    GrpcRequestMessages,
    /// `istio_response_messages_total` (gRPC).
    GrpcResponseMessages,
}

impl IstioMetric {
    /// Every single metric (not ALL_METRICS).
    pub const EACH: [IstioMetric; 10] = [
        IstioMetric::RequestCount,
        IstioMetric::RequestDuration,
        IstioMetric::RequestSize,
        IstioMetric::ResponseSize,
        IstioMetric::TcpOpenedConnections,
        IstioMetric::TcpClosedConnections,
        IstioMetric::TcpSentBytes,
        IstioMetric::TcpReceivedBytes,
        IstioMetric::GrpcRequestMessages,
        IstioMetric::GrpcResponseMessages,
    ];

    /// True when this selector covers `metric`.
    pub fn covers(self, metric: IstioMetric) -> bool {
        self == IstioMetric::AllMetrics || self == metric
    }
}

/// Istio's `MetricsOverrides.TagOverride`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagOverride {
    /// What to do with the label (default UPSERT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<TagOperation>,
    /// The label's value for UPSERT: a CEL expression (`request.method`, `'literal'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio's `TagOverride.Operation`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagOperation {
    /// Set the label (adding it when new).
    #[default]
    Upsert,
    /// Drop the label.
    Remove,
}

/// Compiles a CEL expression as Istio's telemetry attributes are read; the parser's
/// message on error.
pub fn compile_cel(expression: &str) -> Result<cel::Program, String> {
    cel::Program::compile(expression).map_err(|e| {
        // The parser's first line says what and where (`ERROR: <input>:1:17: Syntax error:
        // ...`); the lines after it draw the same with a caret.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default().trim();
        let first = first.strip_prefix("ERROR: <input>:").unwrap_or(first);
        format!("at {first}")
    })
}

impl Validate for Telemetry {
    fn validate(&self, v: &mut Validator) {
        check_attachment(v, &self.selector, &self.target_ref, &self.target_refs);
        warn_target_refs(v, &self.target_ref, &self.target_refs);
        if self.tracing.len() > 1 {
            v.warn_at(
                "tracing",
                "multiple tracing is not currently supported (Istio warns likewise): entries are merged in order, later fields winning",
            );
        }
        v.list("tracing", &self.tracing);
        v.list("metrics", &self.metrics);
        v.list("accessLogging", &self.access_logging);
    }
}

fn check_providers(v: &mut Validator, providers: &[ProviderRef]) {
    v.each("providers", providers, |v, p| {
        if p.name.is_empty() {
            v.error_at("name", "a provider name is required");
        }
    });
}

impl Validate for Tracing {
    fn validate(&self, v: &mut Validator) {
        check_providers(v, &self.providers);
        if self.providers.len() > 1 {
            v.error_at(
                "providers",
                "at most one tracing provider (Istio uses only one per proxy)",
            );
        }
        if let Some(p) = self.random_sampling_percentage
            && !(0.0..=100.0).contains(&p)
        {
            v.error_at(
                "randomSamplingPercentage",
                format!("must be a percentage in [0, 100] (got {p})"),
            );
        }
        if self.enable_istio_tags == Some(false) {
            v.error_at(
                "enableIstioTags",
                "weft always adds Istio's tags (istio.namespace, istio.canonical_service, ...) to spans; false is not supported",
            );
        }
        v.field("customTags", |v| {
            for (name, tag) in &self.custom_tags {
                v.field(name, |v| {
                    if name.is_empty() {
                        v.error("tag name required");
                    }
                    tag.validate(v);
                });
            }
        });
    }
}

impl Validate for CustomTag {
    fn validate(&self, v: &mut Validator) {
        if self.formatter.is_some() {
            v.error_at(
                "formatter",
                "weft has no Envoy substitution formatter (command operators): use literal, environment or header",
            );
            return;
        }
        let set = usize::from(self.literal.is_some())
            + usize::from(self.environment.is_some())
            + usize::from(self.header.is_some());
        match set {
            0 => v.error("a custom tag needs one of literal, environment, header"),
            1 => {}
            _ => v.error("a custom tag has exactly one of literal, environment, header"),
        }
        if let Some(l) = &self.literal
            && l.value.is_empty()
        {
            v.error_at("literal.value", "literal tag value may not be empty");
        }
        if let Some(e) = &self.environment
            && e.name.is_empty()
        {
            v.error_at("environment.name", "environment tag name may not be empty");
        }
        if let Some(h) = &self.header {
            if h.name.is_empty() {
                v.error_at("header.name", "header tag name may not be empty");
            } else {
                v.field("header", |v| {
                    v.field("name", |v| crate::validate::checks::header_name(v, &h.name))
                });
            }
        }
    }
}

impl Validate for AccessLogging {
    fn validate(&self, v: &mut Validator) {
        check_providers(v, &self.providers);
        if let Some(f) = &self.filter {
            v.field("filter", |v| {
                if f.expression.trim().is_empty() {
                    v.error_at("expression", "a filter needs an expression");
                } else if let Err(e) = compile_cel(&f.expression) {
                    v.error_at("expression", format!("must be a valid CEL expression: {e}"));
                }
            });
        }
    }
}

impl Validate for Metrics {
    fn validate(&self, v: &mut Validator) {
        check_providers(v, &self.providers);
        v.list("overrides", &self.overrides);
    }
}

impl Validate for MetricsOverrides {
    fn validate(&self, v: &mut Validator) {
        if let Some(m) = &self.match_ {
            v.field("match", |v| {
                if m.custom_metric.is_some() && m.metric.is_some() {
                    v.error("only one of metric and customMetric may be set");
                }
                if let Some(name) = &m.custom_metric {
                    v.error_at(
                        "customMetric",
                        format!(
                            "weft defines no custom metrics (got {name:?}): use metric with one of Istio's standard metrics"
                        ),
                    );
                }
            });
        }
        v.field("tagOverrides", |v| {
            for (name, o) in &self.tag_overrides {
                v.field(name, |v| {
                    if name.is_empty() {
                        v.error("tagOverrides may not have an empty key");
                    }
                    let value = o.value.as_deref().unwrap_or_default();
                    match o.operation.unwrap_or_default() {
                        TagOperation::Upsert if value.is_empty() => {
                            v.error_at("value", "must be set when operation is UPSERT");
                        }
                        TagOperation::Upsert => {
                            if let Err(e) = compile_cel(value) {
                                v.error_at("value", format!("must be a valid CEL expression: {e}"));
                            }
                        }
                        TagOperation::Remove if !value.is_empty() => {
                            v.error_at("value", "may only be set when operation is UPSERT");
                        }
                        TagOperation::Remove => {}
                    }
                });
            }
        });
    }
}

#[cfg(test)]
mod tests;
