//! The normalized mesh model weft's proxy executes, built from Istio resources.
//!
//! - [`translate`] turns resources into a [`Mesh`] for one proxy (pure, no IO); its
//!   [`translate::scope`] decides which resources a proxy sees and is shared by the others;
//! - [`gateway`] builds a gateway proxy's routes from Gateways and the VirtualServices bound to them;
//! - [`route`] holds the route tables and the per-request decision [`route::route`];
//! - [`outbound`] decides what happens to traffic for destinations outside the registry;
//! - [`telemetry`] resolves the Telemetry resources that apply to a proxy;
//! - [`matcher`], [`policy`], [`service`] and [`host`] hold the pieces;
//! - [`analyze`] finds cross-resource problems, as `istioctl analyze` does.

pub mod analyze;
pub mod authn;
pub mod authz;
pub mod ext_authz;
pub mod gateway;
pub mod host;
pub mod l4;
pub mod matcher;
pub mod outbound;
pub mod peer_authn;
pub mod policy;
pub mod rate_limit;
pub mod route;
pub mod service;
pub mod telemetry;
pub mod translate;

pub use matcher::{Request, RequestHeaders};
pub use route::{Decision, RouteTable, route};
pub use translate::{Cluster, Mesh, ProxyScope, build, build_with_mesh_config, cluster_name};
