//! Types shared by several networking resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// Istio's `StringMatch`: one of `exact`, `prefix`, `regex` (RE2, whole string).
/// An empty match `{}` means "present".
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact string match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2 regex that must match the whole value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

impl Validate for StringMatch {
    fn validate(&self, v: &mut Validator) {
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            v.error("only one of exact, prefix or regex may be set");
        }
        if self.prefix.as_deref() == Some("") {
            v.error_at("prefix", "prefix must not be empty");
        }
        if let Some(re) = &self.regex {
            v.field("regex", |v| checks::regex(v, re));
        }
    }
}

/// Istio's `Percent`: a double in [0, 100].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Percent {
    /// The percentage, 0 to 100.
    #[serde(default)]
    pub value: f64,
}

impl Validate for Percent {
    fn validate(&self, v: &mut Validator) {
        checks::percentage_value(v, self.value);
    }
}

/// Istio's `PortSelector`: a port by number.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number.
    #[serde(default)]
    pub number: u32,
}

impl Validate for PortSelector {
    fn validate(&self, v: &mut Validator) {
        checks::port_number(v, "number", self.number);
    }
}

/// Istio's `WorkloadSelector`: workloads whose labels include all of `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

impl Validate for WorkloadSelector {
    fn validate(&self, v: &mut Validator) {
        checks::labels(v, "matchLabels", &self.match_labels);
    }
}

/// Istio's `Destination`: a service host, optional subset and port.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host (short name, FQDN or ServiceEntry host).
    #[serde(default)]
    pub host: String,
    /// Subset defined by a DestinationRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port on the host; needed when the service exposes several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

impl Validate for Destination {
    fn validate(&self, v: &mut Validator) {
        v.field("host", |v| {
            if self.host.is_empty() {
                v.error("destination host is required");
            } else if self.host == "*" {
                v.error("destination host must not be the wildcard \"*\"");
            } else {
                checks::wildcard_host(v, &self.host);
            }
        });
        if let Some(subset) = &self.subset {
            v.field("subset", |v| checks::dns_label(v, "subset name", subset));
        }
        v.optional("port", &self.port);
    }
}
