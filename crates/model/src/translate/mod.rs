//! The translation from Istio resources to the mesh model one proxy executes.
//!
//! Pure: resources and the proxy's scope in, a [`Mesh`] out. Mirrors what Istio's
//! Pilot does for a sidecar: services from ServiceEntries, clusters named
//! `outbound|port|subset|host` from DestinationRules, and per-port route tables
//! from VirtualServices (or a default route when none applies).
//!
//! - [`scope`]: which resources a proxy sees (`exportTo`, selectors, the `Sidecar` that
//!   applies to it) and Istio's precedence among them; the other model modules share it;
//! - [`mesh`]: the output types the parts share ([`Cluster`], ...) and [`TranslateError`];
//!   [`Mesh`], holding every part, is defined here;
//! - `services`: ServiceEntries and WorkloadEntries into services; [`kube_services`]:
//!   Kubernetes Services, with the Pods, WorkloadEntries or EndpointSlices behind them;
//! - `clusters`: services and DestinationRules into clusters;
//! - `http` and `action`: VirtualServices into HTTP route tables; [`gateway_api`]: the
//!   Gateway API's HTTPRoutes attached to Services (GAMMA) into those Services' routes.

pub(crate) mod action;
mod clusters;
pub mod delegate;
pub mod gateway_api;
pub(crate) mod http;
pub mod kube_services;
pub mod mesh;
mod registry_entries;
pub mod scope;
pub(crate) mod services;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use weft_api::mesh_config::MeshConfig;
use weft_api::networking::virtual_service::VirtualService;
use weft_api::{Object, Resource};

use crate::route::{RetryPolicy, RouteTable};
use crate::service::Service;

pub use mesh::{
    Cluster, ClusterEndpoint, ServerIdentity, TLS_MODE_LABEL, TranslateError, cluster_name,
};
pub use scope::{ProxyScope, ROOT_NAMESPACE, SidecarScope, visible};

/// Everything one proxy needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Mesh {
    /// Services by host.
    pub services: BTreeMap<String, Service>,
    /// Clusters by name.
    pub clusters: BTreeMap<Arc<str>, Arc<Cluster>>,
    /// HTTP route tables by port.
    pub http_routes: BTreeMap<u16, RouteTable>,
    /// TCP and TLS rules.
    pub l4: crate::l4::L4Routes,
    /// A gateway proxy's ports: what each serves, with its TLS and L4 rules.
    pub gateway: BTreeMap<u16, crate::gateway::servers::GatewayPort>,
    /// The RequestAuthentication rules that apply to this proxy.
    pub authn: crate::authn::Authn,
    /// The AuthorizationPolicies that apply to this proxy.
    pub authz: crate::authz::Authz,
    /// The RateLimits this proxy enforces.
    pub rate_limits: Vec<crate::rate_limit::Limit>,
    /// The PeerAuthentication mode of this proxy's own workload.
    pub peer_authn: crate::peer_authn::PeerAuthn,
    /// What happens to traffic for destinations outside the registry.
    pub outbound: crate::outbound::Outbound,
    /// The traces, access logs and metrics the Telemetry resources ask of this proxy.
    pub telemetry: crate::telemetry::ProxyTelemetry,
}

impl Mesh {
    /// The port of service `host` when it has exactly one (the port of L4 rules whose
    /// destinations name none).
    pub fn only_port(&self, host: &str) -> Option<u16> {
        self.services
            .get(host)
            .and_then(|s| match s.ports.as_slice() {
                [only] => Some(only.number),
                _ => None,
            })
    }
}

/// Translates `resources` for a proxy in `scope`, under Istio's default mesh config.
pub fn build(resources: &[Resource], scope: &ProxyScope) -> Result<Mesh, TranslateError> {
    build_with_mesh_config(resources, scope, &MeshConfig::default())
}

/// Translates `resources` for a proxy in `scope` under the mesh config `mesh_config`
/// (its outbound traffic policy and default HTTP retry policy).
pub fn build_with_mesh_config(
    resources: &[Resource],
    scope: &ProxyScope,
    mesh_config: &MeshConfig,
) -> Result<Mesh, TranslateError> {
    let default_retry = match &mesh_config.default_http_retry_policy {
        Some(r) => action::retry(r),
        None => RetryPolicy::istio_default(),
    };
    let resolved = delegate::resolve(resources);
    let resources: &[Resource] = &resolved;
    let mut mesh = Mesh {
        services: services::visible_services(resources, scope),
        ..Mesh::default()
    };
    let peers = crate::peer_authn::PeerPolicies::new(resources);
    mesh.clusters = clusters::clusters(resources, &mesh.services, &peers, scope);
    mesh.peer_authn = peers.resolve(&scope.namespace, &scope.labels);
    mesh.authn = crate::authn::build(resources, scope);
    mesh.authz = crate::authz::build(resources, scope);
    mesh.rate_limits = crate::rate_limit::build(resources, scope);
    mesh.outbound = crate::outbound::resolve(resources, scope, mesh_config);
    mesh.telemetry = crate::telemetry::resolve(resources, scope, mesh_config);
    if scope.gateway {
        let gateway =
            crate::gateway::translate(resources, &mesh.services, scope, &default_retry, |h| {
                mesh.only_port(h)
            })?;
        mesh.gateway = gateway.ports;
        mesh.http_routes = gateway.http_routes;
        return Ok(mesh);
    }
    let bound = http::bound_virtual_services(resources, scope);
    let routes = gateway_api::http_and_grpc_routes(resources);
    let gateway_routes: Vec<&Object<weft_api::gateway_api::HttpRoute>> =
        routes.iter().map(|r| r.as_ref()).collect();
    let backends = gateway_api::Backends::new(resources, &mesh.services, &default_retry);
    mesh.http_routes = http::route_tables(&bound, &gateway_routes, &backends, scope)?;
    let objects: Vec<&Object<VirtualService>> = bound.iter().map(|b| b.object).collect();
    mesh.l4 = crate::l4::build(
        &objects,
        scope,
        |h| mesh.only_port(h),
        crate::l4::mesh_bound,
    )
    .map_err(TranslateError::l4)?;
    Ok(mesh)
}
