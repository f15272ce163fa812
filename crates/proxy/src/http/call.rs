//! What the stages of one request share: the listener's [`Direction`] and
//! [`HttpSettings`], the [`Downstream`] connection, and the [`Call`] handed from stage to
//! stage (the snapshot it started with, who is calling, how the request is framed).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;

/// Which side of the workload a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic from the local app to the mesh (routed by VirtualServices).
    Outbound,
    /// Traffic from the mesh to the local app.
    Inbound,
    /// Traffic entering the mesh at an ingress gateway, on the listener serving the
    /// Gateway servers of `port` (routed by the VirtualServices bound to them).
    Gateway {
        /// The Gateway server port.
        port: u16,
    },
}

/// Tunables of the HTTP path.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body kept in memory so it can be retried or mirrored.
    pub retry_buffer_limit: usize,
    /// How request paths are normalized (Istio's `pathNormalization`).
    pub path_normalization: weft_model::authz::path::Normalization,
    /// Proxies in front of this one whose `X-Forwarded-For` entries are trusted
    /// (Istio's `numTrustedProxies`); 0: `remote.ip` is the connection's peer.
    pub trusted_proxies: usize,
    /// The workload certificate, for mesh mTLS toward upstreams.
    pub identity: Option<crate::identity::IdentityCell>,
    /// The keys of RequestAuthentication `jwksUri`s.
    pub jwks: std::sync::Arc<crate::jwks::JwksCache>,
    /// The external authorization providers CUSTOM policies name.
    pub ext_authz: std::sync::Arc<super::ext_authz::Providers>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            retry_buffer_limit: 64 * 1024,
            path_normalization: Default::default(),
            trusted_proxies: 0,
            identity: None,
            jwks: crate::jwks::JwksCache::new(crate::jwks::DEFAULT_REFRESH),
            ext_authz: std::sync::Arc::default(),
        }
    }
}

/// What is known about the downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct Downstream {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client dialled, when the connection was redirected to us.
    pub original_dst: Option<SocketAddr>,
    /// True when this listener terminated TLS from the client (a gateway's HTTPS server).
    pub tls: bool,
}

/// One request on its way through the stages.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The configuration the request started with (kept until it ends).
    pub snapshot: &'a Snapshot,
    /// The listener's side.
    pub direction: Direction,
    /// The listener's tunables.
    pub settings: &'a HttpSettings,
    /// Where metrics, spans and peers are recorded.
    pub telemetry: &'a Arc<Telemetry>,
    /// The downstream connection.
    pub down: Downstream,
    /// The caller's identity when it came over mutual TLS.
    pub principal: Option<&'a str>,
    /// An HTTP/1.1 `Upgrade` request (WebSocket).
    pub upgrade: bool,
    /// A gRPC request (local replies are gRPC trailers-only).
    pub grpc: bool,
    /// The end-user token a gateway verified, for claim routing.
    pub auth: Option<&'a weft_model::authn::RequestAuth>,
}

impl Call<'_> {
    /// The workload certificate, for mesh mTLS toward upstreams.
    pub fn identity(&self) -> Option<&crate::identity::IdentityCell> {
        self.settings.identity.as_ref()
    }
}
