//! `security.istio.io` resources (parsed and validated; enforcement comes with the security work).

pub mod authorization_policy;
pub mod peer_authentication;

pub use authorization_policy::AuthorizationPolicy;
pub use peer_authentication::PeerAuthentication;
