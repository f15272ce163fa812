//! `policy.weft.dev` resources: what Istio has no first-class API for.

pub mod rate_limit;

pub use rate_limit::RateLimit;
