//! Kubernetes' own kinds, as Istio's Kubernetes registry reads them: `core/v1` Namespace,
//! Service, Pod, Secret and ConfigMap, `discovery.k8s.io/v1` EndpointSlice, and `apps/v1` Deployment.
//!
//! weft reads the fields the registry and the analyzers use (a typed *view*) and keeps the
//! whole object as written, so nothing applied is lost and `kubectl get -o yaml` shows it back.
//! Fields weft does not read are kept, not refused: they are Kubernetes' (kube-proxy's, the
//! scheduler's), not the mesh's, and Kubernetes' API server is the one to check them.

pub mod config_map;
pub mod deployment;
pub mod endpoint_slice;
pub mod namespace;
pub mod pod;
pub mod secret;
pub mod service;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::meta::ObjectMeta;
use crate::validate::Validator;

pub use config_map::ConfigMap;
pub use deployment::Deployment;
pub use endpoint_slice::EndpointSlice;
pub use namespace::Namespace;
pub use pod::Pod;
pub use secret::Secret;
pub use service::Service;

/// What a view checks of its object, from the object's root (`spec.ports[0].port`): the rules
/// of Kubernetes' own validation for the fields weft reads.
pub trait KubeView {
    /// Reports every problem of the fields weft reads.
    fn validate(&self, v: &mut Validator);
}

/// A Kubernetes object: metadata, the typed view of what weft reads, and every other
/// top-level field (`spec`, `status`, `endpoints`, ...) exactly as written.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeObject<T> {
    /// `group/version` (`v1`, `apps/v1`).
    pub api_version: String,
    /// The kind's name.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The fields weft reads.
    pub view: T,
    /// Every top-level field but `apiVersion`, `kind` and `metadata`, as written.
    pub fields: Map<String, Value>,
}

impl<T: for<'de> Deserialize<'de>> KubeObject<T> {
    /// Builds the object from its JSON form (as stored or sent by a client).
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let Value::Object(mut all) = value else {
            return Err(serde::de::Error::custom("expected an object"));
        };
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let api_version = text(all.remove("apiVersion"));
        let kind = text(all.remove("kind"));
        let metadata = match all.remove("metadata") {
            Some(m) => serde_json::from_value(m)?,
            None => ObjectMeta::default(),
        };
        let view = serde_json::from_value(Value::Object(all.clone()))?;
        Ok(KubeObject {
            api_version,
            kind,
            metadata,
            view,
            fields: all,
        })
    }
}

impl<T> Serialize for KubeObject<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3 + self.fields.len()))?;
        map.serialize_entry("apiVersion", &self.api_version)?;
        map.serialize_entry("kind", &self.kind)?;
        map.serialize_entry("metadata", &self.metadata)?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: for<'a> Deserialize<'a>> Deserialize<'de> for KubeObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        KubeObject::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Kubernetes' `IntOrString`: a port number or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name.
    String(String),
}

/// Kubernetes' port protocols.
pub const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// Checks a port number field (1–65535), as Kubernetes does.
pub(crate) fn port_in_range(v: &mut Validator, name: &str, port: i64) {
    if !(1..=65535).contains(&port) {
        v.error_at(
            name,
            format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
        );
    }
}

/// Checks an optional protocol field (`TCP`, `UDP` or `SCTP`).
pub(crate) fn protocol(v: &mut Validator, protocol: &Option<String>) {
    if let Some(p) = protocol {
        if !PROTOCOLS.contains(&p.as_str()) {
            v.error_at(
                "protocol",
                format!("Unsupported value: {p:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""),
            );
        }
    }
}

/// True for an IANA service name as Kubernetes checks port names against: at most 15
/// characters, lower-case letters, digits and '-', at least one letter, no '-' at either end
/// and no "--".
pub fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Checks a port name, as Kubernetes does for container and Service ports.
pub(crate) fn port_name(v: &mut Validator, name: &str) {
    if !is_iana_svc_name(name) {
        v.error_at(
            "name",
            format!("Invalid value: {name:?}: must be no more than 15 characters, contain only lower-case letters, digits and '-', contain at least one letter, and not begin, end or repeat '-'"),
        );
    }
}

/// Checks a target port: a number in range or a port name.
pub(crate) fn target_port(v: &mut Validator, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => port_in_range(v, "targetPort", *n),
        IntOrString::String(name) => v.field("targetPort", |v| {
            if !is_iana_svc_name(name) {
                v.error(format!("Invalid value: {name:?}: must be a port number or a port name (IANA service name)"));
            }
        }),
    }
}

/// A Kubernetes `LabelSelector` (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must all match.
    #[serde(default)]
    pub match_labels: std::collections::BTreeMap<String, String>,
    /// Expressions that must all hold.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// True when `labels` satisfy the selector (an empty selector selects everything).
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// Checks the selector as Kubernetes does.
    pub(crate) fn validate(&self, v: &mut Validator) {
        crate::validate::checks::labels(v, "matchLabels", &self.match_labels);
        v.each("matchExpressions", &self.match_expressions, |v, e| {
            match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => v.error_at(
                    "values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ),
                "Exists" | "DoesNotExist" if !e.values.is_empty() => v.error_at(
                    "values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => v.error_at(
                    "operator",
                    format!("Unsupported value: {other:?}: supported values: \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""),
                ),
            }
        });
    }
}

#[cfg(test)]
mod tests;
