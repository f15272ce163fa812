//! Checks shared by every resource kind, worded and bounded as Istio's validator does.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::duration::Duration;

use super::Validator;

/// Longest regex Istio accepts (characters).
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled-program size limit for one regex.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// gRPC status names accepted by `fault.abort.grpcStatus`.
pub const GRPC_STATUS_NAMES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// True when `s` is a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 chars).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// True when `s` is a DNS-1123 subdomain (Kubernetes object names: labels joined by dots, at most 253 chars).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Checks a Kubernetes object name.
pub fn object_name(v: &mut Validator, name: &str) {
    if name.is_empty() {
        v.error("name is required");
    } else if !is_dns1123_subdomain(name) {
        v.error(format!(
            "invalid name {name:?}: must be lower-case letters, digits, '-' or '.', start and end with a letter or digit, at most 253 characters"
        ));
    }
}

/// Checks a DNS-1123 label field such as a subset or port name.
pub fn dns_label(v: &mut Validator, what: &str, s: &str) {
    if !is_dns1123_label(s) {
        v.error(format!(
            "invalid {what} {s:?}: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"
        ));
    }
}

/// Checks a host name that may start with a `*.` wildcard (Istio's `ValidateWildcardDomain`).
pub fn wildcard_host(v: &mut Validator, host: &str) {
    if let Err(e) = check_wildcard_host(host) {
        v.error(e);
    }
}

/// The reason `host` is not a valid (possibly wildcard) domain.
pub fn check_wildcard_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("host {host:?} is longer than 255 characters"));
    }
    if host == "*" {
        return Ok(());
    }
    let rest = host.strip_prefix("*.").unwrap_or(host);
    let rest = rest.strip_prefix('*').unwrap_or(rest);
    if rest.contains('*') {
        return Err(format!(
            "host {host:?}: a wildcard is only allowed as the first label (`*.example.com`)"
        ));
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "host {host:?} is not a valid domain name (label {label:?})"
            ));
        }
    }
    Ok(())
}

/// Checks a header name (`^[-_A-Za-z0-9]+$`); upper case is accepted with a warning.
pub fn header_name(v: &mut Validator, name: &str) {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        v.error(format!(
            "invalid header name {name:?}: use letters, digits, '-' and '_'"
        ));
    } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
        v.warn(format!(
            "header name {name:?} should be lower-case; weft matches it as {:?}",
            name.to_ascii_lowercase()
        ));
    }
}

/// Checks a header value written into requests or responses.
pub fn header_value(v: &mut Validator, value: &str) {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        v.error("header value must not contain control characters");
    }
}

/// Compiles an RE2 regex the way Envoy will, within Istio's limits.
pub fn regex(v: &mut Validator, pattern: &str) {
    if let Err(e) = compile_regex(pattern) {
        v.error(e);
    }
}

/// Compiles `pattern` as a whole-string RE2 regex within weft's limits.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.is_empty() {
        return Err("regex must not be empty".into());
    }
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regex is {} characters long; at most {MAX_REGEX_LEN} are allowed",
            pattern.len()
        ));
    }
    let explain = |e: regex::Error| match e {
        regex::Error::CompiledTooBig(_) => {
            format!(
                "regex {pattern:?} is too complex (compiled size over {REGEX_SIZE_LIMIT} bytes)"
            )
        }
        other => format!(
            "invalid regex {pattern:?}: {}",
            one_line(&other.to_string())
        ),
    };
    // Compile the pattern as written first so syntax errors point into the user's text.
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(explain)?;
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(explain)
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the duration field `name` is at least `min` (Istio requires 1 ms for most).
pub fn duration_at_least(
    v: &mut Validator,
    name: &str,
    d: &Option<Duration>,
    min: std::time::Duration,
) {
    if let Some(d) = d {
        if d.0 < min {
            v.error_at(
                name,
                format!("must be at least {} (got {d})", Duration(min)),
            );
        }
    }
}

/// One millisecond, the minimum of most Istio durations.
pub const ONE_MS: std::time::Duration = std::time::Duration::from_millis(1);

/// Checks a port number is in 1..=65535.
pub fn port_number(v: &mut Validator, name: &str, port: u32) {
    if port == 0 || port > 65535 {
        v.error_at(
            name,
            format!("port number must be in 1..65535 (got {port})"),
        );
    }
}

/// Checks a percentage `value` is 0 or within [0.0001, 100] (Envoy's million denominator).
pub fn percentage_value(v: &mut Validator, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        v.error_at(
            "value",
            format!("percentage must be in [0, 100] (got {value})"),
        );
    } else if value != 0.0 && value < 0.0001 {
        v.error_at(
            "value",
            format!("percentage must be 0 or at least 0.0001 (got {value})"),
        );
    }
}

