//! weft's active health checks (annotation `health.weft.io/check` on a ServiceEntry or
//! DestinationRule): each endpoint of a checked cluster is probed every `interval`, by
//! TCP connect or HTTP GET (2xx passes). After `unhealthyThreshold` failures in a row it
//! leaves the balancer; after `healthyThreshold` passes in a row it returns. Endpoints
//! start healthy. Probes are secured as the cluster's requests are (mesh mTLS to a
//! sidecar, DestinationRule `tls`), so STRICT workloads stay healthy.

use std::time::Duration;

use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use weft_model::policy::HealthCheck;

use crate::pool;
use crate::snapshot::SnapshotCell;
use crate::target::Target;

/// How often the checker looks for due probes.
const TICK: Duration = Duration::from_millis(50);

/// Probes endpoints of the current configuration until `stop` fires.
pub async fn run(
    snapshots: SnapshotCell,
    identity: crate::identity::IdentityCell,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let snapshot = snapshots.load();
        for cluster in snapshot.clusters.values() {
            let Some(check) = &cluster.model.policy.health_check else {
                continue;
            };
            for endpoint in &cluster.endpoints {
                if !endpoint.health.claim_check(check.interval) {
                    continue;
                }
                let (endpoint, check, host) = (
                    endpoint.clone(),
                    check.clone(),
                    cluster.model.service.clone(),
                );
                let purpose = if check.http_path.is_some() {
                    crate::tls::Purpose::Http1
                } else {
                    crate::tls::Purpose::Tcp
                };
                let mesh = endpoint.mesh_tls.load(std::sync::atomic::Ordering::Relaxed);
                let tls = cluster.tls.originate(mesh, Some(&identity), purpose);
                tokio::spawn(async move {
                    let passed = match tls {
                        Ok(tls) => probe(&endpoint.target, &check, &host, tls.as_deref()).await,
                        Err(e) => {
                            tracing::debug!(endpoint = %endpoint.key, "health check TLS: {e}");
                            false
                        }
                    };
                    if !passed {
                        tracing::debug!(endpoint = %endpoint.key, "active health check failed");
                    }
                    endpoint.health.check_result(
                        passed,
                        check.healthy_threshold,
                        check.unhealthy_threshold,
                    );
                });
            }
        }
    }
}

/// One probe: a TCP connection (with `tls`, its handshake), or an HTTP GET answered with
/// 2xx, within the timeout.
pub async fn probe(
    target: &Target,
    check: &HealthCheck,
    host: &str,
    tls: Option<&crate::tls::Originate>,
) -> bool {
    let attempt = async {
        let stream = pool::connect_secured(target, check.timeout, tls)
            .await
            .ok()?;
        let Some(path) = &check.http_path else {
            return Some(true);
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::get(path.as_str())
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "weft-health-check")
            .body(Empty::<bytes::Bytes>::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        Some(resp.status().is_success())
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
