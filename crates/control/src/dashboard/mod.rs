//! The mesh's console in a browser, served by `weft control` on its own port (15080 by
//! default): the service graph, trace search (Jaeger's query API on the same port),
//! golden-signal charts per service and workload, every resource with its analysis
//! findings and the proxies' sync state, a traffic editor, the Gateway API routes with
//! their status, and live requests.
//!
//! The page's assets are embedded in the binary ([`assets`]); the JSON it reads is
//! described in `crates/control/dashboard/API.md`. Security (docs/security.md): it binds
//! loopback by default, answers only `Host`s that name an address or `localhost` (no DNS
//! rebinding) or that the operator named, sends no CORS headers, and takes writes only from
//! its own page (same origin and the `X-Weft-Dashboard` header a cross-site form cannot
//! send); every write is logged on the `weft::audit` target.

pub mod assets;
pub mod config;
pub mod graph;
pub mod panels;
pub mod routes;
pub mod source;
pub mod tap;
pub mod traffic;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use self::source::MetricsSource;
use crate::store::Store;
use crate::traces::TraceStore;
use crate::xds::Proxies;

/// Response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// The header the dashboard's own page sends with every write.
pub const WRITE_HEADER: &str = "x-weft-dashboard";

/// Largest write body.
const MAX_BODY: usize = 64 << 10;

/// What the dashboard reads and writes.
#[derive(Debug)]
pub struct Dashboard {
    /// Resources.
    pub store: Arc<Store>,
    /// Connected proxies.
    pub proxies: Arc<Proxies>,
    /// Traces.
    pub traces: Arc<TraceStore>,
    /// Metrics.
    pub metrics: MetricsSource,
    /// Host names it answers besides addresses and `localhost` (`--dashboard-host`).
    pub allowed_hosts: Vec<String>,
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    r
}

fn json_reply(status: StatusCode, value: &Value) -> Response<Body> {
    reply(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn message(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    json_reply(status, &json!({ "message": text.into() }))
}

/// The name or address of a Host header, without its port.
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    }
}

/// True when `host` (a Host header) names an IP address or `localhost`: a name an
/// attacker's DNS can point at the dashboard (DNS rebinding) is neither.
fn host_is_address(host: &str) -> bool {
    let name = host_name(host);
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok()
}

/// A write must come from the dashboard's own page: its header, and no other origin.
fn cross_site(req: &Request<Incoming>) -> Option<&'static str> {
    let headers = req.headers();
    if headers.get(WRITE_HEADER).is_none_or(|v| v != "1") {
        return Some("writes need the X-Weft-Dashboard: 1 header (the dashboard's page sends it)");
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some("cross-site writes are refused");
        }
    }
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| Some(o) == host.to_str().ok());
        if !same {
            return Some("writes from another origin are refused");
        }
    }
    None
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A window or range like `10s`, `5m`, `1h`, within what the history keeps.
fn window(text: Option<&str>, default: u64) -> Result<u64, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    let us = crate::traces::jaeger::parse_duration_us(text)?;
    let secs = us / 1_000_000;
    let most = crate::history::TICKS * crate::history::TICK_SECS;
    if !(crate::history::TICK_SECS..=most).contains(&secs) {
        return Err(format!(
            "{text:?}: give a window from {}s to {}h",
            crate::history::TICK_SECS,
            most / 3600
        ));
    }
    Ok(secs)
}

