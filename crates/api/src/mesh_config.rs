//! Istio's MeshConfig: the mesh-wide settings, read from Istio's mesh config YAML or from
//! Istio's ConfigMap (`kind: ConfigMap`, the YAML text under `data.mesh`).
//!
//! weft reads the part it implements (tracing, its OpenTelemetry providers, the default
//! providers, the access log, the trust domain and root namespace, the outbound traffic
//! policy and the default HTTP retry policy). Every other field of
//! Istio's MeshConfig is refused by name ("weft does not implement meshConfig.X"), never
//! passed over; a field Istio does not have either is an unknown field, with a suggestion.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Severity};
use crate::duration::Duration;
use crate::networking::sidecar::OutboundTrafficMode;
use crate::networking::virtual_service::HttpRetry;
use crate::source::{self, Node, NodeValue, Pos, ReadContext};
use crate::validate::{Issue, Validate, Validator, checks};

pub mod ext_authz;
pub mod zipkin;

/// Istio's default share of new traces sampled, in percent (`defaultConfig.tracing.sampling`).
pub const DEFAULT_SAMPLING: f64 = 1.0;

/// The OTLP/HTTP path used when a provider names none.
pub const DEFAULT_OTLP_PATH: &str = "/v1/traces";

/// Istio's default root namespace, the only one weft implements.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Istio's built-in metrics provider: weft's proxies always serve Prometheus metrics.
pub const PROMETHEUS_PROVIDER: &str = "prometheus";

/// Istio's MeshConfig, the fields weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    /// Spans are generated and reported (Istio's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    /// The proxies' defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    /// Named telemetry backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    /// The providers used when no Telemetry resource says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    /// Where every proxy writes its access log (`/dev/stdout`, `/dev/stderr` or an
    /// absolute path); unset or empty: none (Istio's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    /// The access log's encoding (Istio's default: TEXT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    /// The mesh's trust domain (Istio's default: `cluster.local`): the control plane's CA
    /// issues identities in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// The namespace whose configuration applies mesh-wide: weft's is Istio's default,
    /// `istio-system`, and no other value is accepted yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    /// Whether sidecars reach destinations outside the registry (Istio's default when
    /// unset: `ALLOW_ANY`). A Sidecar's own `outboundTrafficPolicy` replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
    /// The retry policy of HTTP routes that set no `retries` (Istio's default when unset:
    /// 2 attempts on connect-failure, refused-stream, unavailable, cancelled and
    /// retriable-status-codes); `attempts: 0` turns default retries off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<HttpRetry>,
}

/// MeshConfig's `outboundTrafficPolicy` (only a mode: `egressProxy` is a Sidecar field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshOutboundTrafficPolicy {
    /// `ALLOW_ANY` or `REGISTRY_ONLY`; unset keeps Istio's mesh default, `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
}

/// Istio's ProxyConfig (`defaultConfig`), the part weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// Tracing defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
}

/// Istio's `ProxyConfig.tracing`, the part weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingConfig {
    /// Percent of new traces sampled, 0 to 100 (Istio's default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
}

/// One named backend (`extensionProviders[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// The name `defaultProviders` and Telemetry resources use.
    #[serde(default)]
    pub name: String,
    /// An OpenTelemetry collector (traces over OTLP/HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opentelemetry: Option<OpenTelemetryProvider>,
    /// A Zipkin collector (traces as Zipkin JSON v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<zipkin::ZipkinProvider>,
    /// Prometheus metrics (what the proxies' `/stats/prometheus` serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// An access log file (for Telemetry `accessLogging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_file_access_log: Option<FileAccessLogProvider>,
    /// An external authorization service over HTTP (for CUSTOM policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_http: Option<ext_authz::ExtAuthzHttp>,
    /// An external authorization service over gRPC (for CUSTOM policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_grpc: Option<ext_authz::ExtAuthzGrpc>,
}

