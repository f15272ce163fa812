//! The status the Gateway API asks a controller to write, worked out from the resources
//! in force and the gateway proxies connected: GatewayClass `Accepted`; Gateway
//! `Accepted` and `Programmed` with each listener's `Accepted`, `Programmed`,
//! `ResolvedRefs`, `Conflicted`, supported kinds and attached routes; an HTTPRoute's
//! (and GRPCRoute's, TCPRoute's, TLSRoute's) `Accepted` and `ResolvedRefs` for each parent weft serves (a Gateway of its class, or a
//! Service). Objects of another controller get no status from weft.
//!
//! The control plane computes it when an object is read, so it is always the current
//! one; `lastTransitionTime` here is the object's creation time, which the control plane
//! replaces by when it saw the condition change.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_api::gateway_api::gateway::CONTROLLERS;
use weft_api::gateway_api::{Gateway, HttpRoute};
use weft_api::{Object, ObjectMeta, Resource};

use super::kubernetes::{
    CA_REF_NOT_PERMITTED, CA_REFUSALS, attach, attachments, class_served, listener_states,
    names_gateway,
};
use crate::host;
use crate::route::RetryPolicy;
use crate::service::Service;
use crate::translate::gateway_api::{Backends, all_routes, as_http_route, unresolved_backends};
use crate::translate::scope::ProxyScope;

/// The controller name weft writes in route parent statuses.
pub const CONTROLLER: &str = CONTROLLERS[0];

/// A connected gateway proxy: the Gateway (namespace, name) it serves and its address.
pub struct ConnectedGateway {
    /// Namespace and name of the Gateway.
    pub gateway: (String, String),
    /// The address it listens on, when known.
    pub address: Option<String>,
    /// True when its CA token proved its namespace, so it is sent the Secrets its
    /// Gateway refers to.
    pub reads_secrets: bool,
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
        // A route of any kind: its parents.
        _ => {
            let route = as_http_route(resource)?;
            merged(route.status.as_ref(), http_route(resources, &route))
        }
    }
}