/// Answers one request.
pub async fn handle(d: Arc<Dashboard>, req: Request<Incoming>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host_is_address(host) && !d.allowed_hosts.iter().any(|a| host_name(host) == a) {
        return message(
            StatusCode::FORBIDDEN,
            format!(
                "host {host:?} refused: the dashboard answers requests for an address or localhost (name others with --dashboard-host)"
            ),
        );
    }
    let path = req.uri().path().to_string();
    let params = crate::query::params(req.uri().query());
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        (Method::GET, "/" | "/index.html") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", assets::INDEX)
        }
        (Method::GET, "/assets/app.js") => reply(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            assets::APP_JS,
        ),
        (Method::GET, "/assets/app.css") => {
            reply(StatusCode::OK, "text/css; charset=utf-8", assets::APP_CSS)
        }
        (_, p)
            if p.starts_with("/api/services")
                || p.starts_with("/api/traces")
                || p.starts_with("/api/operations")
                || p.starts_with("/api/dependencies") =>
        {
            crate::traces::jaeger::handle(d.traces.clone(), req).await
        }
        (Method::GET, "/api/mesh/graph") => graph(&d, &params).await,
        (Method::GET, "/api/mesh/metrics") => metrics(&d, &params).await,
        (Method::GET, "/api/mesh/services") => services(&d),
        (Method::GET, "/api/mesh/config") => {
            json_reply(StatusCode::OK, &config::page(&d.store, &d.proxies))
        }
        (Method::GET, "/api/mesh/routes") => {
            json_reply(StatusCode::OK, &routes::list(&d.store, &d.proxies))
        }
        (Method::GET, "/api/mesh/tap") => {
            match (param(&params, "namespace"), param(&params, "workload")) {
                (Some(ns), Some(w)) => {
                    let limit = param(&params, "limit")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(50usize)
                        .min(500);
                    json_reply(StatusCode::OK, &tap::requests(&d.traces, ns, w, limit))
                }
                _ => message(StatusCode::BAD_REQUEST, "give namespace and workload"),
            }
        }
        (Method::GET, "/api/mesh/status") => json_reply(
            StatusCode::OK,
            &json!({
                "metrics": d.metrics.describe(),
                "proxies": d.proxies.list().len(),
                "version": d.store.version(),
            }),
        ),
        (_, "/api/mesh/traffic") => traffic(&d, req, &params).await,
        (Method::GET, _) => message(StatusCode::NOT_FOUND, format!("no page or API at {path}")),
        _ => message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        ),
    }
}

async fn graph(d: &Dashboard, params: &[(String, String)]) -> Response<Body> {
    let window_secs = match window(param(params, "window"), 60) {
        Ok(w) => w,
        Err(e) => return message(StatusCode::BAD_REQUEST, format!("window {e}")),
    };
    let now = crate::history::now_secs();
    let totals = match d
        .metrics
        .request_totals(now, window_secs, &Default::default())
        .await
    {
        Ok(t) => t,
        Err(e) => return message(StatusCode::BAD_GATEWAY, e),
    };
    let mut resources = d.store.all();
    resources.retain(|r| {
        matches!(
            r.kind(),
            weft_api::Kind::VirtualService
                | weft_api::Kind::DestinationRule
                | weft_api::Kind::HttpRoute
                | weft_api::Kind::GrpcRoute
        )
    });
    let mut g = graph::build(
        &totals,
        window_secs,
        param(params, "namespace"),
        &d.store.registered(),
        &resources,
    );
    g["window"] = json!(param(params, "window").unwrap_or("1m"));
    g["generatedAt"] = json!(now);
    g["source"] = json!(d.metrics.describe());
    json_reply(StatusCode::OK, &g)
}

async fn metrics(d: &Dashboard, params: &[(String, String)]) -> Response<Body> {
    let subject = match param(params, "kind") {
        Some("service") | None => panels::Subject::Service,
        Some("workload") => panels::Subject::Workload,
        Some(other) => {
            return message(
                StatusCode::BAD_REQUEST,
                format!("kind {other:?}: use service or workload"),
            );
        }
    };
    let direction = match param(params, "direction") {
        Some("inbound") | None => panels::Direction::Inbound,
        Some("outbound") => panels::Direction::Outbound,
        Some(other) => {
            return message(
                StatusCode::BAD_REQUEST,
                format!("direction {other:?}: use inbound or outbound"),
            );
        }
    };
    let (Some(ns), Some(name)) = (param(params, "namespace"), param(params, "name")) else {
        return message(StatusCode::BAD_REQUEST, "give namespace and name");
    };
    let range = match window(param(params, "range"), 900) {
        Ok(r) => r,
        Err(e) => return message(StatusCode::BAD_REQUEST, format!("range {e}")),
    };
    match panels::panels(
        &d.metrics,
        subject,
        direction,
        ns,
        name,
        crate::history::now_secs(),
        range,
    )
    .await
    {
        Ok(mut v) => {
            v["kind"] = json!(if subject == panels::Subject::Service {
                "service"
            } else {
                "workload"
            });
            v["namespace"] = json!(ns);
            v["name"] = json!(name);
            v["direction"] = json!(if direction == panels::Direction::Inbound {
                "inbound"
            } else {
                "outbound"
            });
            json_reply(StatusCode::OK, &v)
        }
        Err(e) => message(StatusCode::BAD_GATEWAY, e),
    }
}