/// Checks Kubernetes label keys and values of a selector.
pub fn labels(v: &mut Validator, name: &str, labels: &BTreeMap<String, String>) {
    v.field(name, |v| {
        for (key, value) in labels {
            if let Err(e) = check_label_key(key) {
                v.error_at(key, e);
            }
            if !is_label_value(value) {
                v.error_at(
                    key,
                    format!("invalid label value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"),
                );
            }
        }
    });
}

fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Err(format!(
                "invalid label key {key:?}: prefix must be a DNS subdomain"
            ));
        }
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// Checks `exportTo` entries: `.`, `*`, `~` or a namespace name.
pub fn export_to(v: &mut Validator, entries: &[String]) {
    v.each("exportTo", entries, |v, e| {
        if !matches!(e.as_str(), "." | "*" | "~") && !is_dns1123_label(e) {
            v.error(format!(
                "invalid exportTo {e:?}: use \".\", \"*\", \"~\" or a namespace name"
            ));
        }
    });
    if entries.len() > 1 && entries.iter().any(|e| e == "~") {
        v.error_at(
            "exportTo",
            "\"~\" (export to none) cannot be combined with other entries",
        );
    }
    if entries.len() > 1 && entries.iter().any(|e| e == "*") {
        v.error_at(
            "exportTo",
            "\"*\" (export to all) cannot be combined with other entries",
        );
    }
}

/// The scheme prefix of Unix domain socket addresses (`unix:///path`, `unix://@abstract`).
pub const UNIX_PREFIX: &str = "unix://";

/// The text of an optional string field when it is set and not empty (proto3 treats `""` as unset).
pub fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Records `index` as the first holder of `key`; returns the earlier holder when there is one
/// (for "must be unique" checks that name the first occurrence).
pub fn first_holder<K: Ord>(seen: &mut BTreeMap<K, usize>, key: K, index: usize) -> Option<usize> {
    match seen.entry(key) {
        Entry::Occupied(e) => Some(*e.get()),
        Entry::Vacant(e) => {
            e.insert(index);
            None
        }
    }
}

/// True when `s` is an IPv4 or IPv6 address (without a prefix length).
pub fn is_ip_addr(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// The reason `s` is not an IP address (Istio's `ValidateIPAddress`).
pub fn check_ip(s: &str) -> Result<(), String> {
    if is_ip_addr(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid IP address"))
    }
}

/// The reason `s` is neither an IP address nor a CIDR block such as `10.0.0.0/8` (Istio's `ValidateIPSubnet`).
pub fn check_ip_or_cidr(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        s.parse::<ipnet::IpNet>()
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not a valid CIDR block (e.g. 10.0.0.0/8)"))
    } else {
        check_ip(s)
    }
}

/// A DNS label as Istio's host checks accept it: like DNS-1123 but upper case is allowed.
fn is_host_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The reason `name` is not a fully-qualified domain name without wildcards (Istio's `ValidateFQDN`):
/// labels joined by dots, an optional final dot, and a top-level label that is not all digits.
pub fn check_fqdn(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("domain name must not be empty".into());
    }
    if name.len() > 255 {
        return Err(format!(
            "domain name {name:?} is longer than 255 characters"
        ));
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = trimmed.split('.').collect();
    if let Some(tld) = labels
        .last()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "domain name {name:?} is invalid: the top-level label {tld:?} is all digits"
        ));
    }
    match labels.iter().find(|l| !is_host_label(l)) {
        Some(label) => Err(format!("domain name {name:?} is invalid (label {label:?})")),
        None => Ok(()),
    }
}

/// The reason the Unix domain socket `path` (what follows `unix://`) is unusable: it must be an
/// absolute path to a file, or `@name` for a Linux abstract socket.
pub fn check_unix_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix socket path must not be empty".into());
    }
    if path.starts_with('@') {
        return Ok(());
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(format!(
            "unix socket path {path:?} must be an absolute path to a file (or @name for an abstract socket)"
        ));
    }
    Ok(())
}

/// The reason `host` has a wildcard other than a whole leading `*.` label or a lone `*`
/// (Istio's `ValidatePartialWildCard`).
pub fn check_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        return Err(format!(
            "partial wildcard {host:?} is not allowed; a wildcard must be a whole first label (\"*.example.com\")"
        ));
    }
    Ok(())
}

/// Checks a port name: a DNS-1123 label, where Istio also accepts upper-case letters.
pub fn port_name(v: &mut Validator, name: &str) {
    if name.is_empty() {
        v.error("port name must not be empty");
    } else if !is_host_label(name) {
        v.error(format!(
            "invalid port name {name:?}: use letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
        ));
    }
}

