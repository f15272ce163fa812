//! The control plane ↔ proxy protocol. Generated code stays here: both sides convert it
//! to their own types at the edge, and nothing generated reaches the proxy's hot path.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Envoy's xDS delta transport (the subset weft uses).
pub mod discovery {
    tonic::include_proto!("envoy.service.discovery.v3");
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
