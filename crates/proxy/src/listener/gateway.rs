//! A gateway port whose servers speak TLS or TCP: the ClientHello's server name picks
//! the server, which terminates TLS (then serves HTTP by the port's routes, or TCP by its
//! `tcp` rules) or passes it through by SNI; a plain-text TCP port goes by its `tcp`
//! rules. Plain-text HTTP ports are served by the listener's HTTP path.

use std::sync::Arc;

use tokio::net::TcpStream;
use weft_model::gateway::servers::{GatewayPort, Serves, TerminateTls};

use super::{Accepted, HANDSHAKE_TIMEOUT, peek_hello, serve_http};
use crate::http::call::Downstream;
use crate::tcp::{self, TcpDecision};

/// Whether the listener's HTTP path serves `port` (plain-text HTTP, or nothing yet).
pub(super) fn served_as_http(port: Option<&GatewayPort>) -> bool {
    port.and_then(|p| p.servers.first())
        .is_none_or(|s| matches!(s.serves, Serves::Http { .. }))
}

/// Serves one connection to gateway `port`, whose servers are in `a.snapshot`.
pub(super) async fn serve(stream: TcpStream, port: u16, a: Accepted) {
    let snapshot = a.snapshot.clone();
    let Some(gw) = snapshot.mesh.gateway.get(&port) else {
        return;
    };
    // By the port's `tcp` rules: plain-text TCP servers and TLS servers that terminate.
    let by_tcp_rules = || {
        gw.tcp_route(port)
            .and_then(|r| tcp::route(&snapshot, r, port))
    };
    if !gw.tls() {
        // TCP in plain text: the client may wait for the server to speak first.
        return proxy(stream, by_tcp_rules(), &a, port).await;
    }
    let hello = peek_hello(&stream, a.settings.detect_timeout).await;
    let sni = hello.as_deref().and_then(crate::sni::server_name);
    let Some(server) = gw.server_for(sni.as_deref()) else {
        tracing::debug!(peer = %a.peer, port, sni = ?sni, "no Gateway server for this server name: closed");
        return;
    };
    match &server.serves {
        Serves::TerminatedHttp(t) => {
            let Some((tls, principal, h2)) = terminate(stream, t, &a, &server.name).await else {
                return;
            };
            let down = Downstream {
                peer: a.peer,
                original_dst: None,
                tls: true,
            };
            let limits = a.settings.limits;
            serve_http(tls, down, principal, a.http, h2, a.watcher, limits).await;
        }
        Serves::TerminatedTcp(t) => {
            let Some((tls, _, _)) = terminate(stream, t, &a, &server.name).await else {
                return;
            };
            proxy(tls, by_tcp_rules(), &a, port).await;
        }
        Serves::Passthrough => {
            let decision = sni
                .as_deref()
                .and_then(|name| gw.tls_route(name, port))
                .and_then(|r| tcp::route(&snapshot, r, port));
            proxy(stream, decision, &a, port).await;
        }
        Serves::AutoPassthrough => {
            let decision = sni
                .as_deref()
                .and_then(auto_passthrough_cluster)
                .and_then(|name| snapshot.cluster(&name).cloned())
                .and_then(|c| tcp::endpoint_of(&c, None));
            proxy(stream, decision, &a, port).await;
        }
        // Plain-text servers are never picked on a TLS port.
        Serves::Http { .. } | Serves::Tcp => {}
    }
}

/// The cluster an AUTO_PASSTHROUGH server name names: Istio's
/// `outbound_.PORT_.SUBSET_.HOST` (subset `_` for none).
fn auto_passthrough_cluster(sni: &str) -> Option<String> {
    let rest = sni.strip_prefix("outbound_.")?;
    let (port, rest) = rest.split_once("_.")?;
    let (subset, host) = rest.split_once("_.")?;
    let port: u16 = port.parse().ok()?;
    let subset = (!subset.is_empty()).then_some(subset);
    (!host.is_empty()).then(|| weft_model::cluster_name(port, subset, host))
}

/// Terminates TLS with the server's settings: the stream, the client's identity (from
/// its certificate's SPIFFE name) and whether ALPN chose HTTP/2.
async fn terminate(
    stream: TcpStream,
    settings: &Arc<TerminateTls>,
    a: &Accepted,
    server: &str,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<Arc<str>>,
    bool,
)> {
    let config = match a
        .settings
        .gateway_tls
        .get(settings, a.settings.identity.as_ref())
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(server, "cannot terminate TLS: {e}");
            return None;
        }
    };
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(peer = %a.peer, server, error = %e, "gateway TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(peer = %a.peer, server, "gateway TLS handshake timed out");
            return None;
        }
    };
    let session = tls.get_ref().1;
    let principal = session
        .peer_certificates()
        .and_then(crate::tls::peer_principal)
        .map(Arc::from);
    let h2 = matches!(session.alpn_protocol(), Some(b"h2" | crate::tls::ALPN_H2));
    Some((tls, principal, h2))
}

async fn proxy<S: tcp::TcpDownstream>(
    stream: S,
    decision: Option<TcpDecision>,
    a: &Accepted,
    port: u16,
) {
    let Some(d) = decision else {
        tracing::debug!(peer = %a.peer, port, "gateway connection with no route closed");
        return;
    };
    let side = tcp::TcpSide {
        reporter: a.reporter,
        policy: a.snapshot.telemetry.clone(),
    };
    let stop = std::future::pending();
    // Mesh endpoints are reached over mesh mTLS, with the gateway's identity.
    let identity = a.settings.identity.as_ref();
    tcp::proxy_stream(stream, d, &a.settings.telemetry, side, identity, stop, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_passthrough_names_read_as_istio_writes_them() {
        assert_eq!(
            auto_passthrough_cluster("outbound_.8080_._.reviews.default.svc.cluster.local")
                .as_deref(),
            Some("outbound|8080||reviews.default.svc.cluster.local")
        );
        assert_eq!(
            auto_passthrough_cluster("outbound_.9080_.v2_.reviews.default.svc.cluster.local")
                .as_deref(),
            Some("outbound|9080|v2|reviews.default.svc.cluster.local")
        );
        assert_eq!(auto_passthrough_cluster("reviews.example.com"), None);
        assert_eq!(auto_passthrough_cluster("outbound_.x_._.h"), None);
        assert_eq!(auto_passthrough_cluster("outbound_.80_._."), None);
    }
}
