//! The Kubernetes Gateway API (`gateway.networking.k8s.io`): [`gateway`] (GatewayClass
//! and Gateway: ingress proxies and their listeners), [`http_route`] (HTTP routing, for a
//! Gateway's listeners or for the mesh: GAMMA, an HTTPRoute attached to a Service),
//! [`grpc_route`] (the same for gRPC services and methods), [`l4_route`] (TCPRoute and
//! TLSRoute, the experimental channel's, for TCP and TLS listeners) and
//! [`reference_grant`] (which cross-namespace references a namespace allows).

pub mod gateway;
pub mod grpc_route;
pub mod http_route;
pub mod l4_route;
pub mod reference_grant;

pub use gateway::{Gateway, GatewayClass};
pub use grpc_route::GrpcRoute;
pub use http_route::HttpRoute;
pub use l4_route::{TcpRoute, TlsRoute};
pub use reference_grant::ReferenceGrant;

use crate::validate::Validator;

/// The Gateway API's group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The length bounds of a string field, as the CRDs' `minLength`/`maxLength`.
pub(crate) fn check_len(v: &mut Validator, name: &str, value: &str, min: usize, max: usize) {
    if value.len() < min || value.len() > max {
        v.error_at(
            name,
            format!("Invalid value: {value:?}: must be {min} to {max} characters"),
        );
    }
}

/// The CRDs' `maxItems`.
pub(crate) fn check_max<T>(v: &mut Validator, name: &str, items: &[T], max: usize) {
    if items.len() > max {
        v.error_at(
            name,
            format!("Too many: {}: must have at most {max} items", items.len()),
        );
    }
}

/// A `Hostname`: a lower-case DNS name, optionally starting with `*.`, not an IP address.
pub(crate) fn check_hostname(v: &mut Validator, h: &str) {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name = h.strip_prefix("*.").unwrap_or(h);
    if h.len() > 253 || !name.split('.').all(label) || name.parse::<std::net::IpAddr>().is_ok() {
        v.error(format!(
            "Invalid value: {h:?}: must be a lower-case DNS name, optionally starting with *. (no IP address)"
        ));
    }
}
