//! Which resources a proxy sees, shared by every part of the model: the proxy's
//! [`ProxyScope`], `exportTo` visibility, label selectors, Istio's precedence among
//! resources and gateway references.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_api::Object;

/// The namespace whose DestinationRules apply mesh-wide, as in Istio.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Who the configuration is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyScope {
    /// The proxy's namespace (short names and `exportTo` are relative to it).
    pub namespace: String,
    /// The proxy's workload labels (for `sourceLabels` and `workloadSelector`).
    pub labels: BTreeMap<String, String>,
    /// A gateway proxy (Istio's `router`): its routes come from the Gateways selecting
    /// it and the VirtualServices bound to them, not from mesh-bound VirtualServices.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
}

impl Default for ProxyScope {
    fn default() -> Self {
        ProxyScope {
            namespace: weft_api::meta::DEFAULT_NAMESPACE.to_string(),
            labels: BTreeMap::new(),
            gateway: false,
        }
    }
}

/// True when a resource of `ns` with `export_to` is visible from `scope_ns`.
pub fn visible(export_to: &[String], ns: &str, scope_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || (e == "." && ns == scope_ns) || (e != "~" && e == scope_ns))
}

/// True when every label of `selector` is among `labels` (an empty selector selects all).
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's precedence among resources: oldest first, then namespace and name.
pub(crate) fn age<T>(o: &Object<T>) -> (Option<String>, String, String) {
    (
        o.metadata.creation_timestamp.clone(),
        o.metadata.namespace().to_string(),
        o.metadata.name.clone(),
    )
}

/// A gateway reference in a VirtualService (`name` or `namespace/name`), resolved
/// relative to the VirtualService's namespace: (namespace, name).
pub fn gateway_reference(gateway: &str, vs_namespace: &str) -> (String, String) {
    match gateway.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (vs_namespace.to_string(), gateway.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_in_the_virtual_service_namespace() {
        assert_eq!(
            gateway_reference("bff-gateway", "shop"),
            ("shop".to_string(), "bff-gateway".to_string())
        );
        assert_eq!(
            gateway_reference("istio-system/ingress", "shop"),
            ("istio-system".to_string(), "ingress".to_string())
        );
    }
}
