//! `DestinationRule`: policies for traffic to a service after routing, and its subsets.
//!
//! This file holds the resource, its subsets and the traffic policy that ties the
//! parts together; each part has its own module:
//!
//! - `load_balancer`: simple and consistent-hash balancing, locality and warmup;
//! - `connection_pool`: TCP and HTTP connection pool limits;
//! - `outlier`: outlier detection (passive health checking);
//! - `tls`: TLS toward the upstream.
//!
//! Everything public is re-exported here, so paths stay `destination_rule::Type`.

mod connection_pool;
mod load_balancer;
mod outlier;
mod tls;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::common::{PortSelector, WorkloadSelector};
use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

pub use connection_pool::{
    ConnectionPoolSettings, H2UpgradePolicy, Http2KeepAlive, HttpSettings, TcpKeepalive,
    TcpSettings,
};
pub use load_balancer::{
    ConsistentHashLb, CookieAttribute, HttpCookie, LoadBalancerSettings, LocalityDistribute,
    LocalityFailover, LocalityLbSetting, Maglev, RingHash, SimpleLb, WarmupConfiguration,
};
pub use outlier::OutlierDetection;
pub use tls::{ClientTlsMode, ClientTlsSettings};

/// DestinationRule spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Tunnel settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// Protocol version.
    #[serde(default)]
    pub version: ProxyProtocolVersion,
}

/// PROXY protocol versions.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Share of active requests that may be retries (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Retries always allowed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    /// Window over which requests are counted (Istio 1.31); 0 (in flight only) is the
    /// default and the only value weft accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
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
            v.error_at(
                "tunnel",
                "not supported: weft does not tunnel connections through a proxy (CONNECT or POST); remove tunnel",
            );
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
        if self.proxy_protocol.is_some() {
            v.error_at(
                "proxyProtocol",
                "not supported: weft does not send a PROXY protocol header upstream; remove proxyProtocol",
            );
        }
        if let Some(b) = &self.retry_budget {
            v.field("retryBudget", |v| {
                // 0 (Istio's default) counts the requests in flight, as weft's budget does.
                if b.budget_interval.is_some_and(|d| !d.get().is_zero()) {
                    v.error_at(
                        "budgetInterval",
                        "not supported: weft's budget counts the requests in flight (Istio's behaviour with budgetInterval 0, the default); remove budgetInterval",
                    );
                }
                if let Some(p) = b.percent {
                    if !(0.0..=100.0).contains(&p) {
                        v.error_at("percent", format!("must be in [0, 100] (got {p})"));
                    }
                }
            });
        }
    }
}

fn non_negative(v: &mut Validator, name: &str, value: Option<i32>) {
    if let Some(n) = value {
        if n < 0 {
            v.error_at(name, format!("must not be negative (got {n})"));
        }
    }
}

#[cfg(test)]
mod tests;
