//! The stats listener (Istio's 15020): `/stats/prometheus` in the Prometheus text format
//! (Istio's metrics, then the proxy's own: configuration version, pool occupancy,
//! overflows, retries, ejections) and `/healthz/ready`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Telemetry;
use super::metrics::family;
use crate::http::body::Body;
use crate::snapshot::SnapshotCell;

/// Serves the stats listener until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    snapshots: SnapshotCell,
    telemetry: Arc<Telemetry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (snapshots, telemetry) = (snapshots.clone(), telemetry.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (snapshots, telemetry) = (snapshots.clone(), telemetry.clone());
                async move { Ok::<_, Infallible>(handle(&req, &snapshots, &telemetry)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(
    req: &Request<Incoming>,
    snapshots: &SnapshotCell,
    telemetry: &Telemetry,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/stats/prometheus") => {
            let mut out = String::with_capacity(64 * 1024);
            telemetry
                .metrics
                .render(&mut out, &snapshots.load().telemetry);
            internals(&mut out, snapshots);
            if telemetry.sinks.load().tracer.is_some() {
                use std::sync::atomic::Ordering::Relaxed;
                family(
                    &mut out,
                    "weft_tracing_spans_exported_total",
                    "counter",
                    "Spans the trace collector accepted.",
                );
                let _ = writeln!(
                    out,
                    "weft_tracing_spans_exported_total {}",
                    telemetry.spans.exported.load(Relaxed)
                );
                family(
                    &mut out,
                    "weft_tracing_spans_dropped_total",
                    "counter",
                    "Spans dropped: export queue full, collector slow, absent or refusing.",
                );
                let _ = writeln!(
                    out,
                    "weft_tracing_spans_dropped_total {}",
                    telemetry.spans.dropped.load(Relaxed)
                );
            }
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out,
            )
        }
        (&Method::GET, "/healthz/ready") if snapshots.load().version == 0 => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "PRE_INITIALIZING\n".into(),
        ),
        (&Method::GET, "/healthz/ready") => reply(StatusCode::OK, "text/plain", "LIVE\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown stats path; try /stats/prometheus or /healthz/ready\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

/// The proxy's own state, per cluster.
fn internals(out: &mut String, snapshots: &SnapshotCell) {
    let snapshot = snapshots.load();
    family(
        out,
        "weft_config_version",
        "gauge",
        "Version of the configuration in force (0: none yet).",
    );
    let _ = writeln!(out, "weft_config_version {}", snapshot.version);
    let mut clusters: Vec<_> = snapshot
        .clusters
        .values()
        .chain(snapshot.inbound.iter())
        .collect();
    clusters.sort_by(|a, b| a.model.name.cmp(&b.model.name));
    let views: Vec<_> = clusters
        .iter()
        .map(|c| {
            (
                c.model.name.clone(),
                crate::circuit::view(&c.state, &c.limits),
                c,
            )
        })
        .collect();
    type Pick = fn(&crate::circuit::ClusterView) -> u64;
    let gauges: [(&str, &str, &str, Pick); 7] = [
        (
            "weft_cluster_active_requests",
            "gauge",
            "HTTP requests in flight.",
            |v| v.active_requests,
        ),
        (
            "weft_cluster_pending_requests",
            "gauge",
            "Requests waiting for a connection slot.",
            |v| v.pending_requests,
        ),
        (
            "weft_cluster_active_retries",
            "gauge",
            "Retries in flight.",
            |v| v.active_retries,
        ),
        (
            "weft_cluster_tcp_connections",
            "gauge",
            "Opaque TCP connections open.",
            |v| v.tcp_connections,
        ),
        (
            "weft_cluster_overflows_total",
            "counter",
            "Requests and connections refused by a connectionPool limit (UO).",
            |v| v.overflows,
        ),
        (
            "weft_cluster_retry_overflows_total",
            "counter",
            "Retries refused by maxRetries or the retry budget.",
            |v| v.retry_overflows,
        ),
        (
            "weft_cluster_ejections_total",
            "counter",
            "Endpoint ejections by outlier detection.",
            |v| v.ejections,
        ),
    ];
    for (name, kind, help, pick) in gauges {
        family(out, name, kind, help);
        for (cluster, view, _) in &views {
            let _ = writeln!(
                out,
                "{name}{{cluster=\"{}\"}} {}",
                cluster.replace('"', "\\\""),
                pick(view)
            );
        }
    }
    family(
        out,
        "weft_cluster_endpoints_healthy",
        "gauge",
        "Endpoints in rotation (not ejected, not failing health checks).",
    );
    for (cluster, _, c) in &views {
        let healthy = c.endpoints.iter().filter(|e| e.health.available()).count();
        let _ = writeln!(
            out,
            "weft_cluster_endpoints_healthy{{cluster=\"{}\"}} {healthy}",
            cluster.replace('"', "\\\"")
        );
    }
}
