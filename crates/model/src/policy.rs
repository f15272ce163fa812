//! Cluster policies: a DestinationRule's settings merged for one cluster, with Istio's defaults.
//!
//! Merge order (ISTIO-SEMANTICS §2.7): the rule's top-level policy; a matching
//! `portLevelSettings` entry replaces its four components (load balancer, pool,
//! outlier detection, TLS) rather than merging; for a subset cluster, the
//! subset's policy then overrides each component it sets, and the subset's own
//! matching port-level entry replaces all four again.

use std::time::Duration;

use serde::Serialize;
use weft_api::networking::destination_rule as dr;

/// How endpoints are chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancer {
    /// Round robin.
    RoundRobin,
    /// Power of two choices on outstanding requests (Istio's default).
    LeastRequest,
    /// Uniform random.
    Random,
    /// Forward to the original destination address.
    Passthrough,
    /// Consistent hashing.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// Ring hash or Maglev.
        algorithm: HashAlgorithm,
    },
}

/// What a consistent hash is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// A request header (lower-case name).
    Header(String),
    /// A cookie; generated with `ttl` when absent and a TTL is set.
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Lifetime of a generated cookie.
        ttl: Option<Duration>,
    },
    /// The client's IP.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// Consistent hashing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// Ring hash with at least this many entries (default 1024).
    RingHash {
        /// Minimum ring size.
        minimum_ring_size: u64,
    },
    /// Maglev with this table size (default 65537).
    Maglev {
        /// Table size (prime).
        table_size: u64,
    },
}

/// Connection pool limits; `None` means unlimited, as in Envoy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolLimits {
    /// Most connections to the cluster.
    pub max_connections: Option<u32>,
    /// Connect timeout (default 10s).
    pub connect_timeout: Duration,
    /// Longest connection life.
    pub max_connection_duration: Option<Duration>,
    /// TCP idle timeout (default 1h).
    pub tcp_idle_timeout: Duration,
    /// TCP keepalive (time, interval, probes).
    pub tcp_keepalive: Option<Keepalive>,
    /// Most requests waiting for a connection.
    pub max_pending_requests: Option<u32>,
    /// Most active requests.
    pub max_requests: Option<u32>,
    /// Requests per connection (`None`: unlimited; 1 disables keep-alive).
    pub max_requests_per_connection: Option<u32>,
    /// Most concurrent retries.
    pub max_retries: Option<u32>,
    /// HTTP idle timeout (default 1h).
    pub http_idle_timeout: Duration,
    /// Upgrade HTTP/1.1 to HTTP/2 toward the upstream.
    pub h2_upgrade: bool,
    /// Use the client's protocol toward the upstream.
    pub use_client_protocol: bool,
    /// Most concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 PING keepalive on upstream connections.
    pub http2_keepalive: Option<Http2Keepalive>,
}

/// HTTP/2 PING keepalive: a PING every `interval`; unanswered within `timeout`, the
/// connection is closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Http2Keepalive {
    /// Time between PINGs.
    pub interval: Duration,
    /// How long a PING may go unanswered (`None`: the HTTP/2 client's default, 20s).
    pub timeout: Option<Duration>,
}

/// TCP keepalive settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keepalive {
    /// Idle time before probing.
    pub time: Option<Duration>,
    /// Time between probes.
    pub interval: Option<Duration>,
    /// Probes before giving up.
    pub probes: Option<u32>,
}

/// Outlier detection, with Envoy's defaults for unset fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierPolicy {
    /// Consecutive 5xx before ejection (default 5; `None` when set to 0).
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors before ejection.
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive local-origin failures (when split).
    pub consecutive_local_origin_failures: Option<u32>,
    /// Whether local-origin failures are counted apart.
    pub split_external_local_origin_errors: bool,
    /// Analysis interval (default 10s).
    pub interval: Duration,
    /// Base ejection time (default 30s).
    pub base_ejection_time: Duration,
    /// Most endpoints ejected, percent (default 10).
    pub max_ejection_percent: u32,
    /// Below this healthy share ejection stops (default 0).
    pub min_health_percent: u32,
}

/// TLS toward the upstream (DestinationRule `tls`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamTls {
    /// No `tls` settings: Istio's auto mTLS (mesh mTLS to endpoints that run a sidecar
    /// and accept it, plaintext to the others).
    #[default]
    Auto,
    /// Plaintext, even to mesh endpoints.
    Disable,
    /// TLS, the server verified (`caCertificates`, else the system's roots).
    Simple(OriginateTls),
    /// TLS with the client certificate the rule names.
    Mutual(OriginateTls),
    /// Mesh mTLS with the workload certificate, to every endpoint.
    IstioMutual {
        /// SNI to send.
        sni: Option<String>,
        /// Accepted server identities (SPIFFE URIs); empty: the service's accounts.
        subject_alt_names: Vec<String>,
    },
}

