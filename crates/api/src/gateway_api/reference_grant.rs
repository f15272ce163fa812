//! `gateway.networking.k8s.io` `ReferenceGrant` (v1beta1): the references into its own
//! namespace that a namespace allows, from routes in other namespaces (a route's
//! `backendRefs` to a Service here, a Gateway's `certificateRefs`).

use serde::{Deserialize, Serialize};

use super::{check_len, check_max};
use crate::validate::{Validate, Validator};

/// ReferenceGrant spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrant {
    /// Who may refer: group, kind and namespace of the referring objects.
    #[serde(default)]
    pub from: Vec<ReferenceGrantFrom>,
    /// What they may refer to in this namespace: group, kind and optionally name.
    #[serde(default)]
    pub to: Vec<ReferenceGrantTo>,
}

/// The referring side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantFrom {
    /// Group (`gateway.networking.k8s.io` for routes).
    #[serde(default)]
    pub group: String,
    /// Kind (`HTTPRoute`, `Gateway`, ...).
    #[serde(default)]
    pub kind: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
}

/// The referred side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantTo {
    /// Group (`""` for Services).
    #[serde(default)]
    pub group: String,
    /// Kind (`Service`).
    #[serde(default)]
    pub kind: String,
    /// One object's name; absent means every object of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ReferenceGrant {
    /// True when the grant lets a `from_kind` (of `from_group`) in `from_ns` refer to the
    /// `to_kind` (of `to_group`) named `to_name` in the grant's namespace.
    pub fn allows(
        &self,
        (from_group, from_kind, from_ns): (&str, &str, &str),
        (to_group, to_kind, to_name): (&str, &str, &str),
    ) -> bool {
        self.from.iter().any(|f| {
            core(&f.group) == core(from_group) && f.kind == from_kind && f.namespace == from_ns
        }) && self.to.iter().any(|t| {
            core(&t.group) == core(to_group)
                && t.kind == to_kind
                && t.name.as_deref().is_none_or(|n| n == to_name)
        })
    }
}

/// A group as written, `core` being the core group `""`.
fn core(g: &str) -> &str {
    if g == "core" { "" } else { g }
}

impl Validate for ReferenceGrant {
    fn validate(&self, v: &mut Validator) {
        for (field, len) in [("from", self.from.len()), ("to", self.to.len())] {
            if len == 0 {
                v.error_at(field, "Required value: at least 1 item");
            }
        }
        check_max(v, "from", &self.from, 16);
        check_max(v, "to", &self.to, 16);
        v.each("from", &self.from, |v, f| {
            check_len(v, "group", &f.group, 0, 253);
            check_len(v, "kind", &f.kind, 1, 63);
            check_len(v, "namespace", &f.namespace, 1, 63);
        });
        v.each("to", &self.to, |v, t| {
            check_len(v, "group", &t.group, 0, 253);
            check_len(v, "kind", &t.kind, 1, 63);
            if let Some(n) = &t.name {
                check_len(v, "name", n, 1, 253);
            }
        });
    }
}