/// Istio's `EnvoyFileAccessLogProvider`: access log lines appended to a file, in the
/// mesh's `accessLogEncoding`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileAccessLogProvider {
    /// `/dev/stdout`, `/dev/stderr` or an absolute path.
    #[serde(default)]
    pub path: String,
}

/// The access log provider every mesh has unless it defines its own of that name, as
/// Istio's default mesh config does: a file access log to `/dev/stdout`.
pub const ENVOY_ACCESS_LOG_PROVIDER: &str = "envoy";

/// Istio's `OpenTelemetryTracingProvider`, the part weft implements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetryProvider {
    /// The collector's host (`otel-collector.observability.svc.cluster.local`, an IP).
    #[serde(default)]
    pub service: String,
    /// The collector's port.
    #[serde(default)]
    pub port: u32,
    /// OTLP over HTTP settings; weft always exports over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<OtlpHttp>,
}

/// Istio's `OpenTelemetryTracingProvider.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtlpHttp {
    /// The export path (default `/v1/traces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How long one export may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Headers sent with every export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// A header sent to a provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    #[serde(default)]
    pub name: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// Istio's `PrometheusMetricsProvider` (no fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrometheusProvider {}

/// `defaultProviders`: provider names per kind of telemetry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultProviders {
    /// Tracing providers (at most one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<String>,
    /// Metrics providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Access logging providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<String>,
}

/// `accessLogEncoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessLogEncoding {
    /// Istio's default text format.
    #[default]
    #[serde(rename = "TEXT")]
    Text,
    /// One JSON object per line.
    #[serde(rename = "JSON")]
    Json,
}

/// Where a proxy sends spans, as the mesh config decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// The provider's name.
    pub provider: String,
    /// `http://<service>:<port><path>`.
    pub endpoint: String,
    /// How spans are encoded.
    pub protocol: TraceProtocol,
    /// Percent of new traces sampled.
    pub sampling: f64,
}

/// How a tracing provider takes spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceProtocol {
    /// OTLP over HTTP, protobuf.
    Otlp,
    /// Zipkin's JSON v2, tag values cut at this length.
    Zipkin {
        /// `maxTagLength`.
        max_tag_length: u32,
    },
}

impl ExtensionProvider {
    /// Where and how a tracing provider takes spans; `None` for other kinds.
    pub fn trace_endpoint(&self) -> Option<(String, TraceProtocol)> {
        if let Some(o) = &self.opentelemetry {
            return Some((o.endpoint(), TraceProtocol::Otlp));
        }
        let z = self.zipkin.as_ref()?;
        Some((
            z.endpoint(),
            TraceProtocol::Zipkin {
                max_tag_length: z.max_tag_length(),
            },
        ))
    }
}

impl MeshConfig {
    /// True unless `enableTracing: false`.
    pub fn tracing_enabled(&self) -> bool {
        self.enable_tracing.unwrap_or(true)
    }

    /// `defaultConfig.tracing.sampling`, or Istio's default 1 percent.
    pub fn sampling(&self) -> f64 {
        self.default_config
            .as_ref()
            .and_then(|c| c.tracing.as_ref())
            .and_then(|t| t.sampling)
            .unwrap_or(DEFAULT_SAMPLING)
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&ExtensionProvider> {
        self.extension_providers.iter().find(|p| p.name == name)
    }

    /// The file of access log provider `name` (the built-in `envoy` is `/dev/stdout`);
    /// `None` when `name` is no access log provider.
    pub fn access_log_provider_path(&self, name: &str) -> Option<&str> {
        match self.provider(name) {
            Some(p) => p.envoy_file_access_log.as_ref().map(|f| f.path.as_str()),
            None if name == ENVOY_ACCESS_LOG_PROVIDER => Some("/dev/stdout"),
            None => None,
        }
    }

    /// The access log file, when one is set (`accessLogFile` not empty).
    pub fn access_log(&self) -> Option<(&str, AccessLogEncoding)> {
        self.access_log_file
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(|f| (f, self.access_log_encoding.unwrap_or_default()))
    }

    /// The default tracing provider's name, when one is set.
    pub fn default_tracing_provider(&self) -> Option<&str> {
        self.default_providers
            .as_ref()
            .and_then(|d| d.tracing.first())
            .map(String::as_str)
    }

    /// Where spans go: the default tracing provider's endpoint at the configured
    /// sampling; `None` with `enableTracing: false` or without a default tracing provider.
    pub fn trace_export(&self) -> Option<TraceExport> {
        if !self.tracing_enabled() {
            return None;
        }
        let name = self.default_tracing_provider()?;
        let (endpoint, protocol) = self.provider(name)?.trace_endpoint()?;
        Some(TraceExport {
            provider: name.to_string(),
            endpoint,
            protocol,
            sampling: self.sampling(),
        })
    }
}

impl OpenTelemetryProvider {
    /// `http://<service>:<port><path or /v1/traces>`.
    pub fn endpoint(&self) -> String {
        let path = self
            .http
            .as_ref()
            .and_then(|h| h.path.as_deref())
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_OTLP_PATH);
        http_endpoint(&self.service, self.port, path)
    }
}

