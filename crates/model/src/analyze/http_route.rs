//! Gateway API mistakes: IST0101 ReferencedResourceNotFound for an HTTPRoute whose parent
//! Service no ServiceEntry or Service declares, or whose parent Gateway does not exist
//! (the route attaches to nothing), and for a backendRef Service that does not exist (its
//! share of requests gets 500) or sits in another namespace without a ReferenceGrant
//! there allowing it (500 too); WEFT0004 HTTPRouteNotAccepted for a route a Gateway of
//! weft's does not accept (allowedRoutes, sectionName or port, hostnames); and WEFT0003
//! HTTPRouteOverridesVirtualService for a mesh VirtualService whose host an HTTPRoute also
//! routes (on sidecars the route wins; the VirtualService's `http` rules are not used for
//! that Service).

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::gateway_api::http_route::HttpRoute;

use super::{Context, Finding, codes, finding, involved};
use crate::gateway::kubernetes::{attach, class_served, names_gateway};
use crate::host;
use crate::route::RetryPolicy;
use crate::translate::gateway_api::{Backends, as_http_route};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut attached: Vec<(String, &weft_api::load::LocatedResource)> = Vec::new();
    let plain: Vec<Resource> = ctx.resources.iter().map(|r| r.resource.clone()).collect();
    for r in ctx.resources {
        let Some(route) = as_http_route(&r.resource) else {
            continue;
        };
        let route = &*route;
        let ns = route.metadata.namespace();
        for (i, p) in route.spec.parent_refs.iter().enumerate() {
            if !p.is_service() {
                gateway_parent(&plain, r, route, i, out);
                continue;
            }
            let parent_ns = p.namespace.as_deref().unwrap_or(ns);
            let hostname = host::resolve(&p.name, parent_ns);
            if ctx.registry.declared_anywhere(&hostname) {
                attached.push((hostname, r));
            } else {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced parent not found: Service \"{parent_ns}/{}\" (no Service or ServiceEntry declares {hostname}; the HTTPRoute routes nothing)",
                        p.name
                    ),
                    vec![involved(r, &format!("spec.parentRefs[{i}].name"))],
                ));
            }
        }
        backends(ctx, &plain, r, route, out);
    }
    for r in ctx.resources {
        let Resource::VirtualService(v) = &r.resource else {
            continue;
        };
        if !v.spec.binds_to_mesh() || v.spec.http.is_empty() {
            continue;
        }
        let vs_ns = v.metadata.namespace();
        for (i, h) in v.spec.hosts.iter().enumerate() {
            let hostname = host::resolve(h, vs_ns);
            for (routed, route) in attached.iter().filter(|(a, _)| *a == hostname) {
                out.push(finding(
                    codes::HTTP_ROUTE_OVERRIDES_VIRTUAL_SERVICE,
                    format!(
                        "{} also routes {routed}: on sidecars the HTTPRoute decides, and this VirtualService's http rules are not used for it",
                        route.reference()
                    ),
                    vec![involved(r, &format!("spec.hosts[{i}]")), involved(route, "spec.parentRefs")],
                ));
            }
        }
    }
}

/// Findings for parent `i` of `route`, a Gateway.
fn gateway_parent(
    plain: &[Resource],
    r: &weft_api::load::LocatedResource,
    route: &weft_api::Object<HttpRoute>,
    i: usize,
    out: &mut Vec<Finding>,
) {
    let ns = route.metadata.namespace();
    let p = &route.spec.parent_refs[i];
    let gateway = plain.iter().find_map(|x| match x {
        Resource::KubernetesGateway(g) if names_gateway(p, ns, g) => Some(g),
        _ => None,
    });
    let Some(g) = gateway else {
        out.push(finding(
            codes::REFERENCED_RESOURCE_NOT_FOUND,
            format!(
                "Referenced parent not found: Gateway \"{}/{}\" (the {} attaches to nothing)",
                p.namespace.as_deref().unwrap_or(ns),
                p.name,
                route.kind
            ),
            vec![involved(r, &format!("spec.parentRefs[{i}].name"))],
        ));
        return;
    };
    if class_served(plain, &g.spec.gateway_class_name).is_err() {
        return;
    }
    if let Err((reason, why)) = attach(plain, g, p, &route.kind, ns, &route.spec.hostnames) {
        out.push(finding(
            codes::HTTP_ROUTE_NOT_ACCEPTED,
            format!(
                "Gateway {}/{} does not accept the route ({reason}): {why}",
                g.metadata.namespace(),
                g.metadata.name
            ),
            vec![involved(r, &format!("spec.parentRefs[{i}]"))],
        ));
    }
}

