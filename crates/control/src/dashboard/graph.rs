//! The service graph: nodes (workloads, services, gateways, callers outside the mesh)
//! and edges from `istio_requests_total` over a window, as Kiali draws them.
//!
//! Which samples make an edge, as Kiali chooses: the client side's (`reporter="source"`,
//! which sees every request once, retries and faults included, whether or not it reached a
//! server), plus the server side's for callers outside the mesh, which have no client
//! sidecar; so no request is counted twice. Whether an edge is mutual TLS only the server
//! side knows: it comes from the server side's samples of the same edge.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use weft_api::{Kind, Resource};

use crate::history::{Peer, Reporter, RequestKey, RequestRow, Row};

/// A node or edge's health, from its error rate (documented in docs/dashboard.md).
pub fn health(rps: f64, error_rate: f64) -> &'static str {
    if rps <= 0.0 {
        "idle"
    } else if error_rate >= FAILING {
        "failing"
    } else if error_rate >= DEGRADED {
        "degraded"
    } else {
        "healthy"
    }
}

/// Error rate from which a node or edge is failing (Kiali's default).
pub const FAILING: f64 = 0.20;
/// Error rate from which a node or edge is degraded (Kiali's default).
pub const DEGRADED: f64 = 0.001;

#[derive(Default)]
struct Traffic {
    row: RequestRow,
    errors: f64,
    /// Of the server side's samples of this edge: all, and those over mutual TLS.
    secured: (f64, f64),
    flags: BTreeMap<String, f64>,
    protocol: BTreeSet<String>,
}

impl Traffic {
    fn add(&mut self, key: &RequestKey, row: &RequestRow) {
        self.row.add(row);
        if key.is_error() {
            self.errors += f64::from(row.requests);
        }
        if &*key.flags != "-" {
            *self.flags.entry(key.flags.to_string()).or_default() += f64::from(row.requests);
        }
        self.protocol.insert(key.protocol.to_string());
    }

    fn requests(&self) -> f64 {
        f64::from(self.row.requests)
    }

    fn error_rate(&self) -> f64 {
        if self.requests() > 0.0 {
            self.errors / self.requests()
        } else {
            0.0
        }
    }
}

struct Node {
    kind: &'static str,
    namespace: String,
    name: String,
    service: String,
    version: String,
    /// Traffic into it (out of it, for gateways and outside callers).
    traffic: Traffic,
}

/// The workloads whose proxy registered as a gateway (a Gateway API Gateway's proxy is
/// named after its Gateway, `<gateway>-<class>`, not `*ingressgateway`).
fn gateway_workloads(workloads: &[Resource]) -> BTreeSet<(String, String)> {
    workloads
        .iter()
        .filter(|w| {
            w.metadata()
                .annotations
                .get("weft.io/registered-by")
                .is_some_and(|id| weft_proto::is_gateway_id(id))
        })
        .map(|w| (w.namespace().to_string(), w.name().to_string()))
        .collect()
}

fn is_gateway(p: &Peer, gateways: &BTreeSet<(String, String)>) -> bool {
    p.workload.contains("ingressgateway")
        || p.workload.contains("egressgateway")
        || gateways.contains(&(p.namespace.to_string(), p.workload.to_string()))
}

fn workload_id(p: &Peer) -> String {
    format!("wl:{}/{}", p.namespace, p.workload)
}

fn service_id(namespace: &str, name: &str) -> String {
    format!("svc:{namespace}/{name}")
}

/// What the configuration does to a service: shown as markers on its node.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Markers {
    /// A VirtualService (or an HTTPRoute attached to it) splits its traffic by weight.
    pub split: bool,
    /// A VirtualService injects faults.
    pub fault: bool,
    /// A DestinationRule sets connection pool limits or outlier detection.
    pub circuit_breaker: bool,
}