/// `http://<host>:<port><path>`, an IPv6 host in brackets.
fn http_endpoint(service: &str, port: u32, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    let host = if service.contains(':') {
        format!("[{service}]")
    } else {
        service.to_string()
    };
    format!("http://{host}:{port}{slash}{path}")
}

/// A provider's `service`: a host name or IP address, not a URL.
fn check_service(v: &mut Validator, service: &str, example: &str) {
    if service.trim().is_empty() {
        v.error_at(
            "service",
            format!("the collector's host is required (e.g. {example})"),
        );
    } else if service.contains(['/', ' ']) {
        v.error_at(
            "service",
            format!("must be a host name or IP address, not a URL (got {service:?})"),
        );
    }
}

impl Validate for MeshConfig {
    fn validate(&self, v: &mut Validator) {
        if let Some(sampling) = self
            .default_config
            .as_ref()
            .and_then(|c| c.tracing.as_ref())
            .and_then(|t| t.sampling)
            && !(0.0..=100.0).contains(&sampling)
        {
            v.error_at(
                "defaultConfig.tracing.sampling",
                format!("must be a percentage in [0, 100] (got {sampling})"),
            );
        }
        let mut seen = BTreeMap::new();
        v.field("extensionProviders", |v| {
            for (i, p) in self.extension_providers.iter().enumerate() {
                v.index(i, |v| {
                    p.validate(v);
                    if let Some(first) = checks::first_holder(&mut seen, p.name.as_str(), i) {
                        v.error_at(
                            "name",
                            format!(
                                "provider `{}` is defined twice (first in extensionProviders[{first}])",
                                p.name
                            ),
                        );
                    }
                });
            }
        });
        if let Some(d) = &self.default_providers {
            v.field("defaultProviders", |v| d.check(self, v));
        }
        if let Some(file) = &self.access_log_file
            && !file.is_empty()
            && !file.starts_with('/')
        {
            v.error_at(
                "accessLogFile",
                format!("must be /dev/stdout, /dev/stderr or an absolute path (got {file:?})"),
            );
        }
        if let Some(td) = &self.trust_domain
            && !checks::is_dns1123_subdomain(td)
        {
            v.error_at(
                "trustDomain",
                format!("must be a DNS name like cluster.local (got {td:?})"),
            );
        }
        v.optional("defaultHttpRetryPolicy", &self.default_http_retry_policy);
        if let Some(ns) = &self.root_namespace
            && ns != ROOT_NAMESPACE
        {
            v.error_at(
                "rootNamespace",
                format!(
                    "weft does not implement a root namespace other than {ROOT_NAMESPACE} (got {ns:?})"
                ),
            );
        }
    }
}

