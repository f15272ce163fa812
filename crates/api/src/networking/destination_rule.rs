//! `DestinationRule`: policies for traffic to a service after routing, and its subsets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{PortSelector, WorkloadSelector};
use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// DestinationRule spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// The service host the rule applies to.
    #[serde(default)]
    pub host: String,
    /// Service-wide policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets of the service's endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces that can see this rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Only clients with these labels use this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// A named subset of endpoints, selected by labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name (DNS-1123 label).
    #[serde(default)]
    pub name: String,
    /// Labels an endpoint must carry to belong to the subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Policy for this subset, used only when a route targets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Load balancing, connection pool, outlier detection and TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS toward the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port policies; each replaces the fields above for its port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// PROXY protocol toward the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Retry budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// A policy for one port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS toward the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Load balancer settings: `simple` or `consistentHash`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// A simple algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Consistent hashing (session affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated slow-start window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start for new endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// Simple load balancing algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio's default (LEAST_REQUEST).
    #[default]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    LeastConn,
    /// Random choice.
    Random,
    /// Forward to the original destination.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Fewest outstanding requests (power of two choices).
    LeastRequest,
}

/// Consistent hashing settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on this cookie (generated when absent and a TTL is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Ring hash (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
    /// Deprecated ring size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// A hash cookie.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default)]
    pub name: String,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra cookie attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// One cookie attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Attribute value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Ring hash settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// Minimum ring size (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Maglev settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maglev {
    /// Table size, a prime (default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// Locality-aware load balancing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Weighted distribution between localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    /// Failover between regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    /// Ordered labels for failover priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Enable locality balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Traffic distribution from one locality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Origin locality.
    #[serde(default)]
    pub from: String,
    /// Destination localities and weights (summing to 100).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// Failover from one region to another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Origin region.
    #[serde(default)]
    pub from: String,
    /// Failover region.
    #[serde(default)]
    pub to: String,
}

/// Slow start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// Warmup window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Starting percentage of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<f64>,
    /// Curve of the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

/// Connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// TCP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// TCP connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Most connections to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// Connect timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Longest life of a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// Idle timeout (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before probes start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// HTTP connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Most requests queued for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Most active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Requests per connection; 1 disables keep-alive, 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Most concurrent retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Idle timeout (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Upgrade HTTP/1.1 to HTTP/2 upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Use the client's protocol upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// Most concurrent streams per HTTP/2 connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
}

/// HTTP/2 upgrade policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh default.
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade.
    Upgrade,
}

/// Outlier detection (passive health checking).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Deprecated: consecutive gateway errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Split local-origin failures from upstream errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Consecutive 502/503/504 before ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive 5xx before ejection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive5xx_errors: Option<u32>,
    /// Time between analyses (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Base ejection time (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints ejected, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Below this healthy percentage, ejection stops (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
}

/// TLS toward the upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// TLS mode.
    #[serde(default)]
    pub mode: ClientTlsMode,
    /// Client certificate file (MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Client key file (MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA certificates file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Name of a secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Accepted server identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

/// Client TLS modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS with server verification.
    Simple,
    /// TLS with client certificates given by the user.
    Mutual,
    /// Mesh mTLS with identities from the mesh CA.
    IstioMutual,
}

/// Tunnel settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` or `POST`.
    #[serde(default)]
    pub protocol: String,
    /// Host to tunnel to.
    #[serde(default)]
    pub target_host: String,
    /// Port to tunnel to.
    #[serde(default)]
    pub target_port: u32,
}

/// PROXY protocol settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// Protocol version.
    #[serde(default)]
    pub version: ProxyProtocolVersion,
}

/// PROXY protocol versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProxyProtocolVersion {
    /// Version 1 (text).
    #[default]
    #[serde(rename = "V1")]
    V1,
    /// Version 2 (binary).
    #[serde(rename = "V2")]
    V2,
}

/// A retry budget: retries allowed as a share of active requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Share of active requests that may be retries (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
}

