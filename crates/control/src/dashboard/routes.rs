//! The routes page: the Gateway API routes (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute)
//! shown as the dashboard shows VirtualServices: for each, its parents (Gateways or, in
//! the mesh, Services) and whether each accepted it, with the status the control plane
//! works out at each read ([`crate::api::gateway_status`]); its hostnames; and each
//! rule's matches, filters, timeouts and backends with their share of the traffic.
//! The route's YAML (with `weft analyze`'s findings) is on the config page.

use serde_json::{Value, json};
use weft_api::{Kind, Resource};

use crate::store::Store;
use crate::xds::Proxies;

/// The route kinds the page shows.
const KINDS: [Kind; 4] = [
    Kind::HttpRoute,
    Kind::GrpcRoute,
    Kind::TcpRoute,
    Kind::TlsRoute,
];

/// The page's JSON (crates/control/dashboard/API.md): every route, oldest kind first.
pub fn list(store: &Store, proxies: &Proxies) -> Value {
    let mut routes: Vec<Resource> = KINDS.iter().flat_map(|k| store.list(*k, None)).collect();
    crate::api::gateway_status::fill(store, proxies, &mut routes);
    let out: Vec<Value> = routes.iter().filter_map(route).collect();
    json!({ "routes": out })
}

/// One route's entry.
fn route(r: &Resource) -> Option<Value> {
    let v = serde_json::to_value(r).ok()?;
    let ns = r.namespace();
    let spec = &v["spec"];
    let parents: Vec<Value> = array(&spec["parentRefs"])
        .iter()
        .map(|p| parent(p, ns, &v["status"]))
        .collect();
    let rules: Vec<Value> = array(&spec["rules"])
        .iter()
        .map(|rule| {
            json!({
                "name": rule["name"],
                "matches": array(&rule["matches"]).iter().map(match_text).collect::<Vec<_>>(),
                "filters": array(&rule["filters"]).iter().map(filter_text).collect::<Vec<_>>(),
                "timeouts": timeouts_text(&rule["timeouts"]),
                "backends": backends(&rule["backendRefs"], ns),
            })
        })
        .collect();
    Some(json!({
        "kind": r.kind().name(), "apiVersion": v["apiVersion"],
        "namespace": ns, "name": r.name(),
        "resourceVersion": r.metadata().resource_version,
        "hostnames": spec["hostnames"].as_array().cloned().unwrap_or_default(),
        "parents": parents,
        "rules": rules,
    }))
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A parentRef with this controller's conditions for it (none: another controller's
/// parent, or one weft does not serve).
fn parent(p: &Value, ns: &str, status: &Value) -> Value {
    let kind = p["kind"].as_str().unwrap_or("Gateway");
    let namespace = p["namespace"].as_str().unwrap_or(ns);
    let same = |s: &Value| {
        let r = &s["parentRef"];
        r["name"] == p["name"]
            && r["kind"].as_str().unwrap_or("Gateway") == kind
            && r["namespace"].as_str().unwrap_or(ns) == namespace
            && r["sectionName"] == p["sectionName"]
            && r["port"] == p["port"]
    };
    let ours = array(&status["parents"])
        .into_iter()
        .find(|s| same(s) && text(&s["controllerName"]) == weft_model::gateway::status::CONTROLLER);
    let condition = |t: &str| {
        ours.as_ref()
            .and_then(|s| {
                array(&s["conditions"]).into_iter().find(|c| c["type"] == t).map(
                    |c| json!({"status": c["status"], "reason": c["reason"], "message": c["message"]}),
                )
            })
            .unwrap_or(Value::Null)
    };
    json!({
        "kind": kind, "namespace": namespace, "name": p["name"],
        "sectionName": p["sectionName"], "port": p["port"],
        "accepted": condition("Accepted"), "resolvedRefs": condition("ResolvedRefs"),
    })
}

/// A match as one line: `PathPrefix /api · header x-canary=true · query v=2 · GET`, a
/// gRPC `method svc/Method`.
fn match_text(m: &Value) -> String {
    let mut parts = Vec::new();
    if m["path"].is_object() {
        let kind = m["path"]["type"].as_str().unwrap_or("PathPrefix");
        parts.push(format!(
            "{kind} {}",
            m["path"]["value"].as_str().unwrap_or("/")
        ));
    }
    if m["method"].is_object() {
        let service = text(&m["method"]["service"]);
        let method = text(&m["method"]["method"]);
        let regex = m["method"]["type"].as_str() == Some("RegularExpression");
        parts.push(format!(
            "method {}{service}/{method}",
            if regex { "~ " } else { "" }
        ));
    } else if let Some(method) = m["method"].as_str() {
        parts.push(method.to_string());
    }
    for (what, key) in [("header", "headers"), ("query", "queryParams")] {
        for h in array(&m[key]) {
            let op = if h["type"].as_str() == Some("RegularExpression") {
                "~"
            } else {
                "="
            };
            parts.push(format!(
                "{what} {}{op}{}",
                text(&h["name"]),
                text(&h["value"])
            ));
        }
    }
    if parts.is_empty() {
        "every request".into()
    } else {
        parts.join(" · ")
    }
}

/// A filter as one line, with what it does.
fn filter_text(f: &Value) -> String {
    let kind = text(&f["type"]);
    let detail = match kind {
        "RequestMirror" => {
            let to = &f["requestMirror"]["backendRef"];
            let pct = f["requestMirror"]["percent"]
                .as_u64()
                .map(|p| format!(" ({p} %)"))
                .unwrap_or_default();
            format!(" to {}{pct}", text(&to["name"]))
        }
        "RequestRedirect" => {
            let r = &f["requestRedirect"];
            let code = r["statusCode"].as_u64().unwrap_or(302);
            format!(" {code}")
        }
        _ => String::new(),
    };
    format!("{kind}{detail}")
}

fn timeouts_text(t: &Value) -> Value {
    let parts: Vec<String> = ["request", "backendRequest"]
        .iter()
        .filter_map(|k| t[*k].as_str().map(|d| format!("{k} {d}")))
        .collect();
    if parts.is_empty() {
        Value::Null
    } else {
        json!(parts.join(", "))
    }
}

/// A rule's backends with their weights (1 unless set) and share in percent.
fn backends(refs: &Value, ns: &str) -> Vec<Value> {
    let refs = array(refs);
    let weight = |b: &Value| b["weight"].as_u64().unwrap_or(1);
    let total: u64 = refs.iter().map(weight).sum();
    refs.iter()
        .map(|b| {
            let share = if total == 0 {
                0.0
            } else {
                (weight(b) as f64 * 1000.0 / total as f64).round() / 10.0
            };
            json!({
                "kind": b["kind"].as_str().unwrap_or("Service"),
                "namespace": b["namespace"].as_str().unwrap_or(ns),
                "name": b["name"], "port": b["port"],
                "weight": weight(b), "percent": share,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