impl Validate for ExtensionProvider {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "a provider needs a name");
        }
        let kinds = usize::from(self.opentelemetry.is_some())
            + usize::from(self.zipkin.is_some())
            + usize::from(self.prometheus.is_some())
            + usize::from(self.envoy_file_access_log.is_some())
            + usize::from(self.envoy_ext_authz_http.is_some())
            + usize::from(self.envoy_ext_authz_grpc.is_some());
        match kinds {
            0 => v.error(format!(
                "provider `{}` names no kind: weft implements opentelemetry, zipkin, prometheus, envoyFileAccessLog, envoyExtAuthzHttp and envoyExtAuthzGrpc",
                self.name
            )),
            1 => {}
            _ => v.error("a provider has exactly one kind (opentelemetry, zipkin, prometheus, envoyFileAccessLog, envoyExtAuthzHttp or envoyExtAuthzGrpc)"),
        }
        if let Some(h) = &self.envoy_ext_authz_http {
            v.field("envoyExtAuthzHttp", |v| h.check(v));
        }
        if let Some(g) = &self.envoy_ext_authz_grpc {
            v.field("envoyExtAuthzGrpc", |v| g.check(v));
        }
        if let Some(z) = &self.zipkin {
            v.field("zipkin", |v| z.check(v));
        }
        if let Some(f) = &self.envoy_file_access_log
            && f.path != "/dev/stdout"
            && f.path != "/dev/stderr"
            && !f.path.starts_with('/')
        {
            v.error_at(
                "envoyFileAccessLog.path",
                format!(
                    "must be /dev/stdout, /dev/stderr or an absolute path (got {:?})",
                    f.path
                ),
            );
        }
        if let Some(o) = &self.opentelemetry {
            v.field("opentelemetry", |v| {
                check_service(
                    v,
                    &o.service,
                    "otel-collector.observability.svc.cluster.local",
                );
                checks::port_number(v, "port", o.port);
                if let Some(h) = &o.http {
                    v.field("http", |v| {
                        if let Some(p) = &h.path
                            && !p.is_empty()
                            && !p.starts_with('/')
                        {
                            v.error_at("path", format!("must start with / (got {p:?})"));
                        }
                        if let Some(t) = h.timeout
                            && t.get().is_zero()
                        {
                            v.error_at("timeout", "must be more than 0");
                        }
                        v.each("headers", &h.headers, |v, header| {
                            v.field("name", |v| checks::header_name(v, &header.name));
                            v.field("value", |v| checks::header_value(v, &header.value));
                        });
                    });
                }
            });
        }
    }
}

impl DefaultProviders {
    fn check(&self, mesh: &MeshConfig, v: &mut Validator) {
        if self.tracing.len() > 1 {
            v.error_at(
                "tracing",
                "at most one tracing provider (Istio uses only one per proxy)",
            );
        }
        v.each("tracing", &self.tracing, |v, name| {
            match mesh.provider(name) {
                None => v.error(undefined(name, mesh)),
                Some(p) if p.opentelemetry.is_none() && p.zipkin.is_none() => v.error(format!(
                    "provider `{name}` is not a tracing provider (an opentelemetry or zipkin one)"
                )),
                Some(_) => {}
            }
        });
        v.each("metrics", &self.metrics, |v, name| {
            match mesh.provider(name) {
                None if name == PROMETHEUS_PROVIDER => {}
                None => v.error(undefined(name, mesh)),
                Some(p) if p.prometheus.is_none() => v.error(format!(
                    "provider `{name}` is not a metrics provider (a prometheus one)"
                )),
                Some(_) => {}
            }
        });
        v.each(
            "accessLogging",
            &self.access_logging,
            |v, name| match mesh.provider(name) {
                None if name == ENVOY_ACCESS_LOG_PROVIDER => {}
                None => v.error(undefined(name, mesh)),
                Some(p) if p.envoy_file_access_log.is_none() => v.error(format!(
                    "provider `{name}` is not an access log provider (an envoyFileAccessLog one)"
                )),
                Some(_) => {}
            },
        );
    }
}

fn undefined(name: &str, mesh: &MeshConfig) -> String {
    let names: Vec<&str> = mesh
        .extension_providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        format!("provider `{name}` is not defined in extensionProviders")
    } else {
        format!(
            "provider `{name}` is not defined in extensionProviders (defined: {})",
            names.join(", ")
        )
    }
}