impl DestinationRule {
    /// The subset named `name`: the first definition wins, as in Istio.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

impl Validate for DestinationRule {
    fn validate(&self, v: &mut Validator) {
        v.field("host", |v| {
            if self.host.is_empty() {
                v.error("host is required");
            } else {
                checks::wildcard_host(v, &self.host);
            }
        });
        v.optional("trafficPolicy", &self.traffic_policy);
        let mut names = BTreeSet::new();
        v.each("subsets", &self.subsets, |v, subset| {
            v.field("name", |v| {
                if subset.name.is_empty() {
                    v.error("subset name is required");
                } else {
                    checks::dns_label(v, "subset name", &subset.name);
                }
                if !names.insert(subset.name.as_str()) {
                    v.error(format!("duplicate subset name {:?}", subset.name));
                }
            });
            checks::labels(v, "labels", &subset.labels);
            v.optional("trafficPolicy", &subset.traffic_policy);
        });
        checks::export_to(v, &self.export_to);
        v.optional("workloadSelector", &self.workload_selector);
    }
}

impl Validate for TrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        v.optional("loadBalancer", &self.load_balancer);
        v.optional("connectionPool", &self.connection_pool);
        v.optional("outlierDetection", &self.outlier_detection);
        v.optional("tls", &self.tls);
        let mut ports = BTreeSet::new();
        v.each("portLevelSettings", &self.port_level_settings, |v, p| {
            match &p.port {
                None => v.error_at("port", "port is required"),
                Some(port) => {
                    v.field("port", |v| port.validate(v));
                    if !ports.insert(port.number) {
                        v.error_at("port", format!("duplicate port {}", port.number));
                    }
                }
            }
            v.optional("loadBalancer", &p.load_balancer);
            v.optional("connectionPool", &p.connection_pool);
            v.optional("outlierDetection", &p.outlier_detection);
            v.optional("tls", &p.tls);
        });
        if let Some(t) = &self.tunnel {
            v.field("tunnel", |v| {
                if t.protocol != "CONNECT" && t.protocol != "POST" {
                    v.error_at(
                        "protocol",
                        format!("must be CONNECT or POST (got {:?})", t.protocol),
                    );
                }
                v.field("targetHost", |v| checks::wildcard_host(v, &t.target_host));
                checks::port_number(v, "targetPort", t.target_port);
            });
        }
        if let Some(b) = &self.retry_budget {
            v.field("retryBudget", |v| {
                if let Some(p) = b.percent {
                    if !(0.0..=100.0).contains(&p) {
                        v.error_at("percent", format!("must be in [0, 100] (got {p})"));
                    }
                }
            });
        }
    }
}