/// `SIMPLE` and `MUTUAL` settings: files are read by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OriginateTls {
    /// SNI to send; the service host when unset.
    pub sni: Option<String>,
    /// Accepted server names (DNS or URI SANs); the SNI when empty.
    pub subject_alt_names: Vec<String>,
    /// PEM file of the CAs that sign the server's certificate.
    pub ca_certificates: Option<String>,
    /// PEM file of the client certificate chain (`MUTUAL`).
    pub client_certificate: Option<String>,
    /// PEM file of the client key (`MUTUAL`).
    pub private_key: Option<String>,
    /// Skip verifying the server's certificate.
    pub insecure_skip_verify: bool,
}

/// A retry budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryBudget {
    /// Share of active requests that may be retries.
    pub percent: f64,
    /// Retries always allowed.
    pub min_retry_concurrency: u32,
}

/// Everything a cluster does besides choosing its endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterPolicy {
    /// Load balancer.
    pub load_balancer: LoadBalancer,
    /// Pool limits.
    pub pool: PoolLimits,
    /// Outlier detection, when configured.
    pub outlier: Option<OutlierPolicy>,
    /// Upstream TLS.
    pub tls: UpstreamTls,
    /// Retry budget, when configured.
    pub retry_budget: Option<RetryBudget>,
    /// weft's active health check, when configured (annotation `health.weft.io/check`).
    pub health_check: Option<HealthCheck>,
}

/// weft's active health check of a cluster's endpoints (annotation `health.weft.io/check`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// HTTP path to GET (a 2xx answer passes), or `None` for a TCP connect probe.
    pub http_path: Option<String>,
    /// Time between probes.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Passing probes in a row to become healthy.
    pub healthy_threshold: u32,
    /// Failing probes in a row to become unhealthy.
    pub unhealthy_threshold: u32,
}

impl From<weft_api::extensions::HealthCheck> for HealthCheck {
    fn from(c: weft_api::extensions::HealthCheck) -> Self {
        HealthCheck {
            http_path: c.http_path,
            interval: c.interval,
            timeout: c.timeout,
            healthy_threshold: c.healthy_threshold,
            unhealthy_threshold: c.unhealthy_threshold,
        }
    }
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        ClusterPolicy::from_components(&Components::default(), None)
    }
}

/// The four components port-level settings replace, as API values.
#[derive(Debug, Clone, Default)]
struct Components {
    load_balancer: Option<dr::LoadBalancerSettings>,
    connection_pool: Option<dr::ConnectionPoolSettings>,
    outlier_detection: Option<dr::OutlierDetection>,
    tls: Option<dr::ClientTlsSettings>,
}

impl Components {
    fn of(policy: &dr::TrafficPolicy) -> Self {
        Components {
            load_balancer: policy.load_balancer.clone(),
            connection_pool: policy.connection_pool.clone(),
            outlier_detection: policy.outlier_detection.clone(),
            tls: policy.tls.clone(),
        }
    }

    fn port_level(policy: &dr::TrafficPolicy, port: u16) -> Option<Self> {
        policy
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|s| s.number == u32::from(port)))
            .map(|p| Components {
                load_balancer: p.load_balancer.clone(),
                connection_pool: p.connection_pool.clone(),
                outlier_detection: p.outlier_detection.clone(),
                tls: p.tls.clone(),
            })
    }

    fn override_with(&mut self, other: Components) {
        if other.load_balancer.is_some() {
            self.load_balancer = other.load_balancer;
        }
        if other.connection_pool.is_some() {
            self.connection_pool = other.connection_pool;
        }
        if other.outlier_detection.is_some() {
            self.outlier_detection = other.outlier_detection;
        }
        if other.tls.is_some() {
            self.tls = other.tls;
        }
    }
}

/// The policy of cluster (`port`, `subset`) under a DestinationRule's top-level
/// policy `top` and the subset's policy `subset`.
pub fn merge(
    top: Option<&dr::TrafficPolicy>,
    subset: Option<&dr::TrafficPolicy>,
    port: u16,
) -> ClusterPolicy {
    let mut components = Components::default();
    if let Some(top) = top {
        components = Components::port_level(top, port).unwrap_or_else(|| Components::of(top));
    }
    let mut budget = top.and_then(|t| t.retry_budget.as_ref());
    if let Some(subset) = subset {
        components.override_with(Components::of(subset));
        if let Some(port_level) = Components::port_level(subset, port) {
            components = port_level;
        }
        budget = subset.retry_budget.as_ref().or(budget);
    }
    ClusterPolicy::from_components(&components, budget)
}

fn dur(d: &Option<weft_api::Duration>) -> Option<Duration> {
    d.map(weft_api::Duration::get)
}