/// What weft knows of Istio's MeshConfig, one level of fields at a time: the fields it
/// reads, and Istio's fields it refuses by name (with why, when it helps).
struct Level {
    /// Path below the mesh config (`""` at the top).
    path: &'static str,
    /// Istio's fields at this level weft does not implement, with an optional hint.
    refused: &'static [(&'static str, &'static str)],
}

const NOT_YET: &str = "";

/// Istio's MeshConfig fields weft refuses, per level. A field in none of these lists and
/// not in weft's types is an unknown field.
const LEVELS: &[Level] = &[
    Level {
        path: "",
        refused: &[
            ("proxyListenPort", NOT_YET),
            ("proxyInboundListenPort", NOT_YET),
            ("proxyHttpPort", NOT_YET),
            ("connectTimeout", NOT_YET),
            (
                "protocolDetectionTimeout",
                "use weft proxy --detect-timeout",
            ),
            ("tcpKeepalive", NOT_YET),
            ("ingressClass", NOT_YET),
            ("ingressService", NOT_YET),
            ("ingressControllerMode", NOT_YET),
            ("ingressSelector", NOT_YET),
            (
                "accessLogFormat",
                "weft writes Istio's default format (accessLogEncoding picks TEXT or JSON)",
            ),
            ("enableEnvoyAccessLogService", NOT_YET),
            ("disableEnvoyListenerLog", NOT_YET),
            ("inboundTrafficPolicy", NOT_YET),
            ("configSources", NOT_YET),
            ("enableAutoMtls", NOT_YET),
            ("trustDomainAliases", NOT_YET),
            ("caCertificates", NOT_YET),
            ("defaultServiceExportTo", NOT_YET),
            ("defaultVirtualServiceExportTo", NOT_YET),
            ("defaultDestinationRuleExportTo", NOT_YET),
            ("localityLbSetting", NOT_YET),
            ("dnsRefreshRate", NOT_YET),
            ("h2UpgradePolicy", NOT_YET),
            ("inboundClusterStatName", NOT_YET),
            ("outboundClusterStatName", NOT_YET),
            ("certificates", NOT_YET),
            ("thriftConfig", NOT_YET),
            ("serviceSettings", NOT_YET),
            (
                "enablePrometheusMerge",
                "weft's proxies serve their own metrics only",
            ),
            ("verifyCertificateAtClient", NOT_YET),
            ("ca", "use weft control --ca-cert"),
            ("discoverySelectors", NOT_YET),
            ("pathNormalization", NOT_YET),
            ("meshMTLS", NOT_YET),
            ("tlsDefaults", NOT_YET),
            ("serviceScopeConfigs", NOT_YET),
            ("mixerCheckServer", "removed from Istio"),
            ("mixerReportServer", "removed from Istio"),
            ("disablePolicyChecks", "removed from Istio"),
            ("policyCheckFailOpen", "removed from Istio"),
            ("sidecarToTelemetrySessionAffinity", "removed from Istio"),
            ("authPolicy", "removed from Istio"),
            ("rdsRefreshDelay", "removed from Istio"),
            ("enableClientSidePolicyCheck", "removed from Istio"),
            ("sdsUdsPath", "removed from Istio"),
            ("sdsRefreshDelay", "removed from Istio"),
            ("enableSdsTokenMount", "removed from Istio"),
            ("sdsUseK8sSaJwt", "removed from Istio"),
        ],
    },
    Level {
        path: "defaultConfig",
        refused: &[
            ("configPath", NOT_YET),
            ("binaryPath", NOT_YET),
            ("serviceCluster", NOT_YET),
            ("drainDuration", "use weft proxy --drain"),
            ("parentShutdownDuration", NOT_YET),
            ("discoveryAddress", "use weft proxy --control"),
            ("discoveryRefreshDelay", NOT_YET),
            (
                "zipkinAddress",
                "use a zipkin extension provider named in defaultProviders.tracing",
            ),
            ("statsdUdpAddress", NOT_YET),
            ("envoyMetricsServiceAddress", NOT_YET),
            ("proxyAdminPort", "use weft proxy --admin"),
            ("availabilityZone", NOT_YET),
            ("controlPlaneAuthPolicy", NOT_YET),
            ("customConfigFile", NOT_YET),
            ("statNameLength", NOT_YET),
            ("concurrency", NOT_YET),
            ("proxyBootstrapTemplatePath", NOT_YET),
            ("interceptionMode", NOT_YET),
            ("sds", NOT_YET),
            ("envoyAccessLogService", NOT_YET),
            ("envoyMetricsService", NOT_YET),
            ("proxyMetadata", NOT_YET),
            ("runtimeValues", NOT_YET),
            ("statusPort", "use weft proxy --stats"),
            ("extraStatTags", NOT_YET),
            (
                "gatewayTopology",
                "use weft proxy's trusted proxies setting",
            ),
            ("terminationDrainDuration", "use weft proxy --drain"),
            ("meshId", NOT_YET),
            ("readinessProbe", NOT_YET),
            ("proxyStatsMatcher", NOT_YET),
            ("holdApplicationUntilProxyStarts", NOT_YET),
            ("caCertificatesPem", NOT_YET),
            ("image", NOT_YET),
            ("privateKeyProvider", NOT_YET),
            ("proxyHeaders", NOT_YET),
            ("fileFlushInterval", NOT_YET),
            ("fileFlushMinSizeKb", NOT_YET),
        ],
    },
    Level {
        path: "defaultConfig.tracing",
        refused: &[
            (
                "zipkin",
                "use a zipkin extension provider named in defaultProviders.tracing",
            ),
            (
                "lightstep",
                "weft exports OTLP or Zipkin: use an opentelemetry or zipkin extension provider",
            ),
            (
                "datadog",
                "weft exports OTLP or Zipkin: use an opentelemetry or zipkin extension provider",
            ),
            (
                "stackdriver",
                "weft exports OTLP or Zipkin: use an opentelemetry or zipkin extension provider",
            ),
            (
                "openCensusAgent",
                "weft exports OTLP or Zipkin: use an opentelemetry or zipkin extension provider",
            ),
            ("tlsSettings", NOT_YET),
            ("customTags", NOT_YET),
            ("maxPathTagLength", NOT_YET),
            ("enableIstioTags", NOT_YET),
        ],
    },
    Level {
        path: "extensionProviders[]",
        refused: &[
            (
                "lightstep",
                "weft exports traces as OTLP or Zipkin only: use opentelemetry",
            ),
            (
                "datadog",
                "weft exports traces as OTLP or Zipkin only: use opentelemetry or zipkin",
            ),
            ("stackdriver", NOT_YET),
            (
                "opencensus",
                "weft exports traces as OTLP or Zipkin only: use opentelemetry or zipkin",
            ),
            (
                "skywalking",
                "weft exports traces as OTLP or Zipkin only: use opentelemetry or zipkin",
            ),
            ("envoyHttpAls", NOT_YET),
            ("envoyTcpAls", NOT_YET),
            ("envoyOtelAls", NOT_YET),
            ("sds", NOT_YET),
        ],
    },
    Level {
        path: "extensionProviders[].envoyFileAccessLog",
        refused: &[(
            "logFormat",
            "weft writes Istio's default format, as text or JSON: set accessLogEncoding",
        )],
    },
    Level {
        path: "extensionProviders[].envoyExtAuthzHttp",
        refused: ext_authz::REFUSED,
    },
    Level {
        path: "extensionProviders[].envoyExtAuthzGrpc",
        refused: ext_authz::REFUSED,
    },
    Level {
        path: "extensionProviders[].opentelemetry",
        refused: &[
            ("maxTagLength", NOT_YET),
            ("grpc", "weft exports OTLP over HTTP: use http"),
            ("resourceDetectors", NOT_YET),
            ("dynamicSampler", NOT_YET),
        ],
    },
];

