//! The HTTP data path: [`proxy`] is the request lifecycle; the other modules are its steps.

pub mod authorize;
pub mod body;
pub mod cors;
pub mod fault;
pub mod forward;
pub mod headers;
pub mod local_reply;
pub mod mirror;
pub mod proxy;
pub mod rate_limit;
pub mod retry;
pub mod upgrade;