fn limit(n: Option<i32>) -> Option<u32> {
    n.filter(|n| *n > 0).map(|n| n.unsigned_abs())
}

impl ClusterPolicy {
    fn from_components(c: &Components, budget: Option<&dr::RetryBudget>) -> Self {
        ClusterPolicy {
            load_balancer: load_balancer(c.load_balancer.as_ref()),
            pool: pool(c.connection_pool.as_ref()),
            outlier: c.outlier_detection.as_ref().map(outlier),
            tls: tls(c.tls.as_ref()),
            retry_budget: budget.map(|b| RetryBudget {
                percent: b.percent.unwrap_or(20.0),
                min_retry_concurrency: b.min_retry_concurrency.unwrap_or(3),
            }),
            health_check: None,
        }
    }
}

fn load_balancer(lb: Option<&dr::LoadBalancerSettings>) -> LoadBalancer {
    let Some(lb) = lb else {
        return LoadBalancer::LeastRequest;
    };
    if let Some(ch) = &lb.consistent_hash {
        let key = if let Some(h) = &ch.http_header_name {
            HashKey::Header(h.to_ascii_lowercase())
        } else if let Some(c) = &ch.http_cookie {
            HashKey::Cookie {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: dur(&c.ttl),
            }
        } else if let Some(q) = &ch.http_query_parameter_name {
            HashKey::QueryParameter(q.clone())
        } else {
            HashKey::SourceIp
        };
        let algorithm = match (&ch.maglev, &ch.ring_hash) {
            (Some(m), _) => HashAlgorithm::Maglev {
                table_size: m.table_size.unwrap_or(65537),
            },
            (None, Some(r)) => HashAlgorithm::RingHash {
                minimum_ring_size: r.minimum_ring_size.unwrap_or(1024),
            },
            (None, None) => HashAlgorithm::RingHash {
                minimum_ring_size: ch.minimum_ring_size.unwrap_or(1024),
            },
        };
        return LoadBalancer::ConsistentHash { key, algorithm };
    }
    match lb.simple.unwrap_or_default() {
        dr::SimpleLb::RoundRobin => LoadBalancer::RoundRobin,
        dr::SimpleLb::Random => LoadBalancer::Random,
        dr::SimpleLb::Passthrough => LoadBalancer::Passthrough,
        dr::SimpleLb::Unspecified | dr::SimpleLb::LeastConn | dr::SimpleLb::LeastRequest => {
            LoadBalancer::LeastRequest
        }
    }
}

const ONE_HOUR: Duration = Duration::from_secs(3600);

fn pool(p: Option<&dr::ConnectionPoolSettings>) -> PoolLimits {
    let tcp = p.and_then(|p| p.tcp.as_ref());
    let http = p.and_then(|p| p.http.as_ref());
    PoolLimits {
        max_connections: limit(tcp.and_then(|t| t.max_connections)),
        connect_timeout: tcp
            .and_then(|t| dur(&t.connect_timeout))
            .unwrap_or(Duration::from_secs(10)),
        max_connection_duration: tcp.and_then(|t| dur(&t.max_connection_duration)),
        tcp_idle_timeout: tcp.and_then(|t| dur(&t.idle_timeout)).unwrap_or(ONE_HOUR),
        tcp_keepalive: tcp
            .and_then(|t| t.tcp_keepalive.as_ref())
            .map(|k| Keepalive {
                time: dur(&k.time),
                interval: dur(&k.interval),
                probes: k.probes,
            }),
        max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
        max_requests: limit(http.and_then(|h| h.http2_max_requests)),
        max_requests_per_connection: limit(http.and_then(|h| h.max_requests_per_connection)),
        max_retries: limit(http.and_then(|h| h.max_retries)),
        http_idle_timeout: http.and_then(|h| dur(&h.idle_timeout)).unwrap_or(ONE_HOUR),
        h2_upgrade: http.and_then(|h| h.h2_upgrade_policy) == Some(dr::H2UpgradePolicy::Upgrade),
        use_client_protocol: http.and_then(|h| h.use_client_protocol).unwrap_or(false),
        max_concurrent_streams: limit(http.and_then(|h| h.max_concurrent_streams)),
        http2_keepalive: http
            .and_then(|h| h.http2_keep_alive.as_ref())
            .and_then(|k| {
                Some(Http2Keepalive {
                    interval: dur(&k.interval)?,
                    timeout: dur(&k.timeout),
                })
            }),
    }
}

