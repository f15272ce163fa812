//! The output types translation's parts share: clusters (named `outbound|port|subset|host`),
//! their endpoints and the identities allowed to serve them, and the error when resources
//! cannot be translated. [`super::Mesh`], which holds every part, sits above them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::policy::ClusterPolicy;
use crate::service::{EndpointAddress, Protocol};

/// An upstream cluster: one service port, optionally narrowed to a subset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// `outbound|port|subset|host`.
    pub name: Arc<str>,
    /// Service host.
    pub service: String,
    /// Service port.
    pub port: u16,
    /// Subset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Protocol of the port.
    pub protocol: Protocol,
    /// Endpoints (the service's, filtered by the subset's labels), with the port to dial.
    pub endpoints: Vec<ClusterEndpoint>,
    /// Policy.
    pub policy: ClusterPolicy,
    /// Who may serve it over mesh mTLS (secure naming): the ServiceEntry's
    /// `subjectAltNames`, else the service accounts of the service's workloads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<ServerIdentity>,
}

/// A server identity a client sidecar accepts for a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerIdentity {
    /// A service account, in the client's trust domain.
    Account {
        /// Namespace.
        namespace: String,
        /// Service account.
        service_account: String,
    },
    /// An exact URI SAN (`spiffe://...`).
    Uri(String),
}

/// An endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEndpoint {
    /// Address.
    pub address: EndpointAddress,
    /// Port to dial.
    pub port: u16,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Weight.
    pub weight: u32,
    /// Who runs it, when it is a registered workload (telemetry labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Arc<crate::service::WorkloadInfo>>,
    /// It runs a sidecar (label `security.istio.io/tlsMode: istio`) whose PeerAuthentication
    /// does not DISABLE mTLS on this port: auto mTLS sends it mutual TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mesh_tls: bool,
}

/// The label that marks an endpoint with a sidecar that terminates mesh mTLS (Istio's).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Builds the cluster name Istio uses.
pub fn cluster_name(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// Why a set of resources could not be translated (validation should have caught it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{resource}: {field}: {message}")]
pub struct TranslateError {
    /// `Kind namespace/name`.
    pub resource: String,
    /// Field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl TranslateError {
    /// A VirtualService's `tcp` or `tls` rules that cannot be built (see [`crate::l4::build`]).
    pub(crate) fn l4(message: String) -> TranslateError {
        TranslateError {
            resource: "VirtualService".into(),
            field: "spec.tcp/tls".into(),
            message,
        }
    }
}