/// Where a `[namespace/]dnsName` host is written; Gateway and Sidecar accept slightly different forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostScope {
    /// A Gateway server host: `namespace/` is optional and the name may be an IP address.
    Gateway,
    /// A Sidecar egress host: `namespace/` is required and may also be `~` (no namespace).
    Sidecar,
}

/// Checks a Gateway server or Sidecar egress host of the form `[namespace/]dnsName`
/// (Istio's `ValidateNamespaceSlashWildcardHostname`).
pub fn namespaced_host(v: &mut Validator, host: &str, scope: HostScope) {
    let name = match host.split_once('/') {
        Some((namespace, name)) => {
            if namespace.is_empty() || name.is_empty() {
                v.error(format!(
                    "host {host:?}: namespace and dnsName must not be empty"
                ));
            } else if !is_host_namespace(namespace, scope) {
                let choices = match scope {
                    HostScope::Gateway => "\"*\", \".\"",
                    HostScope::Sidecar => "\"*\", \".\", \"~\", \"~<namespace>\"",
                };
                v.error(format!("host {host:?}: invalid namespace {namespace:?} (use {choices} or a namespace name)"));
            }
            name
        }
        None if scope == HostScope::Gateway => host,
        None => {
            v.error(format!("host {host:?} must be of the form namespace/dnsName, e.g. \"*/{host}\" or \"./{host}\""));
            return;
        }
    };
    if name.is_empty() {
        return;
    }
    if name != "*" && !name.contains('.') {
        v.error(format!(
            "host {host:?}: short names are not allowed; write the fully-qualified name (e.g. {name}.<namespace>.svc.cluster.local)"
        ));
    } else if let Err(e) = check_wildcard_host(name) {
        // Gateway servers may also be addressed by IP.
        if !(scope == HostScope::Gateway && is_ip_addr(name)) {
            v.error(format!("host {host:?}: {e}"));
        }
    } else if let Err(e) = check_partial_wildcard(name) {
        v.error(e);
    }
}

fn is_host_namespace(namespace: &str, scope: HostScope) -> bool {
    // Sidecar egress: `~` alone, or `~` before a namespace, subtracts (Istio 1.31).
    let namespace = match (scope, namespace.strip_prefix('~')) {
        (HostScope::Sidecar, Some("")) => return true,
        (HostScope::Sidecar, Some(excluded)) => {
            return excluded == "." || is_dns1123_label(excluded);
        }
        _ => namespace,
    };
    matches!(namespace, "*" | ".") || is_dns1123_label(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_sockets_and_fqdns() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "10.0.0.1/24",
            "2001:db8::/32",
            "::1",
        ] {
            assert!(check_ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "example.com",
            "1.2.3.4/8/9",
            "",
        ] {
            assert!(check_ip_or_cidr(bad).is_err(), "{bad}");
        }
        for ok in [
            "vm1.vpc01.corp.net",
            "istio.io.",
            "localhost",
            "Example.COM",
        ] {
            assert!(check_fqdn(ok).is_ok(), "{ok}");
        }
        for bad in ["", "*.example.com", "1.2.3.999", "a..b", "-a.com"] {
            assert!(check_fqdn(bad).is_err(), "{bad}");
        }
        assert!(check_unix_path("/var/run/app.sock").is_ok());
        assert!(check_unix_path("@abstract").is_ok());
        for bad in ["", "relative.sock", "/var/run/"] {
            assert!(check_unix_path(bad).is_err(), "{bad}");
        }
        assert!(check_partial_wildcard("*.example.com").is_ok());
        assert!(check_partial_wildcard("*").is_ok());
        assert!(check_partial_wildcard("*example.com").is_err());
    }

    #[test]
    fn hosts() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "*",
            "a-b.c",
        ] {
            assert!(check_wildcard_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "foo.*.com", "-a.com", "a..b", "a_b.com"] {
            assert!(check_wildcard_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regexes_match_whole_strings_and_are_bounded() {
        let r = compile_regex(r"\d+").expect("compiles");
        assert!(r.is_match("123") && !r.is_match("a123"));
        assert!(compile_regex("(").is_err());
        assert!(compile_regex("").is_err());
        assert!(compile_regex(&"a".repeat(2000)).is_err());
        assert!(compile_regex(r"\w{1000}{1000}").is_err());
    }

    #[test]
    fn labels_and_names() {
        assert!(is_dns1123_label("v1"));
        assert!(!is_dns1123_label("V1"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("bad key").is_err());
    }
}
