//! Kubernetes object metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, checks};

/// The namespace a resource lands in when it names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes `ObjectMeta`, the fields weft reads and keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (DNS-1123 subdomain).
    #[serde(default)]
    pub name: String,
    /// Namespace; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the control plane: changes on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by the control plane: changes when the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by the control plane: unique per object lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by the control plane: RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Kubernetes name prefix (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Kubernetes owners (kept as written, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<serde_json::Value>,
    /// Kubernetes finalizers (kept, not used).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Kubernetes field ownership (kept as written, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<serde_json::Value>,
    /// Kubernetes deletion time (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Kubernetes self link (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
}

impl ObjectMeta {
    /// The namespace, with the default applied.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

impl Validate for ObjectMeta {
    fn validate(&self, v: &mut Validator) {
        v.field("name", |v| checks::object_name(v, &self.name));
        if let Some(ns) = &self.namespace {
            v.field("namespace", |v| checks::dns_label(v, "namespace", ns));
        }
        checks::labels(v, "labels", &self.labels);
    }
}
