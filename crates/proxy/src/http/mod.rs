//! The HTTP data path. [`proxy`] conducts a request through its stages; each stage is a
//! module:
//!
//! - framing and the listener's side: [`proxy`], [`call`] (direction, downstream, what
//!   the stages share);
//! - inbound: [`inbound`] (STRICT, [`authenticate`] (JWT), [`authorize`], [`rate_limit`],
//!   then the app);
//! - outbound: [`outbound`] (route, [`direct`] answers, [`cors`], [`fault`], cluster pick,
//!   [`hash`], [`mirror`]), [`passthrough`] for destinations outside the registry;
//! - sending: [`forward`] (endpoint, [`retry`], timeouts, limits), [`upgrade`] (WebSocket
//!   and `CONNECT` tunnels);
//! - answering: [`respond`] (an upstream's response), [`local_reply`] (the proxy's own);
//! - shared: [`headers`], [`body`].

pub mod authenticate;
pub mod authorize;
pub mod body;
pub mod call;
pub mod cors;
pub mod direct;
pub mod ext_authz;
pub mod fault;
pub mod forward;
pub mod hash;
pub mod headers;
pub mod inbound;
pub mod local_reply;
pub mod mirror;
pub mod outbound;
pub mod passthrough;
pub mod proxy;
pub mod rate_limit;
pub mod respond;
pub mod retry;
pub mod upgrade;