/// The markers of every service the configuration touches.
pub fn markers(resources: &[Resource]) -> BTreeMap<(String, String), Markers> {
    let mut out: BTreeMap<(String, String), Markers> = BTreeMap::new();
    for r in resources {
        let Ok(v) = serde_json::to_value(r) else {
            continue;
        };
        let ns = r.namespace().to_string();
        match r.kind() {
            Kind::VirtualService => {
                let http = v["spec"]["http"].as_array().cloned().unwrap_or_default();
                let split = http.iter().any(|h| {
                    h["route"].as_array().is_some_and(|routes| {
                        routes.len() > 1
                            || routes
                                .iter()
                                .any(|d| d["weight"].as_u64().is_some_and(|w| w < 100 && w > 0))
                    })
                });
                let fault = http
                    .iter()
                    .any(|h| h.get("fault").is_some_and(|f| !f.is_null()));
                // Only mesh-internal hosts: `gateways` naming only gateways is not the mesh.
                for host in v["spec"]["hosts"].as_array().cloned().unwrap_or_default() {
                    let Some(host) = host.as_str() else { continue };
                    let m = out
                        .entry(super::traffic::service_of_host(host, &ns))
                        .or_default();
                    m.split |= split;
                    m.fault |= fault;
                }
            }
            // An HTTPRoute or GRPCRoute attached to a Service (GAMMA) splits it when a
            // rule has more than one backend with weight.
            Kind::HttpRoute | Kind::GrpcRoute => {
                let split = v["spec"]["rules"].as_array().is_some_and(|rules| {
                    rules.iter().any(|rule| {
                        let weighted = rule["backendRefs"].as_array().map_or(0, |b| {
                            b.iter()
                                .filter(|b| b["weight"].as_u64().is_none_or(|w| w > 0))
                                .count()
                        });
                        weighted > 1
                    })
                });
                for parent in v["spec"]["parentRefs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let service = parent["kind"].as_str() == Some("Service")
                        && matches!(parent["group"].as_str(), Some("" | "core"));
                    let Some(name) = parent["name"].as_str().filter(|_| service) else {
                        continue;
                    };
                    let parent_ns = parent["namespace"].as_str().unwrap_or(&ns).to_string();
                    out.entry((parent_ns, name.to_string())).or_default().split |= split;
                }
            }
            Kind::DestinationRule => {
                let breaks = |p: &Value| {
                    p.get("connectionPool").is_some_and(|c| !c.is_null())
                        || p.get("outlierDetection").is_some_and(|o| !o.is_null())
                };
                let spec = &v["spec"];
                let any = breaks(&spec["trafficPolicy"])
                    || spec["subsets"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| breaks(&s["trafficPolicy"])));
                if let Some(host) = spec["host"].as_str() {
                    out.entry(super::traffic::service_of_host(host, &ns))
                        .or_default()
                        .circuit_breaker |= any;
                }
            }
            _ => {}
        }
    }
    out
}

