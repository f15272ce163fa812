//! The control plane ↔ proxy protocol. Generated code stays here: both sides convert it
//! to their own types at the edge, and nothing generated reaches the proxy's hot path.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Envoy's xDS delta transport (the subset weft uses).
pub mod discovery {
    tonic::include_proto!("envoy.service.discovery.v3");
}

/// Envoy's external authorization service (the subset weft uses; field numbers Envoy's).
pub mod ext_authz {
    tonic::include_proto!("envoy.service.auth.v3");
}

/// weft's resource types.
pub mod config {
    tonic::include_proto!("weft.config.v1");
}

/// weft's certificate service (CSR in, SPIFFE certificate out).
pub mod ca {
    tonic::include_proto!("weft.ca.v1");
}

/// OTLP traces (the subset weft sends and receives; field numbers are OTLP's).
pub mod otlp {
    tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
}

/// The type URL of [`config::IstioResource`].
pub const ISTIO_RESOURCE_TYPE: &str = "type.googleapis.com/weft.config.v1.IstioResource";

/// The stream name of the mesh config (Istio's MeshConfig, as the control plane has it in
/// force): one more [`config::IstioResource`] on the same stream, its JSON a MeshConfig.
/// Resources are named `Kind/namespace/name`, so this name never collides with one.
pub const MESH_CONFIG_RESOURCE: &str = "MeshConfig";

/// A proxy's id on the configuration stream, as Istio names its node types:
/// `router~<workload>.<namespace>` for a gateway, `sidecar~<workload>.<namespace>` beside
/// a workload. The proxy, the control plane, `weft up` and the CLI all use this one.
#[allow(clippy::all)]
pub fn node_id(gateway: bool, workload: &str, namespace: &str) -> String {
    let role = if gateway { "router" } else { "sidecar" };
    format!("{role}~{workload}.{namespace}")
}

/// True when `id` (made by [`node_id`]) is a gateway's.
pub fn is_gateway_id(id: &str) -> bool {
    id.starts_with("router~")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_say_the_role_as_istio_does() {
        let gw = super::node_id(true, "istio-ingressgateway", "istio-system");
        assert_eq!(gw, "router~istio-ingressgateway.istio-system");
        assert!(super::is_gateway_id(&gw));
        let sidecar = super::node_id(false, "bff", "default");
        assert_eq!(sidecar, "sidecar~bff.default");
        assert!(!super::is_gateway_id(&sidecar));
    }
}