fn outlier(o: &dr::OutlierDetection) -> OutlierPolicy {
    let gateway = o
        .consecutive_gateway_errors
        .or(o.consecutive_errors.map(|n| n.unsigned_abs()));
    OutlierPolicy {
        // Istio maps the deprecated consecutiveErrors to gateway errors and turns 5xx ejection off.
        consecutive_5xx: match (o.consecutive5xx_errors, o.consecutive_errors) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(5),
        }
        .filter(|n| *n > 0),
        consecutive_gateway_errors: gateway.filter(|n| *n > 0),
        consecutive_local_origin_failures: o.consecutive_local_origin_failures.filter(|n| *n > 0),
        split_external_local_origin_errors: o.split_external_local_origin_errors.unwrap_or(false),
        interval: dur(&o.interval).unwrap_or(Duration::from_secs(10)),
        base_ejection_time: dur(&o.base_ejection_time).unwrap_or(Duration::from_secs(30)),
        max_ejection_percent: o.max_ejection_percent.map_or(10, i32::unsigned_abs),
        min_health_percent: o.min_health_percent.map_or(0, i32::unsigned_abs),
    }
}

fn tls(t: Option<&dr::ClientTlsSettings>) -> UpstreamTls {
    let Some(t) = t else {
        return UpstreamTls::Auto;
    };
    // SIMPLE sends no client certificate, whatever files it names (as Istio).
    let mutual = t.mode == dr::ClientTlsMode::Mutual;
    let originate = || OriginateTls {
        sni: t.sni.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
        ca_certificates: t.ca_certificates.clone(),
        client_certificate: t.client_certificate.clone().filter(|_| mutual),
        private_key: t.private_key.clone().filter(|_| mutual),
        insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
    };
    match t.mode {
        dr::ClientTlsMode::Disable => UpstreamTls::Disable,
        dr::ClientTlsMode::Simple => UpstreamTls::Simple(originate()),
        dr::ClientTlsMode::Mutual => UpstreamTls::Mutual(originate()),
        dr::ClientTlsMode::IstioMutual => UpstreamTls::IstioMutual {
            sni: t.sni.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::networking::PortSelector;

    fn lb(simple: dr::SimpleLb) -> Option<dr::LoadBalancerSettings> {
        Some(dr::LoadBalancerSettings {
            simple: Some(simple),
            ..Default::default()
        })
    }

    fn pool_with_max(n: i32) -> Option<dr::ConnectionPoolSettings> {
        Some(dr::ConnectionPoolSettings {
            tcp: Some(dr::TcpSettings {
                max_connections: Some(n),
                ..Default::default()
            }),
            http: None,
        })
    }

    #[test]
    fn defaults_are_istios() {
        let p = ClusterPolicy::default();
        assert_eq!(p.load_balancer, LoadBalancer::LeastRequest);
        assert_eq!(p.pool.connect_timeout, Duration::from_secs(10));
        assert_eq!(p.pool.http_idle_timeout, ONE_HOUR);
        assert!(p.outlier.is_none() && p.pool.max_connections.is_none());
    }

    #[test]
    fn port_level_settings_replace_rather_than_merge() {
        let top = dr::TrafficPolicy {
            load_balancer: lb(dr::SimpleLb::RoundRobin),
            connection_pool: pool_with_max(10),
            port_level_settings: vec![dr::PortTrafficPolicy {
                port: Some(PortSelector { number: 9090 }),
                load_balancer: lb(dr::SimpleLb::Random),
                ..Default::default()
            }],
            ..Default::default()
        };
        let on_9090 = merge(Some(&top), None, 9090);
        assert_eq!(on_9090.load_balancer, LoadBalancer::Random);
        assert_eq!(
            on_9090.pool.max_connections, None,
            "the pool is not inherited by the port-level entry"
        );
        let on_80 = merge(Some(&top), None, 80);
        assert_eq!(on_80.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(on_80.pool.max_connections, Some(10));
    }

    #[test]
    fn subset_policy_overrides_component_by_component() {
        let top = dr::TrafficPolicy {
            load_balancer: lb(dr::SimpleLb::RoundRobin),
            connection_pool: pool_with_max(10),
            ..Default::default()
        };
        let subset = dr::TrafficPolicy {
            load_balancer: lb(dr::SimpleLb::Random),
            ..Default::default()
        };
        let p = merge(Some(&top), Some(&subset), 80);
        assert_eq!(p.load_balancer, LoadBalancer::Random);
        assert_eq!(p.pool.max_connections, Some(10));
    }

    #[test]
    fn outlier_defaults_apply_when_configured() {
        let top = dr::TrafficPolicy {
            outlier_detection: Some(dr::OutlierDetection::default()),
            ..Default::default()
        };
        let o = merge(Some(&top), None, 80).outlier.expect("configured");
        assert_eq!(o.consecutive_5xx, Some(5));
        assert_eq!(
            (o.interval, o.base_ejection_time, o.max_ejection_percent),
            (Duration::from_secs(10), Duration::from_secs(30), 10)
        );
    }
}