/// A mesh config read from text, and what was found wrong with it.
#[derive(Debug, Default)]
pub struct LoadedMeshConfig {
    /// The mesh config, when it has no errors.
    pub config: Option<MeshConfig>,
    /// Every error and warning, located.
    pub diagnostics: Vec<Diagnostic>,
}

/// True when `text` is one document, Istio's ConfigMap with a `mesh` key (what
/// `weft validate -f` reads as a mesh config rather than as resources).
pub fn is_mesh_config_map(text: &str) -> bool {
    source::parse_documents(text)
        .is_ok_and(|docs| matches!(docs.as_slice(), [d] if mesh_text(d).is_some()))
}

/// The `data.mesh` scalar of a ConfigMap document.
fn mesh_text(doc: &Node) -> Option<&Node> {
    if doc.get("kind").and_then(Node::as_str) != Some("ConfigMap") {
        return None;
    }
    doc.get("data")?
        .get("mesh")
        .filter(|n| n.as_str().is_some())
}

/// Reads a mesh config from `text` (read from `file`): Istio's mesh config YAML itself,
/// or Istio's ConfigMap holding it under `data.mesh`. JSON works too (a YAML subset).
pub fn load_mesh_config(file: &str, text: &str) -> LoadedMeshConfig {
    let mut out = LoadedMeshConfig::default();
    let error = |pos: Pos, message: String| Diagnostic::new(Severity::Error, file, pos, message);
    let docs = match source::parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            out.diagnostics
                .push(error(e.pos, format!("invalid YAML: {}", e.message)));
            return out;
        }
    };
    let docs: Vec<&Node> = docs.iter().filter(|d| !d.is_null()).collect();
    let empty = Node {
        value: NodeValue::Map(Vec::new()),
        pos: Pos { line: 1, column: 1 },
    };
    let docs = if docs.is_empty() { vec![&empty] } else { docs };
    let [doc] = docs.as_slice() else {
        out.diagnostics.push(error(
            Pos { line: 1, column: 1 },
            format!(
                "a mesh config file holds one document (Istio's mesh config, or its ConfigMap); got {}",
                docs.len()
            ),
        ));
        return out;
    };
    if doc.get("kind").is_some() || doc.get("apiVersion").is_some() {
        let Some(mesh) = mesh_text(doc) else {
            out.diagnostics.push(error(
                doc.pos,
                "expected Istio's mesh config, or a ConfigMap with the mesh config under data.mesh"
                    .into(),
            ));
            return out;
        };
        let inner = mesh.as_str().unwrap_or_default();
        let shift = Shift::of(text, mesh);
        let mut loaded = load_mesh_config(file, inner);
        for d in &mut loaded.diagnostics {
            let moved = shift.apply(Pos {
                line: d.line,
                column: d.column,
            });
            d.line = moved.line;
            d.column = moved.column;
            d.field = Some(match &d.field {
                Some(f) => format!("data.mesh: {f}"),
                None => "data.mesh".to_string(),
            });
        }
        return loaded;
    }
    let mut tree = (*doc).clone();
    refuse_unimplemented(&mut tree, "", file, &mut out.diagnostics);
    let ctx = RefCell::new(ReadContext::default());
    let read = source::from_node::<MeshConfig>(&tree, "", &ctx);
    let ctx = ctx.into_inner();
    let de = |e: &source::DeError| {
        let mut d = error(e.pos.unwrap_or(tree.pos), e.message.clone());
        d.field = e.path.clone().filter(|p| !p.is_empty());
        d
    };
    out.diagnostics.extend(ctx.errors.iter().map(de));
    let config = match read {
        Ok(c) => c,
        Err(e) => {
            out.diagnostics.push(de(&e));
            out.diagnostics.sort_by_key(|d| (d.line, d.column));
            return out;
        }
    };
    let mut v = Validator::new("");
    config.validate(&mut v);
    // An issue about what holds a refused field (a provider left without a kind) would
    // only echo the refusal.
    let refused: Vec<String> = out
        .diagnostics
        .iter()
        .filter_map(|d| d.field.clone())
        .collect();
    let echoes = |path: &str| {
        refused.iter().any(|r| {
            r.starts_with(path) && matches!(r.as_bytes().get(path.len()), Some(b'.' | b'['))
        })
    };
    for Issue {
        severity,
        path,
        message,
    } in v.into_issues()
    {
        if echoes(&path) {
            continue;
        }
        let pos = position(&ctx.positions, &path, tree.pos);
        let mut d = Diagnostic::new(severity, file, pos, message);
        d.field = Some(path);
        out.diagnostics.push(d);
    }
    out.diagnostics.sort_by_key(|d| (d.line, d.column));
    if !out.diagnostics.iter().any(Diagnostic::is_error) {
        out.config = Some(config);
    }
    out
}

