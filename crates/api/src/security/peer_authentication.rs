//! `PeerAuthentication`: whether a workload's inbound side accepts plaintext, mTLS or both.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::networking::WorkloadSelector;
use crate::validate::{Validate, Validator};

/// PeerAuthentication spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// Workloads the policy applies to; unset means every workload of the namespace (of the mesh in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// mTLS settings for the selected workloads; unset inherits from the namespace or mesh policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port settings keyed by workload (target) port as written; read them with
    /// [`PeerAuthentication::port_level`]. `Some` of an empty map is `portLevelMtls: {}`,
    /// which Istio refuses.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "port_keyed"
    )]
    pub port_level_mtls: Option<BTreeMap<String, MutualTls>>,
}

/// Istio's `PeerAuthentication.MutualTLS`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct MutualTls {
    /// The mode; `UNSET` inherits from the parent policy.
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Istio's `PeerAuthentication.MutualTLS.Mode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent policy; `PERMISSIVE` when there is none.
    #[default]
    Unset,
    /// Plaintext only: connections are not tunneled.
    Disable,
    /// Plaintext and mTLS are both accepted.
    Permissive,
    /// mTLS only: clients must present a certificate.
    Strict,
}

impl PeerAuthentication {
    /// The port-level settings in port order; keys that are not ports are skipped (validation reports them).
    pub fn port_level(&self) -> impl Iterator<Item = (u16, &MutualTls)> {
        let mut ports: Vec<(u16, &MutualTls)> = self
            .port_level_mtls
            .iter()
            .flatten()
            .filter_map(|(key, mtls)| parse_port_key(key).ok().map(|port| (port, mtls)))
            .collect();
        // The map is ordered by key text ("10000" < "8080"); consumers expect numeric order.
        ports.sort_by_key(|(port, _)| *port);
        ports.into_iter()
    }
}

impl Validate for PeerAuthentication {
    fn validate(&self, v: &mut Validator) {
        if let Some(selector) = &self.selector {
            v.field("selector", |v| check_selector(v, selector));
        }
        let has_labels = self
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        let ports = self.port_level_mtls.as_ref();
        if ports.is_some_and(|p| !p.is_empty()) && !has_labels {
            v.error_at(
                "portLevelMtls",
                "port-level mTLS needs a selector with matchLabels: a mesh- or namespace-wide PeerAuthentication cannot set it",
            );
        }
        if ports.is_some_and(BTreeMap::is_empty) {
            v.error_at(
                "portLevelMtls",
                "port level mTLS, if defined, must have at least one element (remove portLevelMtls: {})",
            );
        }
        v.field("portLevelMtls", |v| {
            for key in ports.into_iter().flat_map(BTreeMap::keys) {
                if let Err(e) = parse_port_key(key) {
                    v.error_at(key, e);
                }
            }
        });
    }
}

/// Checks a policy's workload selector as Istio does: label syntax, and a warning when it has no labels.
pub(super) fn check_selector(v: &mut Validator, selector: &WorkloadSelector) {
    selector.validate(v);
    if selector.match_labels.is_empty() {
        v.warn("selector has no matchLabels, so it selects every workload in scope");
    }
}

/// The port a `portLevelMtls` key names (decimal, 1..65535).
fn parse_port_key(key: &str) -> Result<u16, String> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("key {key:?} is not a port number"));
    }
    key.parse::<u32>()
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {key} is out of range 1..65535"))
}

/// Reads `portLevelMtls`, whose keys YAML users write unquoted (`8080:`) and JSON writes as strings (`"8080":`).
fn port_keyed<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, MutualTls>>, D::Error> {
    let raw = Option::<BTreeMap<PortKey, MutualTls>>::deserialize(d)?;
    Ok(raw.map(|map| map.into_iter().map(|(key, mtls)| (key.0, mtls)).collect()))
}

/// A map key taken as text whether it was written as a number or a string; validation parses it.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct PortKey(String);

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = PortKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
        }

        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_errors, errors, spec_issues};

    #[test]
    fn workload_policy_with_numeric_and_quoted_port_keys_is_valid() {
        let issues = spec_issues::<PeerAuthentication>(
            "selector:\n  matchLabels: {app: finance}\nmtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}\n  \"9090\": {mode: PERMISSIVE}\n",
        )
        .expect("reads");
        assert!(issues.is_empty(), "{issues:?}");
        let ns_wide =
            spec_issues::<PeerAuthentication>("mtls: {mode: PERMISSIVE}\n").expect("reads");
        assert!(ns_wide.is_empty(), "{ns_wide:?}");
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        assert_errors::<PeerAuthentication>(
            "mtls: {mode: STRICT}\nportLevelMtls:\n  0: {mode: DISABLE}\n  70000: {mode: DISABLE}\n  http: {mode: DISABLE}\n",
            &[
                "spec.portLevelMtls: port-level mTLS needs a selector with matchLabels",
                "spec.portLevelMtls.0: port 0 is out of range 1..65535",
                "spec.portLevelMtls.70000: port 70000 is out of range 1..65535",
                "spec.portLevelMtls.http: key \"http\" is not a port number",
            ],
        );
    }

    #[test]
    fn an_empty_selector_cannot_carry_port_level_settings() {
        let issues = spec_issues::<PeerAuthentication>(
            "selector: {}\nportLevelMtls:\n  8080: {mode: DISABLE}\n",
        )
        .expect("reads");
        assert_eq!(errors(&issues).len(), 1, "{issues:?}");
        assert!(
            issues
                .iter()
                .any(|i| i.path == "spec.selector" && i.message.contains("no matchLabels"))
        );
    }

    #[test]
    fn an_empty_port_level_mtls_is_refused_as_in_istio() {
        assert_errors::<PeerAuthentication>(
            "selector: {matchLabels: {app: a}}\nportLevelMtls: {}\n",
            &["spec.portLevelMtls: port level mTLS, if defined, must have at least one element"],
        );
        // An entry with no mode is UNSET (inherits), which Istio accepts.
        let unset = spec_issues::<PeerAuthentication>(
            "selector: {matchLabels: {app: a}}\nportLevelMtls: {8080: {}}\n",
        )
        .expect("reads");
        assert!(unset.is_empty(), "{unset:?}");
        let absent = spec_issues::<PeerAuthentication>("portLevelMtls: null\n").expect("reads");
        assert!(absent.is_empty(), "{absent:?}");
    }

    #[test]
    fn unknown_modes_are_refused_with_a_suggestion() {
        let err =
            spec_issues::<PeerAuthentication>("mtls: {mode: STRIKT}\n").expect_err("unknown mode");
        assert!(err.contains("did you mean `STRICT`"), "{err}");
    }

    #[test]
    fn port_level_settings_come_in_port_order() {
        let strict = MutualTls {
            mode: MtlsMode::Strict,
        };
        let disable = MutualTls {
            mode: MtlsMode::Disable,
        };
        let pa = PeerAuthentication {
            port_level_mtls: Some(BTreeMap::from([
                ("9090".to_string(), strict),
                ("10000".to_string(), disable),
                ("http".to_string(), strict),
            ])),
            ..PeerAuthentication::default()
        };
        let ports: Vec<(u16, MtlsMode)> = pa.port_level().map(|(p, m)| (p, m.mode)).collect();
        assert_eq!(
            ports,
            [(9090, MtlsMode::Strict), (10000, MtlsMode::Disable)]
        );
    }
}