fn backends(
    ctx: &Context<'_>,
    plain: &[Resource],
    r: &weft_api::load::LocatedResource,
    route: &weft_api::Object<HttpRoute>,
    out: &mut Vec<Finding>,
) {
    let (spec, ns) = (&route.spec, route.metadata.namespace());
    // Only the ReferenceGrants are asked; services come from the registry below.
    let (no_services, retry) = (BTreeMap::new(), RetryPolicy::istio_default());
    let grants = Backends::new(plain, &no_services, &retry);
    for (i, rule) in spec.rules.iter().enumerate() {
        for (j, b) in rule.backend_refs.iter().enumerate() {
            if !b.is_service() {
                continue;
            }
            let path = format!("spec.rules[{i}].backendRefs[{j}]");
            let backend_ns = b.namespace.as_deref().unwrap_or(ns);
            let granted = grants.permitted((&route.kind, ns), backend_ns, &b.name);
            if backend_ns != ns && !granted {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced backend not permitted: Service \"{backend_ns}/{}\" is in another namespace, and no ReferenceGrant in {backend_ns} allows {}s from {ns} (its share of requests gets 500)",
                        b.name, route.kind
                    ),
                    vec![involved(r, &format!("{path}.namespace"))],
                ));
                continue;
            }
            let hostname = host::resolve(&b.name, backend_ns);
            let services: Vec<_> = ctx.registry.services(&hostname, ns).collect();
            let port = b.port.unwrap_or(0);
            let why = if services.is_empty() {
                Some(format!("no Service or ServiceEntry declares {hostname}"))
            } else if !services
                .iter()
                .any(|s| s.ports.is_empty() || s.ports.contains(&port))
            {
                Some(format!("{hostname} has no port {port}"))
            } else {
                None
            };
            if let Some(why) = why {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced backend not found: Service \"{backend_ns}/{}\" ({why}; its share of requests gets 500)",
                        b.name
                    ),
                    vec![involved(r, &format!("{path}.name"))],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::tests::run;

    #[test]
    fn http_route_references_and_overlaps_are_reported() {
        let found = run(r#"apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: default}
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 8080}
  - {group: "", kind: Service, name: ghost}
  rules:
  - backendRefs:
    - {name: echo, port: 8080}
    - {name: echo, port: 9090}
    - {name: missing, port: 8080}
    - {name: echo, namespace: other, port: 8080}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - route: [{destination: {host: echo}}]
"#);
        for (code, says) in [
            (
                "IST0101",
                "Referenced parent not found: Service \"default/ghost\"",
            ),
            ("IST0101", "echo.default.svc.cluster.local has no port 9090"),
            (
                "IST0101",
                "Referenced backend not found: Service \"default/missing\"",
            ),
            (
                "IST0101",
                "Referenced backend not permitted: Service \"other/echo\"",
            ),
            (
                "WEFT0003",
                "HTTPRoute default/split also routes echo.default.svc.cluster.local",
            ),
        ] {
            assert!(
                found
                    .iter()
                    .any(|f| f.code == code && f.message.contains(says)),
                "{code} {says:?} not in {found:#?}"
            );
        }
        let ours = found
            .iter()
            .filter(|f| {
                f.message.contains("HTTPRoute")
                    || f.message.contains("Referenced parent")
                    || f.message.contains("Referenced backend")
            })
            .count();
        assert_eq!(ours, 5, "{found:#?}");
    }

    #[test]
    fn gateway_parents_and_reference_grants_are_checked() {
        let found = run(r#"apiVersion: v1
kind: Service
metadata: {name: shop, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: weft
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: infra-routes, namespace: shop}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: granted, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: shop, namespace: shop, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: from-shop, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: infra}, {name: nowhere}]
  rules: [{backendRefs: [{name: shop, port: 8080}]}]
"#);
        let has = |code: &str, says: &str| {
            found
                .iter()
                .any(|f| f.code == code && f.message.contains(says))
        };
        assert!(
            has(
                "WEFT0004",
                "Gateway infra/gw does not accept the route (NotAllowedByListeners)"
            ),
            "{found:#?}"
        );
        assert!(
            has(
                "IST0101",
                "Referenced parent not found: Gateway \"shop/nowhere\""
            ),
            "{found:#?}"
        );
        assert!(
            !found.iter().any(|f| f.message.contains("not permitted")),
            "the grant allows infra's route: {found:#?}"
        );
    }
}