fn position(positions: &std::collections::HashMap<String, Pos>, path: &str, fallback: Pos) -> Pos {
    let mut path = path;
    loop {
        if let Some(p) = positions.get(path) {
            return *p;
        }
        match path.rfind(['.', '[']) {
            Some(i) => path = &path[..i],
            None => return fallback,
        }
    }
}

/// Removes, with an error each, the fields of Istio's MeshConfig weft does not implement,
/// so that what remains reads strictly into [`MeshConfig`].
fn refuse_unimplemented(node: &mut Node, path: &str, file: &str, out: &mut Vec<Diagnostic>) {
    let pattern = list_pattern(path);
    let NodeValue::Map(entries) = &mut node.value else {
        return;
    };
    let refused = LEVELS
        .iter()
        .find(|l| l.path == pattern)
        .map_or(&[][..], |l| l.refused);
    entries.retain(|(key, _)| {
        let name = key.as_str().unwrap_or_default();
        let Some((_, hint)) = refused.iter().find(|(f, _)| *f == name) else {
            return true;
        };
        let field = join(path, name);
        let mut message = format!("weft does not implement meshConfig.{field}");
        if !hint.is_empty() {
            message.push_str(&format!(" ({hint})"));
        }
        message.push_str("; remove it");
        let mut d = Diagnostic::new(Severity::Error, file, key.pos, message);
        d.field = Some(field);
        out.push(d);
        false
    });
    for (key, value) in entries.iter_mut() {
        let child = join(path, key.as_str().unwrap_or_default());
        match &mut value.value {
            NodeValue::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    refuse_unimplemented(item, &format!("{child}[{i}]"), file, out);
                }
            }
            NodeValue::Map(_) => refuse_unimplemented(value, &child, file, out),
            NodeValue::Scalar(_) => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `extensionProviders[3].opentelemetry` → `extensionProviders[].opentelemetry`.
fn list_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

/// How positions inside a ConfigMap's `data.mesh` text map to the file's.
struct Shift {
    /// Lines before the text's first line.
    lines: usize,
    /// Columns before the text's first column (a block scalar's indentation).
    columns: usize,
    /// The scalar is a block (`|`, `>`): its positions map line by line; a quoted one's
    /// escapes do not, so its diagnostics point at the scalar.
    block: bool,
    /// The scalar's own position, for flow scalars.
    at: Pos,
}

impl Shift {
    fn of(text: &str, scalar: &Node) -> Shift {
        // A block scalar's node starts at its first content line; a quoted one at its quote.
        let first = text
            .lines()
            .nth(scalar.pos.line.saturating_sub(1))
            .and_then(|l| l.get(scalar.pos.column.saturating_sub(1)..))
            .and_then(|rest| rest.chars().next());
        Shift {
            lines: scalar.pos.line.saturating_sub(1),
            columns: scalar.pos.column.saturating_sub(1),
            block: !matches!(first, Some('"' | '\'')),
            at: scalar.pos,
        }
    }

    fn apply(&self, pos: Pos) -> Pos {
        if !self.block || pos.line == 0 {
            return self.at;
        }
        Pos {
            line: self.lines + pos.line,
            column: self.columns + pos.column,
        }
    }
}

#[cfg(test)]
mod tests;