/// Services and workloads the mesh knows (registered workloads and ServiceEntries).
fn services(d: &Dashboard) -> Response<Body> {
    let mut services: std::collections::BTreeMap<(String, String), (Vec<String>, Vec<String>)> =
        Default::default();
    let mut workloads = Vec::new();
    for w in d.store.registered() {
        let info = weft_model::service::WorkloadInfo::new(
            w.name(),
            w.namespace(),
            "",
            &w.metadata().labels,
        );
        let (service, version) = (info.canonical_service, info.version);
        let entry = services
            .entry((w.namespace().to_string(), service.clone()))
            .or_default();
        if !entry.0.contains(&version) {
            entry.0.push(version.clone());
        }
        entry.1.push(w.name().to_string());
        workloads.push(json!({"namespace": w.namespace(), "name": w.name(), "service": service, "version": version}));
    }
    let services: Vec<Value> = services
        .into_iter()
        .map(|((ns, name), (versions, workloads))| json!({"namespace": ns, "name": name, "versions": versions, "workloads": workloads}))
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({"services": services, "workloads": workloads}),
    )
}

async fn traffic(
    d: &Dashboard,
    req: Request<Incoming>,
    params: &[(String, String)],
) -> Response<Body> {
    let method = req.method().clone();
    let (ns, service) = (param(params, "namespace"), param(params, "service"));
    if method == Method::GET {
        return match (ns, service) {
            (Some(ns), Some(s)) => refused_or(traffic::get(&d.store, ns, s)),
            _ => json_reply(StatusCode::OK, &traffic::list(&d.store)),
        };
    }
    if method != Method::PUT && method != Method::DELETE {
        return message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on /api/mesh/traffic"),
        );
    }
    let (Some(ns), Some(service)) = (ns.map(str::to_string), service.map(str::to_string)) else {
        return message(StatusCode::BAD_REQUEST, "give namespace and service");
    };
    if let Some(why) = cross_site(&req) {
        tracing::warn!(target: "weft::audit", %method, namespace = %ns, %service, "dashboard write refused: {why}");
        return message(StatusCode::FORBIDDEN, why);
    }
    let result = if method == Method::PUT {
        let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => return message(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let form: Value = match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {e}"),
                );
            }
        };
        let r = traffic::put(&d.store, &ns, &service, &form);
        tracing::info!(target: "weft::audit", action = "traffic.apply", namespace = %ns, %service, form = %form, ok = r.is_ok(), "dashboard write");
        r
    } else {
        let r = traffic::reset(&d.store, &ns, &service, param(params, "resourceVersion"));
        tracing::info!(target: "weft::audit", action = "traffic.reset", namespace = %ns, %service, ok = r.is_ok(), "dashboard write");
        r
    };
    refused_or(result)
}

fn refused_or(result: Result<Value, traffic::Refused>) -> Response<Body> {
    use traffic::Refused;
    match result {
        Ok(v) => json_reply(StatusCode::OK, &v),
        Err(Refused::Invalid(errors)) => {
            let fields: Vec<Value> = errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.message}))
                .collect();
            let text = errors
                .iter()
                .map(|e| {
                    if e.field.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.field, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            json_reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"message": text, "fieldErrors": fields}),
            )
        }
        Err(Refused::NotFound(m)) => message(StatusCode::NOT_FOUND, m),
        Err(Refused::Conflict(m)) => message(StatusCode::CONFLICT, m),
        Err(Refused::Store(m)) => message(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// A store in a fresh temporary directory (returned, to remove) holding the resources
/// of `yaml`, for the pages' tests.
#[cfg(test)]
pub(crate) fn test_store(what: &str, yaml: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "weft-{what}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("open");
    let loaded = weft_api::load_str(&format!("{what}.yaml"), yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    for r in loaded.resources {
        store.put(r.resource, true).expect("put");
    }
    (store, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_and_localhost_are_answered_on_loopback() {
        for ok in [
            "127.0.0.1:15080",
            "localhost:15080",
            "localhost",
            "[::1]:15080",
            "[::1]",
        ] {
            assert!(host_is_address(ok), "{ok}");
        }
        for bad in [
            "evil.example:15080",
            "evil.example",
            "127.0.0.1.nip.io:80",
            "",
        ] {
            assert!(!host_is_address(bad), "{bad}");
        }
    }

    #[test]
    fn windows_are_bounded_by_the_history() {
        assert_eq!(window(Some("10s"), 60), Ok(10));
        assert_eq!(window(None, 60), Ok(60));
        assert!(window(Some("2h"), 60).is_err());
        assert!(window(Some("1s"), 60).is_err());
        assert!(window(Some("soon"), 60).is_err());
    }
}
