//! Where an upstream connection goes: an address, or a DNS name resolved when connecting.
//! Below everything that connects (the pools, TCP, health checks, tunnels), so none of
//! them depends on the snapshot to name a destination.

use std::net::SocketAddr;

/// Where an endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An address.
    Socket(SocketAddr),
    /// A DNS name, resolved when connecting.
    Host(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(a) => write!(f, "{a}"),
            Target::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}
