//! The status the Gateway API asks a controller to write, worked out from the resources
//! in force and the gateway proxies connected: GatewayClass `Accepted`; Gateway
//! `Accepted` and `Programmed` with each listener's `Accepted`, `Programmed`,
//! `ResolvedRefs`, `Conflicted`, supported kinds and attached routes; an HTTPRoute's
//! (and GRPCRoute's, TCPRoute's, TLSRoute's) `Accepted` and `ResolvedRefs` for each parent weft serves (a Gateway of its class, or a
//! Service). Objects of another controller get no status from weft.
//!
//! The control plane computes it when an object is read, so it is always the current
//! one; `lastTransitionTime` is the object's creation time (weft keeps no history of
//! conditions).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_api::gateway_api::gateway::CONTROLLERS;
use weft_api::gateway_api::{GROUP, Gateway, HttpRoute};
use weft_api::{Object, ObjectMeta, Resource};

use super::kubernetes::{attach, class_served, listener_serves, names_gateway};
use crate::host;
use crate::route::RetryPolicy;
use crate::service::Service;
use crate::translate::gateway_api::{Backends, all_routes, grpc_as_http, unresolved_backends};
use crate::translate::scope::ProxyScope;

/// The controller name weft writes in route parent statuses.
pub const CONTROLLER: &str = CONTROLLERS[0];

/// A connected gateway proxy: the Gateway (namespace, name) it serves and its address.
pub struct ConnectedGateway {
    /// Namespace and name of the Gateway.
    pub gateway: (String, String),
    /// The address it listens on, when known.
    pub address: Option<String>,
}

/// The status of `resource` when it is a Gateway API object weft serves; `None` leaves
/// what is stored.
pub fn of(
    resources: &[Resource],
    resource: &Resource,
    connected: &[ConnectedGateway],
) -> Option<Value> {
    match resource {
        Resource::GatewayClass(c) if c.spec.served() => Some(json!({
            "conditions": [condition(&c.metadata, "Accepted", true, "Accepted", "handled by weft's gateway controller")],
        })),
        Resource::KubernetesGateway(g) => {
            class_served(resources, &g.spec.gateway_class_name).ok()?;
            Some(gateway(resources, g, connected))
        }
        Resource::HttpRoute(r) => Some(http_route(resources, r)),
        Resource::GrpcRoute(r) => Some(http_route(resources, &grpc_as_http(r))),
        Resource::TcpRoute(_) | Resource::TlsRoute(_) => {
            let converted = all_routes(std::slice::from_ref(resource));
            converted.first().map(|r| http_route(resources, r))
        }
        _ => None,
    }
}

fn condition(meta: &ObjectMeta, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": if ok { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": meta.generation.unwrap_or(1),
        "lastTransitionTime": meta.creation_timestamp.clone().unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
    })
}

