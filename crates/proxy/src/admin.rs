//! The admin listener (loopback): `/ready`, `/app-health`, `/config_dump`, `/clusters`,
//! `/quitquitquit`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::body::Body;
use crate::snapshot::SnapshotCell;

/// Serves the admin API until `shutdown` turns true; `/quitquitquit` turns it true.
pub async fn serve(
    listener: TcpListener,
    snapshots: SnapshotCell,
    shutdown: Arc<watch::Sender<bool>>,
    identity: crate::identity::IdentityCell,
    certificate_required: bool,
) {
    let mut stop = shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (snapshots, shutdown, identity) =
            (snapshots.clone(), shutdown.clone(), identity.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (snapshots, shutdown, identity) =
                    (snapshots.clone(), shutdown.clone(), identity.clone());
                async move {
                    if req.method() == Method::GET && req.uri().path() == "/app-health" {
                        return Ok::<_, Infallible>(app_health(&snapshots).await);
                    }
                    Ok::<_, Infallible>(handle(
                        &req,
                        &snapshots,
                        &shutdown,
                        &identity,
                        certificate_required,
                    ))
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `/app-health`: whether the local app accepts connections, as Istio's agent answers a
/// rewritten readiness probe: `200`, `503` with the reason, or `404` without a local app.
async fn app_health(snapshots: &SnapshotCell) -> Response<Body> {
    let snapshot = snapshots.load();
    let Some(app) = snapshot
        .inbound
        .as_ref()
        .and_then(|c| c.endpoints.first())
        .map(|e| e.target.clone())
    else {
        return text(StatusCode::NOT_FOUND, "no local application configured");
    };
    match crate::pool::connect(&app, std::time::Duration::from_secs(1)).await {
        Ok(_) => text(StatusCode::OK, "the app accepts connections"),
        Err(e) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the app at {app} does not accept connections: {e}"),
        ),
    }
}

fn handle(
    req: &Request<Incoming>,
    snapshots: &SnapshotCell,
    shutdown: &watch::Sender<bool>,
    identity: &crate::identity::IdentityCell,
    certificate_required: bool,
) -> Response<Body> {
    let snapshot = snapshots.load();
    match (req.method(), req.uri().path()) {
        // The workload certificate: identity, validity, serial (never the key).
        (&Method::GET, "/certs") => match identity.load_full() {
            Some(id) => json_response(&json!({
                "identity": id.spiffe,
                "not_before": id.not_before,
                "not_after": id.not_after,
                "serial": id.serial,
                "cert_chain": id.cert_chain,
                "roots": id.roots,
            })),
            None => text(
                StatusCode::NOT_FOUND,
                "no certificate (no CA token, or the CA has not answered yet)",
            ),
        },
        // Ready once a configuration is in force (from the control plane: after its first push).
        (&Method::GET, "/ready") if snapshot.version == 0 => {
            text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING")
        }
        // With a CA token, also once the workload certificate is in: before it, mesh mTLS
        // can be neither served nor originated.
        (&Method::GET, "/ready") if certificate_required && identity.load().is_none() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "WAITING_FOR_CERTIFICATE")
        }
        (&Method::GET, "/ready") => text(StatusCode::OK, "LIVE"),
        (&Method::GET, "/config_dump") => {
            let accepted = snapshot
                .accepted_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            json_response(&json!({
                "version": snapshot.version,
                "source": snapshot.source,
                "accepted_at_unix": accepted,
                "scope": snapshot.scope,
                "mesh": snapshot.mesh,
            }))
        }
        (&Method::GET, "/clusters") => {
            let mut clusters: Vec<_> = snapshot
                .clusters
                .values()
                .chain(snapshot.inbound.iter())
                .collect();
            clusters.sort_by(|a, b| a.model.name.cmp(&b.model.name));
            let view: Vec<_> = clusters
                .iter()
                .map(|c| {
                    json!({
                        "name": c.model.name,
                        "circuit": crate::circuit::view(&c.state, &c.limits),
                        "endpoints": c.endpoints.iter().map(|e| e.view()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json_response(&json!({ "version": snapshot.version, "clusters": view }))
        }
        (&Method::POST | &Method::GET, "/quitquitquit") => {
            tracing::info!("drain requested through /quitquitquit");
            let _ = shutdown.send(true);
            text(StatusCode::OK, "OK")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown admin path; try /ready, /config_dump, /clusters, /certs, /quitquitquit",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(format!("{body}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(
        serde_json::to_vec_pretty(value).unwrap_or_default(),
    ));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Binds the admin address, refusing non-loopback addresses (the API can stop the proxy).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("admin address {addr} must be a loopback address"),
        ));
    }
    TcpListener::bind(addr).await
}