impl Validate for LoadBalancerSettings {
    fn validate(&self, v: &mut Validator) {
        if self.simple.is_some() && self.consistent_hash.is_some() {
            v.error("only one of simple or consistentHash may be set");
        }
        if let Some(ch) = &self.consistent_hash {
            v.field("consistentHash", |v| ch.validate(v));
        }
        if let Some(l) = &self.locality_lb_setting {
            v.field("localityLbSetting", |v| l.validate(v));
        }
        if self.warmup_duration_secs.is_some() {
            v.warn_at(
                "warmupDurationSecs",
                "warmupDurationSecs is deprecated; use warmup.duration",
            );
        }
        if let Some(w) = &self.warmup {
            v.field("warmup", |v| {
                if w.duration.is_none() {
                    v.error_at("duration", "warmup duration is required");
                }
                checks::duration_at_least(v, "duration", &w.duration, checks::ONE_MS);
                if let Some(p) = w.minimum_percent {
                    if !(0.0..=100.0).contains(&p) {
                        v.error_at("minimumPercent", format!("must be in [0, 100] (got {p})"));
                    }
                }
                if let Some(a) = w.aggression {
                    if a < 1.0 {
                        v.error_at("aggression", format!("must be at least 1.0 (got {a})"));
                    }
                }
            });
        }
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, v: &mut Validator) {
        let keys = [
            self.http_header_name.is_some(),
            self.http_cookie.is_some(),
            self.use_source_ip == Some(true),
            self.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|k| **k).count() {
            0 => v.error("consistent hashing needs one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"),
            1 => {}
            _ => v.error("only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set"),
        }
        if let Some(h) = &self.http_header_name {
            v.field("httpHeaderName", |v| checks::header_name(v, h));
        }
        if let Some(c) = &self.http_cookie {
            v.field("httpCookie", |v| {
                if c.name.is_empty() {
                    v.error_at("name", "cookie name is required");
                }
            });
        }
        if self.ring_hash.is_some() && self.maglev.is_some() {
            v.error("only one of ringHash or maglev may be set");
        }
        if self.minimum_ring_size.is_some() {
            v.warn_at(
                "minimumRingSize",
                "minimumRingSize is deprecated; use ringHash.minimumRingSize",
            );
            if self.ring_hash.is_some() || self.maglev.is_some() {
                v.error_at(
                    "minimumRingSize",
                    "cannot be combined with ringHash or maglev",
                );
            }
        }
        if let Some(size) = self.maglev.as_ref().and_then(|m| m.table_size) {
            if !is_prime(size) {
                v.field("maglev", |v| {
                    v.error_at("tableSize", format!("must be a prime number (got {size})"))
                });
            }
        }
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

impl Validate for LocalityLbSetting {
    fn validate(&self, v: &mut Validator) {
        let used = [!self.distribute.is_empty(), !self.failover.is_empty()];
        if used.iter().all(|u| *u) {
            v.error("only one of distribute or failover may be set");
        }
        v.each("distribute", &self.distribute, |v, d| {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                v.error_at("to", format!("weights must sum to 100 (got {total})"));
            }
        });
        v.each("failover", &self.failover, |v, f| {
            if f.from == f.to {
                v.error(format!(
                    "failover from and to must differ (both {:?})",
                    f.from
                ));
            }
            if f.from.contains('/') || f.to.contains('/') {
                v.error("failover is between regions; a region must not contain '/'");
            }
        });
    }
}

fn non_negative(v: &mut Validator, name: &str, value: Option<i32>) {
    if let Some(n) = value {
        if n < 0 {
            v.error_at(name, format!("must not be negative (got {n})"));
        }
    }
}

fn percent_field(v: &mut Validator, name: &str, value: Option<i32>) {
    if let Some(n) = value {
        if !(0..=100).contains(&n) {
            v.error_at(name, format!("must be in 0..100 (got {n})"));
        }
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, v: &mut Validator) {
        if self.tcp.is_none() && self.http.is_none() {
            v.error("a connection pool needs tcp or http settings");
        }
        if let Some(t) = &self.tcp {
            v.field("tcp", |v| {
                non_negative(v, "maxConnections", t.max_connections);
                checks::duration_at_least(v, "connectTimeout", &t.connect_timeout, checks::ONE_MS);
                checks::duration_at_least(
                    v,
                    "maxConnectionDuration",
                    &t.max_connection_duration,
                    checks::ONE_MS,
                );
                checks::duration_at_least(v, "idleTimeout", &t.idle_timeout, checks::ONE_MS);
                if let Some(k) = &t.tcp_keepalive {
                    v.field("tcpKeepalive", |v| {
                        checks::duration_at_least(
                            v,
                            "time",
                            &k.time,
                            std::time::Duration::from_secs(1),
                        );
                        checks::duration_at_least(
                            v,
                            "interval",
                            &k.interval,
                            std::time::Duration::from_secs(1),
                        );
                    });
                }
            });
        }
        if let Some(h) = &self.http {
            v.field("http", |v| {
                non_negative(v, "http1MaxPendingRequests", h.http1_max_pending_requests);
                non_negative(v, "http2MaxRequests", h.http2_max_requests);
                non_negative(v, "maxRequestsPerConnection", h.max_requests_per_connection);
                non_negative(v, "maxRetries", h.max_retries);
                non_negative(v, "maxConcurrentStreams", h.max_concurrent_streams);
                checks::duration_at_least(v, "idleTimeout", &h.idle_timeout, checks::ONE_MS);
            });
        }
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, v: &mut Validator) {
        if self.consecutive_errors.is_some() {
            v.warn_at("consecutiveErrors", "consecutiveErrors is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors");
        }
        non_negative(v, "consecutiveErrors", self.consecutive_errors);
        checks::duration_at_least(v, "interval", &self.interval, checks::ONE_MS);
        checks::duration_at_least(
            v,
            "baseEjectionTime",
            &self.base_ejection_time,
            checks::ONE_MS,
        );
        percent_field(v, "maxEjectionPercent", self.max_ejection_percent);
        percent_field(v, "minHealthPercent", self.min_health_percent);
        if self.consecutive_local_origin_failures.is_some()
            && self.split_external_local_origin_errors != Some(true)
        {
            v.error_at(
                "consecutiveLocalOriginFailures",
                "only takes effect with splitExternalLocalOriginErrors: true",
            );
        }
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let has_files = self.client_certificate.is_some()
            || self.private_key.is_some()
            || self.ca_certificates.is_some();
        match self.mode {
            ClientTlsMode::Disable | ClientTlsMode::IstioMutual => {
                if has_files || self.credential_name.is_some() {
                    v.error(format!(
                        "certificates and credentialName cannot be set with mode {}",
                        if self.mode == ClientTlsMode::Disable {
                            "DISABLE"
                        } else {
                            "ISTIO_MUTUAL"
                        }
                    ));
                }
            }
            ClientTlsMode::Mutual => {
                if self.credential_name.is_none()
                    && (self.client_certificate.is_none() || self.private_key.is_none())
                {
                    v.error("MUTUAL mode needs clientCertificate and privateKey");
                }
            }
            ClientTlsMode::Simple => {
                if self.client_certificate.is_some() || self.private_key.is_some() {
                    v.error("SIMPLE mode does not use clientCertificate or privateKey; use MUTUAL");
                }
            }
        }
        if self.credential_name.is_some() && has_files {
            v.error("credentialName cannot be combined with certificate files");
        }
        // weft reads certificates from files; there are no Kubernetes secrets to name.
        if self.credential_name.is_some() {
            v.error_at(
                "credentialName",
                "not supported: weft has no Kubernetes secrets; give clientCertificate, privateKey and caCertificates as files",
            );
        }
        if self.ca_crl.is_some() {
            v.error_at(
                "caCrl",
                "not supported: certificate revocation lists are not checked; remove the field",
            );
        }
        if let Some(sni) = &self.sni {
            v.field("sni", |v| checks::wildcard_host(v, sni));
        }
    }
}

#[cfg(test)]
mod tests;
