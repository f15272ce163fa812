//! The values Istio's injector checks in Pod annotations (IST0125 InvalidAnnotation): the
//! interception mode, the status port, readiness numbers, outbound IP ranges, inbound and
//! outbound port lists, and `prometheus.istio.io/merge-metrics`. The problems are worded
//! as the injector's Go errors are. `proxy.istio.io/config` is not checked.

use std::net::IpAddr;

/// Go's `strconv.ParseUint(value, 10, bits)` error, if any.
fn parse_uint(value: &str, bits: u32) -> Result<u64, String> {
    let bad = |why: &str| format!("strconv.ParseUint: parsing {value:?}: {why}");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid syntax"));
    }
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad("value out of range")),
    }
}

/// Istio's port parsing: one number in 0–65535, spaces around it allowed.
fn parse_port(port: &str) -> Result<u64, String> {
    parse_uint(port.trim(), 16).map_err(|e| format!("failed parsing port '{port}': {e}"))
}

/// A comma-separated port list (empty is fine), as the injector reads it.
fn port_list(parameter: &str, ports: &str) -> Option<String> {
    let ports = ports.trim();
    if ports.is_empty() {
        return None;
    }
    ports.split(',').find_map(|p| {
        parse_port(p)
            .err()
            .map(|e| format!("{parameter} invalid: failed parsing port '{p}': {e}"))
    })
}

/// Go's `netip.ParsePrefix` acceptance: `address/bits`, bits within the address family.
fn valid_prefix(cidr: &str) -> bool {
    let Some((addr, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.len() <= 3
        && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// A comma-separated CIDR list (empty is fine).
fn cidr_list(parameter: &str, cidrs: &str) -> Option<String> {
    if cidrs.is_empty() {
        return None;
    }
    cidrs.split(',').find(|c| !valid_prefix(c)).map(|c| {
        format!("{parameter} invalid: failed parsing cidr '{c}': netip.ParsePrefix({c:?}): invalid prefix")
    })
}

/// Why the injector would refuse `value` for the annotation `key`, if it would.
pub(super) fn problem(key: &str, value: &str) -> Option<String> {
    match key {
        "sidecar.istio.io/interceptionMode" => (!matches!(value, "REDIRECT" | "TPROXY" | "NONE"))
            .then(|| format!("interceptionMode invalid, use REDIRECT,TPROXY,NONE: {value}")),
        "status.sidecar.istio.io/port" => parse_port(value)
            .err()
            .map(|e| format!("excludeInboundPorts invalid: {e}")),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => parse_uint(value, 32).err(),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" if value == "*" => None,
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => cidr_list("includeIPRanges", value),
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => cidr_list("excludeIPRanges", value),
        "traffic.sidecar.istio.io/includeInboundPorts" if value == "*" => None,
        "traffic.sidecar.istio.io/includeInboundPorts" => port_list("includeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeInboundPorts" => port_list("excludeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeOutboundPorts" => port_list("excludeOutboundPorts", value),
        "prometheus.istio.io/merge-metrics" => (!matches!(
            value,
            "1" | "t"
                | "T"
                | "TRUE"
                | "true"
                | "True"
                | "0"
                | "f"
                | "F"
                | "FALSE"
                | "false"
                | "False"
        ))
        .then(|| format!("strconv.ParseBool: parsing {value:?}: invalid syntax")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn values_the_injector_accepts_have_no_problem() {
        for (key, value) in [
            ("sidecar.istio.io/interceptionMode", "TPROXY"),
            ("status.sidecar.istio.io/port", "15020"),
            ("readiness.status.sidecar.istio.io/periodSeconds", "10"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "*"),
            (
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/8,fd00::/8",
            ),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", ""),
            ("traffic.sidecar.istio.io/includeInboundPorts", "*"),
            ("traffic.sidecar.istio.io/excludeInboundPorts", "8080, 9090"),
            ("prometheus.istio.io/merge-metrics", "false"),
            ("sidecar.istio.io/logLevel", "anything"),
        ] {
            assert_eq!(problem(key, value), None, "{key}={value}");
        }
    }

    #[test]
    fn values_the_injector_refuses_are_explained_as_it_words_them() {
        assert_eq!(
            problem("sidecar.istio.io/interceptionMode", "ISTIO").as_deref(),
            Some("interceptionMode invalid, use REDIRECT,TPROXY,NONE: ISTIO")
        );
        assert_eq!(
            problem("traffic.sidecar.istio.io/excludeOutboundPorts", "80,http").as_deref(),
            Some(
                "excludeOutboundPorts invalid: failed parsing port 'http': failed parsing port 'http': strconv.ParseUint: parsing \"http\": invalid syntax"
            )
        );
        assert_eq!(
            problem("readiness.status.sidecar.istio.io/failureThreshold", "-1").as_deref(),
            Some("strconv.ParseUint: parsing \"-1\": invalid syntax")
        );
        assert_eq!(
            problem("status.sidecar.istio.io/port", "70000").as_deref(),
            Some(
                "excludeInboundPorts invalid: failed parsing port '70000': strconv.ParseUint: parsing \"70000\": value out of range"
            )
        );
        assert!(
            problem(
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/33"
            )
            .is_some_and(
                |p| p.starts_with("includeIPRanges invalid: failed parsing cidr '10.0.0.0/33'")
            )
        );
        assert!(problem("prometheus.istio.io/merge-metrics", "yes").is_some());
    }
}
