//! `discovery.k8s.io/v1` EndpointSlice: the endpoints of a Service (named by the label
//! `kubernetes.io/service-name`), as a cluster's endpoint controller or a user writes them.

use serde::{Deserialize, Serialize};

use super::{KubeView, port_in_range, protocol};
use crate::validate::{Validator, checks};

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What weft reads of an EndpointSlice (its fields are top-level, not under `spec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint serves.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// One endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Its addresses (all the same endpoint).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whether it is ready.
    #[serde(default)]
    pub conditions: Conditions,
    /// The object it stands for (a Pod).
    #[serde(default)]
    pub target_ref: Option<TargetRef>,
    /// Its zone.
    #[serde(default)]
    pub zone: Option<String>,
}

/// An endpoint's conditions; absent means ready.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    /// Ready for traffic (`null` means ready).
    #[serde(default)]
    pub ready: Option<bool>,
    /// Serving (may be terminating).
    #[serde(default)]
    pub serving: Option<bool>,
    /// Terminating.
    #[serde(default)]
    pub terminating: Option<bool>,
}

/// The object an endpoint stands for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Its kind (`Pod`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A port of the slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Matches the Service port's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The port on the endpoints.
    #[serde(default)]
    pub port: Option<i64>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The application protocol.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

impl Endpoint {
    /// Ready, as Kubernetes reads an absent condition.
    pub fn is_ready(&self) -> bool {
        self.conditions.ready.unwrap_or(true)
    }
}

impl KubeView for EndpointSlice {
    fn validate(&self, v: &mut Validator) {
        let kind = self.address_type.as_str();
        match kind {
            "IPv4" | "IPv6" | "FQDN" => {}
            "" => v.error_at("addressType", "Required value"),
            other => v.error_at(
                "addressType",
                format!(
                    "Unsupported value: {other:?}: supported values: \"FQDN\", \"IPv4\", \"IPv6\""
                ),
            ),
        }
        let known = matches!(kind, "IPv4" | "IPv6" | "FQDN");
        v.each("endpoints", &self.endpoints, |v, e| {
            if e.addresses.is_empty() {
                v.error_at(
                    "addresses",
                    "Required value: must contain at least 1 address",
                );
            }
            v.field("addresses", |v| {
                for (i, a) in e.addresses.iter().enumerate() {
                    let ok = match kind {
                        "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                        "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                        _ => checks::check_fqdn(a).is_ok(),
                    };
                    if known && !ok {
                        v.index(i, |v| {
                            v.error(format!(
                                "Invalid value: {a:?}: must be a valid {kind} address"
                            ))
                        });
                    }
                }
            });
        });
        v.each("ports", &self.ports, |v, p| {
            if let Some(port) = p.port {
                port_in_range(v, "port", port);
            }
            protocol(v, &p.protocol);
        });
    }
}
