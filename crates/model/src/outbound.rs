//! Where a sidecar sends requests and connections addressed outside its registry:
//! Istio's `outboundTrafficPolicy`. The Sidecar resource applying to the proxy decides
//! when it sets one (its `mode` defaults to `REGISTRY_ONLY`, as Istio's proto does),
//! else the mesh config's `outboundTrafficPolicy.mode`, else Istio's mesh default,
//! `ALLOW_ANY`.

use std::sync::Arc;

use serde::Serialize;
use weft_api::Resource;
use weft_api::mesh_config::MeshConfig;
use weft_api::networking::sidecar::{OutboundTrafficMode, OutboundTrafficPolicy};

use crate::host;
use crate::translate::mesh::cluster_name;
use crate::translate::scope::{ProxyScope, applying_sidecar};

/// What happens to traffic for a destination outside the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outbound {
    /// It goes where the application sent it (Istio's PassthroughCluster).
    #[default]
    AllowAny,
    /// It goes to this cluster (a Sidecar's `egressProxy`, with `ALLOW_ANY`).
    EgressProxy(Arc<str>),
    /// It is refused (Istio's BlackHoleCluster): HTTP gets 502, TCP is closed.
    RegistryOnly,
}

/// The outbound policy of the proxy in `scope`. Gateways forward only what their routes
/// name, so the policy does not concern them (always [`Outbound::AllowAny`]).
pub fn resolve(resources: &[Resource], scope: &ProxyScope, mesh: &MeshConfig) -> Outbound {
    if scope.gateway {
        return Outbound::AllowAny;
    }
    match applying_sidecar(resources, &scope.namespace, &scope.labels) {
        Some(s) if s.spec.outbound_traffic_policy.is_some() => {
            let policy = s.spec.outbound_traffic_policy.as_ref();
            sidecar_policy(
                policy.unwrap_or(&OutboundTrafficPolicy::default()),
                s.metadata.namespace(),
            )
        }
        _ => match mesh.outbound_traffic_policy.as_ref().and_then(|p| p.mode) {
            Some(OutboundTrafficMode::RegistryOnly) => Outbound::RegistryOnly,
            Some(OutboundTrafficMode::AllowAny) | None => Outbound::AllowAny,
        },
    }
}

/// A Sidecar's policy; its `egressProxy` host is resolved in the Sidecar's namespace.
fn sidecar_policy(policy: &OutboundTrafficPolicy, namespace: &str) -> Outbound {
    match (policy.mode, &policy.egress_proxy) {
        (OutboundTrafficMode::RegistryOnly, _) => Outbound::RegistryOnly,
        (OutboundTrafficMode::AllowAny, None) => Outbound::AllowAny,
        (OutboundTrafficMode::AllowAny, Some(d)) => {
            // Validation requires the port; 0 cannot name a cluster.
            let port = d.port.as_ref().map_or(0, |p| p.number);
            let host = host::resolve(&d.host, namespace);
            let port = u16::try_from(port).unwrap_or(0);
            Outbound::EgressProxy(cluster_name(port, d.subset.as_deref(), &host).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|r| r.resource).collect()
    }

    fn mesh(text: &str) -> MeshConfig {
        weft_api::mesh_config::load_mesh_config("mesh.yaml", text)
            .config
            .expect("valid mesh config")
    }

    fn sidecar_in(ns: &str) -> ProxyScope {
        ProxyScope {
            namespace: ns.into(),
            ..ProxyScope::default()
        }
    }

    const SIDECARS: &str = "\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: locked}
spec:
  outboundTrafficPolicy: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: proxied}
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress, subset: v1, port: {number: 3128}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress: [{hosts: ['./*']}]
";

    #[test]
    fn the_mesh_default_is_allow_any_and_the_mesh_config_can_close_it() {
        let none = MeshConfig::default();
        assert_eq!(resolve(&[], &sidecar_in("shop"), &none), Outbound::AllowAny);
        let closed = mesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n");
        assert_eq!(
            resolve(&[], &sidecar_in("shop"), &closed),
            Outbound::RegistryOnly
        );
        // An empty policy keeps the mesh default, as Istio merges it over its defaults.
        let empty = mesh("outboundTrafficPolicy: {}\n");
        assert_eq!(
            resolve(&[], &sidecar_in("shop"), &empty),
            Outbound::AllowAny
        );
    }

    #[test]
    fn a_sidecars_policy_replaces_the_mesh_one_and_defaults_to_registry_only() {
        let all = resources(SIDECARS);
        let closed = mesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n");
        let open = MeshConfig::default();
        assert_eq!(
            resolve(&all, &sidecar_in("locked"), &open),
            Outbound::RegistryOnly
        );
        assert_eq!(
            resolve(&all, &sidecar_in("proxied"), &closed),
            Outbound::EgressProxy("outbound|3128|v1|egress.proxied.svc.cluster.local".into())
        );
        // A Sidecar without a policy leaves the mesh's in force.
        assert_eq!(
            resolve(&all, &sidecar_in("scoped"), &closed),
            Outbound::RegistryOnly
        );
        assert_eq!(
            resolve(&all, &sidecar_in("scoped"), &open),
            Outbound::AllowAny
        );
        let gateway = ProxyScope {
            gateway: true,
            ..sidecar_in("locked")
        };
        assert_eq!(resolve(&all, &gateway, &closed), Outbound::AllowAny);
    }
}
