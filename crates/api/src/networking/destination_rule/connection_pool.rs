//! Connection pool limits toward a service: TCP connections and keepalive, HTTP
//! requests and streams.

use serde::{Deserialize, Serialize};

use super::non_negative;
use crate::duration::Duration;
use crate::validate::{Validate, Validator, checks};

/// Connection pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// HTTP/2 PING keepalive on upstream connections (Istio 1.31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// HTTP/2 PING keepalive (Envoy's `connection_keepalive`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http2KeepAlive {
    /// Send a PING this often; absent, none is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Close the connection when a PING is not answered within this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// HTTP/2 upgrade policy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
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
                if let Some(k) = &h.http2_keep_alive {
                    v.field("http2KeepAlive", |v| {
                        checks::duration_at_least(v, "interval", &k.interval, checks::ONE_MS);
                        checks::duration_at_least(v, "timeout", &k.timeout, checks::ONE_MS);
                        if k.interval.is_none() {
                            v.warn(
                                "http2KeepAlive without interval sends no PING: it has no effect",
                            );
                        }
                    });
                }
            });
        }
    }
}