fn gateway(resources: &[Resource], g: &Object<Gateway>, connected: &[ConnectedGateway]) -> Value {
    let meta = &g.metadata;
    // Routes attached to each listener.
    let mut attached: BTreeMap<usize, u32> = BTreeMap::new();
    for r in all_routes(resources) {
        let ns = r.metadata.namespace();
        for p in r
            .spec
            .parent_refs
            .iter()
            .filter(|p| names_gateway(p, ns, g))
        {
            if let Ok(listeners) = attach(resources, g, p, &r.kind, ns, &r.spec.hostnames) {
                for (i, _) in listeners {
                    *attached.entry(i).or_default() += 1;
                }
            }
        }
    }
    let mut served = 0;
    let listeners: Vec<Value> = g
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let serves = listener_serves(l);
            let conflicted = g.spec.listeners[..i].iter().any(|e| {
                e.port == l.port
                    && matches!(e.protocol.as_str(), "HTTPS" | "TLS")
                        != matches!(l.protocol.as_str(), "HTTPS" | "TLS")
            });
            let kinds: Vec<Value> = l
                .route_kinds()
                .into_iter()
                .filter(|(group, kind)| {
                    group == GROUP
                        && matches!(
                            (l.protocol.as_str(), kind.as_str()),
                            ("HTTP" | "HTTPS", "HTTPRoute" | "GRPCRoute")
                                | ("TCP", "TCPRoute")
                                | ("TLS", "TLSRoute")
                        )
                })
                .map(|(group, kind)| json!({"group": group, "kind": kind}))
                .collect();
            let mut conditions = Vec::new();
            match &serves {
                Err((reason @ ("UnsupportedProtocol" | "UnsupportedValue"), why)) => {
                    conditions.push(condition(meta, "Accepted", false, reason, why));
                    conditions.push(condition(meta, "Programmed", false, "Invalid", why));
                    conditions.push(condition(meta, "ResolvedRefs", true, "ResolvedRefs", "no references"));
                }
                Err((reason, why)) => {
                    conditions.push(condition(meta, "Accepted", true, "Accepted", "accepted"));
                    conditions.push(condition(meta, "Programmed", false, "Invalid", why));
                    conditions.push(condition(meta, "ResolvedRefs", false, reason, why));
                }
                Ok(_) if conflicted => {
                    let why = "another listener on this port speaks TLS and this one does not, or the other way round";
                    conditions.push(condition(meta, "Accepted", false, "ProtocolConflict", why));
                    conditions.push(condition(meta, "Programmed", false, "Invalid", why));
                    conditions.push(condition(meta, "ResolvedRefs", true, "ResolvedRefs", "resolved"));
                }
                Ok(_) => {
                    served += 1;
                    conditions.push(condition(meta, "Accepted", true, "Accepted", "accepted"));
                    conditions.push(condition(meta, "Programmed", true, "Programmed", "served by the gateway proxy"));
                    conditions.push(condition(meta, "ResolvedRefs", true, "ResolvedRefs", "resolved"));
                }
            }
            conditions.push(condition(
                meta,
                "Conflicted",
                conflicted,
                if conflicted { "ProtocolConflict" } else { "NoConflicts" },
                if conflicted { "protocol conflict on the port" } else { "no conflicts" },
            ));
            json!({
                "name": l.name,
                "supportedKinds": kinds,
                "attachedRoutes": attached.get(&i).copied().unwrap_or(0),
                "conditions": conditions,
            })
        })
        .collect();
    let id = (meta.namespace().to_string(), meta.name.clone());
    let proxy = connected.iter().find(|c| c.gateway == id);
    let accepted = if served == g.spec.listeners.len() {
        condition(meta, "Accepted", true, "Accepted", "accepted by weft")
    } else {
        condition(
            meta,
            "Accepted",
            served > 0,
            "ListenersNotValid",
            "some listeners cannot be served; see their conditions",
        )
    };
    let programmed = match proxy {
        Some(_) => condition(
            meta,
            "Programmed",
            true,
            "Programmed",
            "a gateway proxy serving it is connected",
        ),
        None => condition(
            meta,
            "Programmed",
            false,
            "Pending",
            &format!(
                "no gateway proxy serving it is connected (weft up starts one; or run weft proxy --gateway ... --labels gateway.networking.k8s.io/gateway-name={} in namespace {})",
                meta.name,
                meta.namespace()
            ),
        ),
    };
    let addresses: Vec<Value> = proxy
        .and_then(|p| p.address.clone())
        .map(|a| json!({"type": "IPAddress", "value": a}))
        .into_iter()
        .collect();
    json!({
        "addresses": addresses,
        "conditions": [accepted, programmed],
        "listeners": listeners,
    })
}

fn http_route(resources: &[Resource], r: &Object<HttpRoute>) -> Value {
    let meta = &r.metadata;
    let ns = meta.namespace();
    let scope = ProxyScope {
        gateway: true,
        ..ProxyScope::default()
    };
    let services: BTreeMap<String, Service> =
        crate::translate::services::visible_services(resources, &scope);
    let retry = RetryPolicy::istio_default();
    let backends = Backends::new(resources, &services, &retry);
    let unresolved = unresolved_backends(r, &backends);
    let resolved = match unresolved.first() {
        None => condition(
            meta,
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "every backend resolves",
        ),
        Some((_, why)) => condition(meta, "ResolvedRefs", false, reason_of(why), why),
    };
    let gateways: Vec<&Object<Gateway>> = resources
        .iter()
        .filter_map(|x| match x {
            Resource::KubernetesGateway(g) => Some(g),
            _ => None,
        })
        .collect();
    let mut parents = Vec::new();
    for p in &r.spec.parent_refs {
        let accepted = if p.is_service() {
            let parent_ns = p.namespace.as_deref().unwrap_or(ns);
            if services.contains_key(&host::resolve(&p.name, parent_ns)) {
                condition(
                    meta,
                    "Accepted",
                    true,
                    "Accepted",
                    "attached to the Service (mesh)",
                )
            } else {
                condition(
                    meta,
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    &format!("Service {parent_ns}/{} not found", p.name),
                )
            }
        } else {
            let Some(g) = gateways.iter().find(|g| names_gateway(p, ns, g)) else {
                // A Gateway weft does not know may be another controller's: no status.
                continue;
            };
            if class_served(resources, &g.spec.gateway_class_name).is_err() {
                continue;
            }
            match attach(resources, g, p, &r.kind, ns, &r.spec.hostnames) {
                Ok(_) => condition(
                    meta,
                    "Accepted",
                    true,
                    "Accepted",
                    "attached to the Gateway",
                ),
                Err((reason, why)) => condition(meta, "Accepted", false, reason, &why),
            }
        };
        parents.push(json!({
            "parentRef": p,
            "controllerName": CONTROLLER,
            "conditions": [accepted, resolved.clone()],
        }));
    }
    json!({"parents": parents})
}

