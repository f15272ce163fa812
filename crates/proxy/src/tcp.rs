//! Opaque TCP: connections to a service port declared TCP (or not detected as HTTP)
//! go to one of the service's endpoints; to anything else, to the original destination.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, copy_bidirectional};
use weft_model::host;

use crate::balancer::PickInput;
use crate::pool;
use crate::snapshot::{ClusterRuntime, Snapshot, Target};

/// Connect timeout for destinations outside the registry.
const PASSTHROUGH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default cluster of the service named `name` (any alias) on `port`.
pub fn service_cluster<'s>(
    snapshot: &'s Snapshot,
    name: &str,
    port: u16,
) -> Option<&'s Arc<ClusterRuntime>> {
    let service = snapshot.mesh.services.values().find(|s| {
        s.port(port).is_some()
            && host::aliases(&s.hostname, &snapshot.scope.namespace)
                .iter()
                .any(|a| a == name)
    })?;
    snapshot.cluster(&weft_model::cluster_name(port, None, &service.hostname))
}

/// The default cluster of the service whose virtual IP is `dst`.
pub fn cluster_for_address(snapshot: &Snapshot, dst: SocketAddr) -> Option<&Arc<ClusterRuntime>> {
    let ip = dst.ip().to_string();
    let service = snapshot
        .mesh
        .services
        .values()
        .find(|s| s.port(dst.port()).is_some() && s.addresses.contains(&ip))?;
    snapshot.cluster(&weft_model::cluster_name(
        dst.port(),
        None,
        &service.hostname,
    ))
}

/// Where a TCP connection goes: a service endpoint, or the original destination.
pub fn destination(
    cluster: Option<&Arc<ClusterRuntime>>,
    original: Option<SocketAddr>,
) -> Option<(Target, Duration)> {
    if let Some(cluster) = cluster {
        let active = |i: usize| {
            cluster.endpoints.get(i).map_or(0, |e| {
                e.stats.active.load(std::sync::atomic::Ordering::Relaxed)
            })
        };
        let excluded = |_: usize| false;
        let input = PickInput {
            hash: None,
            random: fastrand::u64(..),
            active: &active,
            excluded: &excluded,
        };
        let i = cluster.balancer.pick(&input)?;
        return Some((
            cluster.endpoints.get(i)?.target.clone(),
            cluster.model.policy.pool.connect_timeout,
        ));
    }
    original.map(|dst| (Target::Socket(dst), PASSTHROUGH_CONNECT_TIMEOUT))
}

/// Copies bytes between `downstream` and `target` until both sides close.
pub async fn proxy<S: AsyncRead + AsyncWrite + Unpin>(
    mut downstream: S,
    target: Target,
    connect_timeout: Duration,
) {
    let mut upstream = match pool::connect(&target, connect_timeout).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%target, error = %e, "TCP upstream connect failed (UF)");
            return;
        }
    };
    if let Err(e) = copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(%target, error = %e, "TCP connection ended");
    }
}