/// A route's status: the `parents` other controllers wrote, kept, then weft's; `None`
/// (the stored status untouched) when weft serves none of its parents.
fn merged(stored: Option<&Value>, ours: Vec<Value>) -> Option<Value> {
    let others: Vec<Value> = stored
        .and_then(|s| s["parents"].as_array())
        .map(|list| {
            list.iter()
                .filter(|p| p["controllerName"].as_str() != Some(CONTROLLER))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if ours.is_empty() {
        return None;
    }
    let mut parents = others;
    parents.extend(ours);
    Some(json!({"parents": parents}))
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
    let id = (meta.namespace().to_string(), meta.name.clone());
    let proxy = connected.iter().find(|c| c.gateway == id);
    // Routes attached to each listener.
    let all = all_routes(resources);
    let refs: Vec<&Object<HttpRoute>> = all.iter().map(|r| r.as_ref()).collect();
    let mut attached: BTreeMap<usize, u32> = BTreeMap::new();
    for (_, listeners) in attachments(resources, g, &refs) {
        for (i, _) in listeners {
            *attached.entry(i).or_default() += 1;
        }
    }
    let mut served = 0;
    let states = listener_states(resources, g);
    let listeners: Vec<Value> = g
        .spec
        .listeners
        .iter()
        .zip(&states)
        .enumerate()
        .map(|(i, (l, state))| {
            let kinds: Vec<Value> = l
                .supported_kinds()
                .into_iter()
                .map(|(group, kind)| json!({"group": group, "kind": kind}))
                .collect();
            let unsupported: Vec<String> = l
                .route_kinds()
                .into_iter()
                .filter(|k| !l.supported_kinds().contains(k))
                .map(|(_, k)| k)
                .collect();
            let c = |kind: &str, ok: bool, reason: &str, message: &str| {
                condition(meta, kind, ok, reason, message)
            };
            // Some of its certificates or CA bundles do not resolve (it is served with the
            // others).
            let partial = match (state, l.protocol.as_str()) {
                (Ok(_), "HTTPS") => super::kubernetes::certificate_problem(resources, g, l)
                    .or_else(|| {
                        super::kubernetes::frontend_validation(resources, g, l)
                            .and_then(|f| f.problem)
                    }),
                _ => None,
            };
            let resolved = match (state, unsupported.is_empty()) {
                (Ok(_), _) if partial.is_some() => {
                    let (reason, why) = partial.clone().unwrap_or_default();
                    c("ResolvedRefs", false, reason, &why)
                }
                (Err((reason @ ("InvalidCertificateRef" | "RefNotPermitted"), why)), _) => {
                    c("ResolvedRefs", false, reason, why)
                }
                (Err((reason, why)), _) if CA_REFUSALS.contains(reason) => {
                    let reason = match *reason {
                        CA_REF_NOT_PERMITTED => "RefNotPermitted",
                        other => other,
                    };
                    c("ResolvedRefs", false, reason, why)
                }
                (_, false) => c(
                    "ResolvedRefs",
                    false,
                    "InvalidRouteKinds",
                    &format!(
                        "{} cannot attach to a {} listener",
                        unsupported.join(", "),
                        l.protocol
                    ),
                ),
                _ => c("ResolvedRefs", true, "ResolvedRefs", "resolved"),
            };
            let conflicted = matches!(state, Err(("ProtocolConflict", _)));
            let mut conditions = match state {
                Err((reason @ "UnsupportedProtocol", why)) => vec![
                    c("Accepted", false, reason, why),
                    c("Programmed", false, "Invalid", why),
                ],
                Err((reason, why)) if CA_REFUSALS.contains(reason) => vec![
                    c("Accepted", false, "NoValidCACertificate", why),
                    c("Programmed", false, "Invalid", why),
                ],
                Err((_, why)) => vec![
                    c("Accepted", true, "Accepted", "accepted"),
                    c("Programmed", false, "Invalid", why),
                ],
                Ok((_, serves)) => {
                    served += 1;
                    let from_secrets = match serves {
                        super::servers::Serves::TerminatedHttp(t) => t
                            .certificates
                            .iter()
                            .flat_map(|c| [&c.certificate, &c.key])
                            .chain(t.ca_certificates.iter())
                            .any(|p| p.path().is_none()),
                        _ => false,
                    };
                    vec![
                        c("Accepted", true, "Accepted", "accepted"),
                        match proxy {
                            Some(p) if from_secrets && !p.reads_secrets => c(
                                "Programmed",
                                false,
                                "Pending",
                                "the gateway proxy serving the Gateway did not prove its namespace with a CA bootstrap token, so it is not sent the Secrets this listener's certificates come from",
                            ),
                            Some(_) => c(
                                "Programmed",
                                true,
                                "Programmed",
                                "served by the gateway proxy",
                            ),
                            None => c(
                                "Programmed",
                                false,
                                "Pending",
                                "no gateway proxy serving the Gateway is connected",
                            ),
                        },
                    ]
                }
            };
            conditions.push(resolved);
            conditions.push(if conflicted {
                c(
                    "Conflicted",
                    true,
                    "ProtocolConflict",
                    "an earlier listener on this port serves another protocol",
                )
            } else {
                c("Conflicted", false, "NoConflicts", "no conflicts")
            });
            json!({
                "name": l.name,
                "supportedKinds": kinds,
                "attachedRoutes": attached.get(&i).copied().unwrap_or(0),
                "conditions": conditions,
            })
        })
        .collect();
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
                "no gateway proxy serving it is connected (weft up starts one within a second; without weft up, run weft proxy --gateway ... --labels gateway.networking.k8s.io/gateway-name={} in namespace {})",
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
    let mut conditions = vec![accepted, programmed];
    // AllowInsecureFallback on a port an HTTPS listener serves: said on the Gateway.
    let frontend = g.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    let insecure = frontend.is_some_and(|f| {
        g.spec.listeners.iter().any(|l| {
            l.protocol == "HTTPS"
                && f.validation_for(i64::from(l.port))
                    .is_some_and(|v| v.insecure_fallback())
        })
    });
    if insecure {
        conditions.push(condition(
            meta,
            "InsecureFrontendValidationMode",
            true,
            "ConfigurationChanged",
            "client certificate validation is AllowInsecureFallback: clients without a certificate are accepted",
        ));
    }
    json!({
        "addresses": addresses,
        "conditions": conditions,
        "listeners": listeners,
    })
}

fn http_route(resources: &[Resource], r: &Object<HttpRoute>) -> Vec<Value> {
    let meta = &r.metadata;
    let ns = meta.namespace();
    // The backends as a gateway proxy in the route's namespace sees them (`exportTo`).
    let scope = ProxyScope {
        namespace: ns.to_string(),
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
    parents
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
  - {name: tcp-on-80, port: 80, protocol: TCP}
  - {name: tcp, port: 5432, protocol: TCP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
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

    /// A TLS Secret (syntactically PEM) `ns/name`, or a malformed one.
    fn secret(ns: &str, name: &str, good: bool) -> String {
        let (cert, key) = match good {
            true => (
                "-----BEGIN CERTIFICATE-----\\nMIIBszCCAVmgAwIBAgIU\\n-----END CERTIFICATE-----\\n",
                "-----BEGIN PRIVATE KEY-----\\nMIGHAgEAMBMGByqGSM49\\n-----END PRIVATE KEY-----\\n",
            ),
            false => ("not a certificate", "not a key"),
        };
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: \"{cert}\", tls.key: \"{key}\"}}\n"
        )
    }

    /// The `ResolvedRefs` (status, reason, message) of each listener of Gateway `gw`.
    fn resolved_refs(resources: &[Resource]) -> Vec<(String, String, String)> {
        let gw = find(resources, weft_api::Kind::KubernetesGateway, "gw");
        let status = of(resources, gw, &[]).expect("weft's");
        status["listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .map(|l| {
                let c = l["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "ResolvedRefs"))
                    .expect("ResolvedRefs");
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (s("status"), s("reason"), s("message"))
            })
            .collect()
    }

    /// Conformance GatewayInvalidFrontendClientCertificateValidation: a listener whose port's
    /// client certificate validation names a missing ConfigMap, another kind, or a
    /// ConfigMap of another namespace without a grant reports ResolvedRefs False
    /// (InvalidCACertificateRef, InvalidCACertificateKind, RefNotPermitted), Accepted False
    /// (NoValidCACertificate) and Programmed False; the valid default leaves its listener
    /// served. With AllowInsecureFallback the Gateway says InsecureFrontendValidationMode.
    #[test]
    fn frontend_client_certificate_validation_refs_resolve_per_listener() {
        let ca =
            "-----BEGIN CERTIFICATE-----\\nMIIBszCCAVmgAwIBAgIU\\n-----END CERTIFICATE-----\\n";
        let listener = |name: &str, port: u16, host: &str| {
            format!(
                "  - {{name: {name}, port: {port}, protocol: HTTPS, hostname: {host}, tls: {{certificateRefs: [{{name: cert}}]}}}}\n"
            )
        };
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: infra}}\nspec:\n  gatewayClassName: weft\n  tls:\n    frontend:\n      default:\n        validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca}}]}}\n      perPort:\n      - {{port: 7443, tls: {{validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: missing}}]}}}}}}\n      - {{port: 8443, tls: {{validation: {{caCertificateRefs: [{{group: '', kind: Service, name: web}}]}}}}}}\n      - {{port: 6443, tls: {{validation: {{caCertificateRefs: [{{group: '', kind: ConfigMap, name: ca, namespace: other}}]}}}}}}\n  listeners:\n{}{}{}{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: infra}}\ndata: {{ca.crt: \"{ca}\"}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ca, namespace: other}}\ndata: {{ca.crt: \"{ca}\"}}\n{}",
            listener("https", 443, "a.example.com"),
            listener("https-unresolved", 7443, "b.example.com"),
            listener("https-invalid-kind", 8443, "c.example.com"),
            listener("https-grant-missing", 6443, "d.example.com"),
            secret("infra", "cert", true),
        );
        let resources = load(&yaml);
        let gw = find(&resources, weft_api::Kind::KubernetesGateway, "gw");
        let status = of(&resources, gw, &[]).expect("weft's");
        let listener = |i: usize| &status["listeners"][i]["conditions"];
        assert!(
            has(listener(0), "ResolvedRefs", "True", "ResolvedRefs"),
            "{status:#}"
        );
        assert!(
            has(listener(0), "Accepted", "True", "Accepted"),
            "{status:#}"
        );
        for (i, reason) in [
            (1, "InvalidCACertificateRef"),
            (2, "InvalidCACertificateKind"),
            (3, "RefNotPermitted"),
        ] {
            assert!(
                has(listener(i), "ResolvedRefs", "False", reason),
                "{i}: {status:#}"
            );
            assert!(
                has(listener(i), "Accepted", "False", "NoValidCACertificate"),
                "{i}: {status:#}"
            );
            assert!(
                has(listener(i), "Programmed", "False", "Invalid"),
                "{i}: {status:#}"
            );
        }
        assert!(
            !conditions(&status["conditions"])
                .iter()
                .any(|(t, _, _)| t == "InsecureFrontendValidationMode"),
            "{status:#}"
        );
        // One reference resolving, one not: served with the one, ResolvedRefs False.
        let mixed = load(&yaml.replace(
            "validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}",
            "validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}, {group: '', kind: ConfigMap, name: gone}]}",
        ));
        let mixed_status = of(
            &mixed,
            find(&mixed, weft_api::Kind::KubernetesGateway, "gw"),
            &[],
        )
        .expect("weft's");
        let first = &mixed_status["listeners"][0]["conditions"];
        assert!(
            has(first, "ResolvedRefs", "False", "InvalidCACertificateRef"),
            "{mixed_status:#}"
        );
        assert!(
            has(first, "Accepted", "True", "Accepted"),
            "{mixed_status:#}"
        );
        // The served listener asks for a client certificate and verifies it by the bundle.
        let Resource::KubernetesGateway(g) = gw else {
            unreachable!()
        };
        let Ok((_, crate::gateway::servers::Serves::TerminatedHttp(t))) =
            &listener_states(&resources, g)[0]
        else {
            panic!("the default listener is served");
        };
        assert_eq!(
            t.clients,
            crate::gateway::servers::ClientCertificates::Required
        );
        assert_eq!(
            t.ca_certificates.as_ref().map(|p| p.origin()),
            Some("ConfigMap infra/ca[ca.crt]".to_string())
        );
        // AllowInsecureFallback: asked for, optional, and said on the Gateway.
        let insecure = load(&yaml.replace(
            "validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}",
            "validation: {mode: AllowInsecureFallback, caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}",
        ));
        let gw = find(&insecure, weft_api::Kind::KubernetesGateway, "gw");
        let status = of(&insecure, gw, &[]).expect("weft's");
        assert!(
            has(
                &status["conditions"],
                "InsecureFrontendValidationMode",
                "True",
                "ConfigurationChanged"
            ),
            "{status:#}"
        );
    }

    /// Conformance GatewayInvalidTLSConfiguration, GatewaySecretReferenceGrantAllInNamespace,
    /// GatewaySecretReferenceGrantSpecific, GatewaySecretMissingReferenceGrant and
    /// GatewaySecretInvalidReferenceGrant: an HTTPS listener's certificateRefs resolve to a
    /// Secret of its namespace, or of another where a ReferenceGrant there allows it;
    /// else ResolvedRefs is False with InvalidCertificateRef (missing, malformed, not a
    /// Secret) or RefNotPermitted (no grant, or a grant for something else).
    #[test]
    fn listener_certificate_refs_resolve_as_the_spec_says() {
        let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: weft\n  listeners:\n  - {name: own, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: cert}]}}\n  - {name: missing, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: nope}]}}\n  - {name: malformed, port: 443, protocol: HTTPS, hostname: c.example.com, tls: {certificateRefs: [{name: bad}]}}\n  - {name: configmap, port: 443, protocol: HTTPS, hostname: d.example.com, tls: {certificateRefs: [{kind: ConfigMap, name: cert}]}}\n  - {name: elsewhere, port: 443, protocol: HTTPS, hostname: e.example.com, tls: {certificateRefs: [{name: shared-cert, namespace: certs}]}}\n";
        let base = format!(
            "{gateway}{}{}{}",
            secret("infra", "cert", true),
            secret("infra", "bad", false),
            secret("certs", "shared-cert", true)
        );
        let grant = |to: &str, from_ns: &str| {
            format!(
                "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: certs}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: {from_ns}}}]\n  to: [{to}]\n"
            )
        };
        let refs = resolved_refs(&load(&base));
        let short: Vec<(&str, &str)> = refs
            .iter()
            .map(|(s, r, _)| (s.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            short,
            [
                ("True", "ResolvedRefs"),
                ("False", "InvalidCertificateRef"),
                ("False", "InvalidCertificateRef"),
                ("False", "InvalidCertificateRef"),
                ("False", "RefNotPermitted"),
            ],
            "{refs:#?}"
        );
        assert_eq!(refs[1].2, "Secret infra/nope does not exist");
        assert_eq!(
            refs[2].2,
            "Secret infra/bad: tls.crt holds no PEM CERTIFICATE"
        );
        assert_eq!(
            refs[3].2,
            "certificateRefs name a ConfigMap; weft reads core Secrets"
        );
        // A good and a bad reference: served with the good one, ResolvedRefs False.
        let mixed = load(&base.replace(
            "certificateRefs: [{name: cert}]}}",
            "certificateRefs: [{name: cert}, {name: nope}]}}",
        ));
        let refs = resolved_refs(&mixed);
        assert_eq!(refs[0].1, "InvalidCertificateRef", "{refs:#?}");
        assert_eq!(refs[0].2, "Secret infra/nope does not exist");
        let mixed_gw = match find(&mixed, weft_api::Kind::KubernetesGateway, "gw") {
            Resource::KubernetesGateway(g) => g,
            _ => unreachable!(),
        };
        let Ok((_, crate::gateway::servers::Serves::TerminatedHttp(t))) =
            &listener_states(&mixed, mixed_gw)[0]
        else {
            panic!("served with the good certificate");
        };
        assert_eq!(t.certificates.len(), 1);
        // Every Secret of the namespace, and the one named.
        for to in [
            "{group: '', kind: Secret}",
            "{group: '', kind: Secret, name: shared-cert}",
        ] {
            let refs = resolved_refs(&load(&format!("{base}{}", grant(to, "infra"))));
            assert_eq!(refs[4].1, "ResolvedRefs", "{to}: {refs:#?}");
        }
        // A grant for another Secret, another kind or another namespace's Gateways.
        for (to, from) in [
            ("{group: '', kind: Secret, name: other}", "infra"),
            ("{group: '', kind: Service}", "infra"),
            ("{group: '', kind: Secret}", "shop"),
        ] {
            let refs = resolved_refs(&load(&format!("{base}{}", grant(to, from))));
            assert_eq!(refs[4].1, "RefNotPermitted", "{to} from {from}: {refs:#?}");
        }
        // The listener that does not resolve is not served; the good one is.
        let resources = load(&base);
        let gw = match find(&resources, weft_api::Kind::KubernetesGateway, "gw") {
            Resource::KubernetesGateway(g) => g,
            _ => unreachable!(),
        };
        let states = listener_states(&resources, gw);
        assert!(states[0].is_ok() && states[1..].iter().all(Result::is_err));
        // Served from a Secret: Programmed only once the connected proxy may read it.
        let programmed = |reads_secrets: bool| {
            let connected = [ConnectedGateway {
                gateway: ("infra".into(), "gw".into()),
                address: None,
                reads_secrets,
            }];
            let status = of(
                &resources,
                find(&resources, weft_api::Kind::KubernetesGateway, "gw"),
                &connected,
            )
            .expect("weft's");
            conditions(&status["listeners"][0]["conditions"])
                .into_iter()
                .find(|(t, _, _)| t == "Programmed")
                .expect("Programmed")
        };
        assert_eq!(programmed(true).1, "True");
        assert_eq!(
            (programmed(false).1.as_str(), programmed(false).2.as_str()),
            ("False", "Pending"),
            "a proxy without a proven namespace gets no Secret"
        );
    }

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
            has(&http["conditions"], "Programmed", "False", "Pending"),
            "no proxy connected: {http:#}"
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
        let clash = &pending["listeners"][2];
        assert!(
            has(
                &clash["conditions"],
                "Conflicted",
                "True",
                "ProtocolConflict"
            ),
            "{clash:#}"
        );
        assert!(
            has(&clash["conditions"], "Programmed", "False", "Invalid"),
            "{clash:#}"
        );
        let kinds = &pending["listeners"][3];
        assert!(
            has(
                &kinds["conditions"],
                "ResolvedRefs",
                "False",
                "InvalidRouteKinds"
            ),
            "{kinds:#}"
        );
        assert_eq!(kinds["supportedKinds"], serde_json::json!([]), "{kinds:#}");
        let connected = [ConnectedGateway {
            gateway: ("infra".into(), "gw".into()),
            address: Some("127.0.20.1".into()),
            reads_secrets: false,
        }];
        let up = of(&resources, gw, &connected).expect("weft's");
        assert!(
            has(&up["conditions"], "Programmed", "True", "Programmed"),
            "{up:#}"
        );
        assert_eq!(up["addresses"][0]["value"], "127.0.20.1");
        assert!(
            has(
                &up["listeners"][0]["conditions"],
                "Programmed",
                "True",
                "Programmed"
            ),
            "{up:#}"
        );
    }

    #[test]
    fn other_controllers_route_parents_are_kept() {
        let resources = load(&format!(
            "{YAML}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: shared, namespace: infra}}\nspec:\n  parentRefs: [{{name: gw}}]\nstatus:\n  parents:\n  - {{controllerName: example.com/other, parentRef: {{name: theirs}}, conditions: []}}\n  - {{controllerName: weft.dev/gateway-controller, parentRef: {{name: stale}}, conditions: []}}\n"
        ));
        let r = find(&resources, weft_api::Kind::HttpRoute, "shared");
        let parents = of(&resources, r, &[]).expect("status")["parents"].clone();
        let names: Vec<&str> = parents
            .as_array()
            .expect("parents")
            .iter()
            .filter_map(|p| p["parentRef"]["name"].as_str())
            .collect();
        assert_eq!(names, ["theirs", "gw"], "{parents:#}");
    }

    /// Conformance TCPRouteSimple/TLSRouteSimpleSameNamespace (status), TLSRouteInvalidReferenceGrant,
    /// and a TCPRoute on a listener that takes only TLSRoutes: the L4 routes' parents get the
    /// same conditions as an HTTPRoute's.
    #[test]
    fn tcp_and_tls_routes_parents_say_whether_they_attach_and_resolve() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: infra}