/// The spec's reason a backend message ends with, in parentheses.
fn reason_of(message: &str) -> &str {
    message
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or("BackendNotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().map(|l| l.resource).collect()
    }

    fn find<'a>(resources: &'a [Resource], kind: weft_api::Kind, name: &str) -> &'a Resource {
        resources
            .iter()
            .find(|r| r.kind() == kind && r.name() == name)
            .expect("resource")
    }

    /// `(type, status, reason)` of each condition in `conditions`.
    fn conditions(v: &Value) -> Vec<(String, String, String)> {
        v.as_array()
            .expect("conditions")
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("status"), s("reason"))
            })
            .collect()
    }

    fn has(v: &Value, kind: &str, status: &str, reason: &str) -> bool {
        conditions(v).contains(&(kind.into(), status.into(), reason.into()))
    }

    const YAML: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: infra}
spec: {hosts: [web.infra.svc.cluster.local], ports: [{number: 8080, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}
  - {name: udp, port: 9000, protocol: UDP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: http}, {name: gw, namespace: infra, sectionName: nope}]
  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-host, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  hostnames: [b.other.org]
  rules: [{backendRefs: [{name: missing, port: 8080}]}]
"#;

    #[test]
    fn a_gateways_conditions_say_what_is_served_and_programmed() {
        let resources = load(YAML);
        let gw = find(&resources, weft_api::Kind::KubernetesGateway, "gw");
        let pending = of(&resources, gw, &[]).expect("weft's");
        assert!(
            has(
                &pending["conditions"],
                "Accepted",
                "True",
                "ListenersNotValid"
            ),
            "{pending:#}"
        );
        assert!(
            has(&pending["conditions"], "Programmed", "False", "Pending"),
            "{pending:#}"
        );
        let http = &pending["listeners"][0];
        assert!(
            has(&http["conditions"], "Programmed", "True", "Programmed"),
            "{http:#}"
        );
        assert_eq!(http["attachedRoutes"], 1, "only `ok` attaches: {http:#}");
        let udp = &pending["listeners"][1];
        assert!(
            has(
                &udp["conditions"],
                "Accepted",
                "False",
                "UnsupportedProtocol"
            ),
            "{udp:#}"
        );
        let connected = [ConnectedGateway {
            gateway: ("infra".into(), "gw".into()),
            address: Some("127.0.20.1".into()),
        }];
        let up = of(&resources, gw, &connected).expect("weft's");
        assert!(
            has(&up["conditions"], "Programmed", "True", "Programmed"),
            "{up:#}"
        );
        assert_eq!(up["addresses"][0]["value"], "127.0.20.1");
    }

    #[test]
    fn a_routes_parents_say_why_it_is_not_attached_or_resolved() {
        let resources = load(YAML);
        let parents = |name: &str| {
            of(
                &resources,
                find(&resources, weft_api::Kind::HttpRoute, name),
                &[],
            )
            .expect("status")["parents"]
                .clone()
        };
        let ok = parents("ok");
        assert!(
            has(&ok[0]["conditions"], "Accepted", "True", "Accepted"),
            "{ok:#}"
        );
        assert!(
            has(&ok[0]["conditions"], "ResolvedRefs", "True", "ResolvedRefs"),
            "{ok:#}"
        );
        let elsewhere = parents("elsewhere");
        assert!(
            has(
                &elsewhere[0]["conditions"],
                "Accepted",
                "False",
                "NotAllowedByListeners"
            ),
            "{elsewhere:#}"
        );
        assert!(
            has(
                &elsewhere[1]["conditions"],
                "Accepted",
                "False",
                "NoMatchingParent"
            ),
            "{elsewhere:#}"
        );
        assert!(
            has(
                &elsewhere[0]["conditions"],
                "ResolvedRefs",
                "False",
                "RefNotPermitted"
            ),
            "{elsewhere:#}"
        );
        let wrong = parents("wrong-host");
        assert!(
            has(
                &wrong[0]["conditions"],
                "Accepted",
                "False",
                "NoMatchingListenerHostname"
            ),
            "{wrong:#}"
        );
        assert!(
            has(
                &wrong[0]["conditions"],
                "ResolvedRefs",
                "False",
                "BackendNotFound"
            ),
            "{wrong:#}"
        );
    }
}
