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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpAbortSpec {
    /// Percentage of connections reset, 0 to 100.
    pub percentage: f64,
}

/// Delays a share of connections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