spec: {hosts: [db.infra.svc.cluster.local], ports: [{number: 5432, name: tcp, protocol: TCP}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: weft
  listeners:
  - {name: tcp, port: 5432, protocol: TCP}
  - {name: tls, port: 443, protocol: TLS, hostname: "*.example.com", tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tcp}, {name: gw, sectionName: tls}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: web, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: [web.example.com]
  rules: [{backendRefs: [{name: db, port: 5432}, {name: web, namespace: other, port: 443}]}]
"#;
        let resources = load(yaml);
        let parents = |kind, name: &str| {
            of(&resources, find(&resources, kind, name), &[]).expect("status")["parents"].clone()
        };
        let tcp = parents(weft_api::Kind::TcpRoute, "db");
        assert!(
            has(&tcp[0]["conditions"], "Accepted", "True", "Accepted"),
            "{tcp:#}"
        );
        assert!(
            has(
                &tcp[0]["conditions"],
                "ResolvedRefs",
                "True",
                "ResolvedRefs"
            ),
            "{tcp:#}"
        );
        assert!(
            has(
                &tcp[1]["conditions"],
                "Accepted",
                "False",
                "NotAllowedByListeners"
            ),
            "a TLS listener takes TLSRoutes only: {tcp:#}"
        );
        let tls = parents(weft_api::Kind::TlsRoute, "web");
        assert!(
            has(&tls[0]["conditions"], "Accepted", "True", "Accepted"),
            "{tls:#}"
        );
        assert!(
            has(
                &tls[0]["conditions"],
                "ResolvedRefs",
                "False",
                "RefNotPermitted"
            ),
            "a backend in another namespace without a grant: {tls:#}"
        );
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
