//! weft's extensions to Istio's API, carried in annotations so resources stay valid
//! Istio YAML. Each is parsed and validated like a field; see docs/extensions.md.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Object;
use crate::networking::VirtualService;
use crate::validate::Validator;

/// Fault injection share denominator (Envoy's million).
const MILLION: u32 = 1_000_000;

/// The annotation holding weft's TCP fault extension, on a VirtualService.
pub const TCP_FAULT_ANNOTATION: &str = "fault.weft.io/tcp";

/// weft's TCP fault injection (Istio has no API for it): reset a share of
/// connections, and/or delay a share before the upstream connection is made.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpFaultSpec {
    /// Reset connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<TcpAbortSpec>,
    /// Delay connection establishment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<TcpDelaySpec>,
}

/// Resets a share of connections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpAbortSpec {
    /// Percentage of connections reset, 0 to 100.
    pub percentage: f64,
}

/// Delays a share of connections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpDelaySpec {
    /// How long (Istio duration syntax).
    pub fixed_delay: String,
    /// Percentage of connections delayed, 0 to 100.
    pub percentage: f64,
}

/// The TCP fault, normalized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpFault {
    /// Connections reset, per million.
    pub abort_per_million: u32,
    /// Delay and connections delayed, per million.
    pub delay: Option<(Duration, u32)>,
}

fn per_million(percent: f64) -> u32 {
    (percent * 10_000.0).round().clamp(0.0, f64::from(MILLION)) as u32
}

/// Parses and checks the TCP fault annotation of a VirtualService.
pub fn parse_tcp_fault(text: &str) -> Result<TcpFault, String> {
    let spec: TcpFaultSpec = serde_json::from_str(text)
        .map_err(|e| format!("invalid {TCP_FAULT_ANNOTATION} (JSON): {e}"))?;
    let check = |p: f64| {
        if (0.0..=100.0).contains(&p) {
            Ok(per_million(p))
        } else {
            Err(format!("percentage must be in [0, 100] (got {p})"))
        }
    };
    let abort_per_million = spec
        .abort
        .as_ref()
        .map(|a| check(a.percentage))
        .transpose()?
        .unwrap_or(0);
    let delay = match &spec.delay {
        Some(d) => Some((
            crate::duration::parse_duration(&d.fixed_delay)?,
            check(d.percentage)?,
        )),
        None => None,
    };
    if spec.abort.is_none() && spec.delay.is_none() {
        return Err(format!("{TCP_FAULT_ANNOTATION} needs abort or delay"));
    }
    Ok(TcpFault {
        abort_per_million,
        delay,
    })
}

/// Validation of the TCP fault annotation, for the VirtualService validator.
pub fn validate_tcp_fault_annotation(vs: &Object<VirtualService>, v: &mut Validator) {
    if let Some(text) = vs.metadata.annotations.get(TCP_FAULT_ANNOTATION) {
        if let Err(e) = parse_tcp_fault(text) {
            v.error(e);
        }
        if vs.spec.tcp.is_empty() {
            v.warn(format!(
                "{TCP_FAULT_ANNOTATION} has no effect: the VirtualService has no tcp routes"
            ));
        }
    }
}

/// The annotation holding weft's active health check, on a ServiceEntry or a DestinationRule.
pub const HEALTH_CHECK_ANNOTATION: &str = "health.weft.io/check";

/// weft's active health check (Istio leaves this to Kubernetes probes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Probe with an HTTP GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckSpec>,
    /// Probe by opening a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheckSpec>,
    /// Time between probes (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time a probe may take (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Passing probes in a row to become healthy (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// Failing probes in a row to become unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheckSpec {
    /// Path to GET (default `/`); a 2xx answer passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A TCP probe (connect only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheckSpec {}

/// The active health check, normalized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// HTTP path to GET, or `None` for a TCP connect probe.
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

/// Parses and checks the health check annotation.
pub fn parse_health_check(text: &str) -> Result<HealthCheck, String> {
    let spec: HealthCheckSpec = serde_json::from_str(text)
        .map_err(|e| format!("invalid {HEALTH_CHECK_ANNOTATION} (JSON): {e}"))?;
    let duration = |d: &Option<String>, default: Duration| -> Result<Duration, String> {
        let d = match d {
            Some(t) => crate::duration::parse_duration(t)?,
            None => default,
        };
        if d < Duration::from_millis(1) {
            return Err(format!(
                "{HEALTH_CHECK_ANNOTATION}: durations must be at least 1ms"
            ));
        }
        Ok(d)
    };
    let http_path = match (&spec.http, &spec.tcp) {
        (Some(h), None) => {
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(format!(
                    "{HEALTH_CHECK_ANNOTATION}: http.path must start with / (got {path:?})"
                ));
            }
            Some(path)
        }
        (None, Some(_)) => None,
        _ => {
            return Err(format!(
                "{HEALTH_CHECK_ANNOTATION} needs exactly one of http or tcp"
            ));
        }
    };
    let threshold = |t: Option<u32>, default: u32| match t {
        Some(0) => Err(format!(
            "{HEALTH_CHECK_ANNOTATION}: thresholds must be at least 1"
        )),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(HealthCheck {
        http_path,
        interval: duration(&spec.interval, Duration::from_secs(10))?,
        timeout: duration(&spec.timeout, Duration::from_secs(1))?,
        healthy_threshold: threshold(spec.healthy_threshold, 1)?,
        unhealthy_threshold: threshold(spec.unhealthy_threshold, 3)?,
    })
}

/// Validation of the health check annotation of any resource carrying it.
pub fn validate_health_check_annotation(
    annotations: &std::collections::BTreeMap<String, String>,
    v: &mut Validator,
) {
    if let Some(text) = annotations.get(HEALTH_CHECK_ANNOTATION) {
        if let Err(e) = parse_health_check(text) {
            v.error(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_annotation() {
        let c = parse_health_check(
            r#"{"http": {"path": "/healthz"}, "interval": "2s", "unhealthyThreshold": 2}"#,
        )
        .expect("parses");
        assert_eq!(c.http_path.as_deref(), Some("/healthz"));
        assert_eq!(
            (
                c.interval,
                c.timeout,
                c.healthy_threshold,
                c.unhealthy_threshold
            ),
            (Duration::from_secs(2), Duration::from_secs(1), 1, 2)
        );
        assert_eq!(
            parse_health_check(r#"{"tcp": {}}"#).expect("tcp").http_path,
            None
        );
        assert!(parse_health_check(r#"{"http": {}, "tcp": {}}"#).is_err());
        assert!(parse_health_check(r#"{"http": {"path": "x"}}"#).is_err());
        assert!(parse_health_check(r#"{"tcp": {}, "healthyThreshold": 0}"#).is_err());
        assert!(
            parse_health_check(r#"{"tcp": {}, "intervall": "1s"}"#)
                .expect_err("unknown")
                .contains("intervall")
        );
    }

    #[test]
    fn tcp_fault_annotation() {
        let f = parse_tcp_fault(
            r#"{"abort": {"percentage": 10}, "delay": {"fixedDelay": "2s", "percentage": 50}}"#,
        )
        .expect("parses");
        assert_eq!(f.abort_per_million, 100_000);
        assert_eq!(f.delay, Some((Duration::from_secs(2), 500_000)));
        assert!(parse_tcp_fault(r#"{"abort": {"percentage": 120}}"#).is_err());
        assert!(
            parse_tcp_fault(r#"{"abrot": {"percentage": 1}}"#)
                .expect_err("unknown field")
                .contains("abrot")
        );
        assert!(parse_tcp_fault("{}").is_err());
    }
}