/// The graph's JSON (see crates/control/dashboard/API.md) for the traffic of
/// `window_secs`, the registered workloads and the configuration.
pub fn build(
    totals: &[(RequestKey, RequestRow)],
    window_secs: u64,
    namespace: Option<&str>,
    workloads: &[Resource],
    resources: &[Resource],
) -> Value {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut edges: BTreeMap<(String, String), Traffic> = BTreeMap::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let gateways = gateway_workloads(workloads);
    let workload_node = |nodes: &mut BTreeMap<String, Node>, p: &Peer| -> String {
        if p.is_unknown() {
            nodes.entry("outside".into()).or_insert_with(|| Node {
                kind: "outside",
                namespace: String::new(),
                name: "outside the mesh".into(),
                service: String::new(),
                version: String::new(),
                traffic: Traffic::default(),
            });
            return "outside".into();
        }
        let id = workload_id(p);
        nodes.entry(id.clone()).or_insert_with(|| Node {
            kind: if is_gateway(p, &gateways) {
                "gateway"
            } else {
                "workload"
            },
            namespace: p.namespace.to_string(),
            name: p.workload.to_string(),
            service: p.service.to_string(),
            version: p.version.to_string(),
            traffic: Traffic::default(),
        });
        id
    };
    for (key, row) in totals {
        if row.requests <= 0.0 {
            continue;
        }
        let counted = match key.edge.reporter {
            Reporter::Source => !key.edge.source.is_unknown(),
            Reporter::Destination => key.edge.source.is_unknown(),
        };
        let from = workload_node(&mut nodes, &key.edge.source);
        let known_service = &*key.edge.service != "unknown";
        let service = known_service.then(|| {
            let id = service_id(&key.edge.service_namespace, &key.edge.service);
            nodes.entry(id.clone()).or_insert_with(|| Node {
                kind: "service",
                namespace: key.edge.service_namespace.to_string(),
                name: key.edge.service.to_string(),
                service: key.edge.service.to_string(),
                version: String::new(),
                traffic: Traffic::default(),
            });
            id
        });
        let to = (!key.edge.destination.is_unknown())
            .then(|| workload_node(&mut nodes, &key.edge.destination));
        let hops: Vec<(String, String)> = match (service, to) {
            (Some(s), Some(w)) => vec![(from.clone(), s.clone()), (s, w)],
            (Some(s), None) => vec![(from.clone(), s)],
            (None, Some(w)) => vec![(from.clone(), w)],
            (None, None) => Vec::new(),
        };
        for (a, b) in hops {
            let edge = edges.entry((a, b.clone())).or_default();
            if key.edge.reporter == Reporter::Destination {
                edge.secured.0 += f64::from(row.requests);
                if key.edge.mtls {
                    edge.secured.1 += f64::from(row.requests);
                }
            }
            if !counted {
                continue;
            }
            edge.add(key, row);
            if let Some(n) = nodes.get_mut(&b) {
                n.traffic.add(key, row);
            }
        }
        if let Some(n) = nodes.get_mut(&from) {
            if counted && (n.kind == "gateway" || n.kind == "outside") {
                n.traffic.add(key, row);
            }
        }
    }
    // Edges only the server side reported (its callers' sidecars were not scraped) keep
    // their secured share but carry no traffic of their own: drop them.
    edges.retain(|_, t| t.requests() > 0.0);
    // Workloads registered but idle are part of the mesh too.
    for w in workloads {
        let info = weft_model::service::WorkloadInfo::new(
            w.name(),
            w.namespace(),
            "",
            &w.metadata().labels,
        );
        let peer = Peer {
            workload: w.name().into(),
            namespace: w.namespace().into(),
            service: info.canonical_service.into(),
            version: info.version.into(),
        };
        workload_node(&mut nodes, &peer);
    }
    for n in nodes.values() {
        if !n.namespace.is_empty() {
            namespaces.insert(n.namespace.clone());
        }
    }
    // A namespace filter keeps its nodes and whatever they talk to.
    let in_namespace = |id: &str| match namespace {
        None => true,
        Some(ns) => nodes.get(id).is_some_and(|n| n.namespace == ns),
    };
    let edges: Vec<((String, String), Traffic)> = edges
        .into_iter()
        .filter(|((a, b), _)| in_namespace(a) || in_namespace(b))
        .collect();
    let linked: BTreeSet<&str> = edges
        .iter()
        .flat_map(|((a, b), _)| [a.as_str(), b.as_str()])
        .collect();
    let markers = markers(resources);
    let window = window_secs.max(1) as f64;
    let rate = |t: &Traffic| t.requests() / window;
    let quantile = |t: &Traffic, q: f64| t.row.duration_quantile(q).map(round2);
    let node_json: Vec<Value> = nodes
        .iter()
        .filter(|(id, _)| in_namespace(id) || linked.contains(id.as_str()))
        .map(|(id, n)| {
            let rps = rate(&n.traffic);
            let mut v = json!({
                "id": id, "kind": n.kind, "namespace": n.namespace, "name": n.name,
                "service": n.service, "version": n.version,
                "rps": round2(rps), "errorRate": round4(n.traffic.error_rate()),
                "health": health(rps, n.traffic.error_rate()),
            });
            if n.kind == "service" {
                let m = markers
                    .get(&(n.namespace.clone(), n.name.clone()))
                    .copied()
                    .unwrap_or_default();
                v["markers"] = json!({"split": m.split, "fault": m.fault, "circuitBreaker": m.circuit_breaker});
            }
            v
        })
        .collect();
    let edge_json: Vec<Value> = edges
        .iter()
        .map(|((a, b), t)| {
            let rps = rate(t);
            let total = t.requests().max(1.0);
            json!({
                "id": format!("{a}>{b}"), "source": a, "target": b,
                "rps": round2(rps), "errorRate": round4(t.error_rate()),
                "health": health(rps, t.error_rate()),
                "p50": quantile(t, 0.5), "p90": quantile(t, 0.9), "p99": quantile(t, 0.99),
                "mtls": t.secured.0 > 0.0 && t.secured.1 >= t.secured.0,
                "protocol": t.protocol.iter().cloned().collect::<Vec<_>>().join(","),
                "flags": t.flags.iter().map(|(f, n)| (f.clone(), json!(round4(n / total)))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    json!({
        "namespaces": namespaces,
        "nodes": node_json,
        "edges": edge_json,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}

#[cfg(test)]
mod tests;
