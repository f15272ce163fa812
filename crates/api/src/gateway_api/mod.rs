//! The Kubernetes Gateway API (`gateway.networking.k8s.io`): [`http_route`] so far, the
//! routes of the mesh (GAMMA: an HTTPRoute attached to a Service).

pub mod http_route;

pub use http_route::HttpRoute;
