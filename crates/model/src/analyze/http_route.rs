//! Gateway API mistakes in the mesh (GAMMA): IST0101 ReferencedResourceNotFound for an
//! HTTPRoute whose parent Service no ServiceEntry or Service declares (the route attaches
//! to nothing) and for a backendRef Service that does not exist (its share of requests
//! gets 500) or sits in another namespace (weft reads no ReferenceGrant yet: 500 too), and
//! WEFT0003 HTTPRouteOverridesVirtualService for a mesh VirtualService whose host an
//! HTTPRoute also routes (on sidecars the route wins; the VirtualService's `http` rules
//! are not used for that Service).

use weft_api::Resource;
use weft_api::gateway_api::http_route::HttpRoute;

use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut attached: Vec<(String, &weft_api::load::LocatedResource)> = Vec::new();
    for r in ctx.resources {
        let Resource::HttpRoute(route) = &r.resource else {
            continue;
        };
        let ns = route.metadata.namespace();
        for (i, p) in route.spec.parent_refs.iter().enumerate() {
            if !p.is_service() {
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
        backends(ctx, r, &route.spec, ns, out);
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

fn backends(
    ctx: &Context<'_>,
    r: &weft_api::load::LocatedResource,
    spec: &HttpRoute,
    ns: &str,
    out: &mut Vec<Finding>,
) {
    for (i, rule) in spec.rules.iter().enumerate() {
        for (j, b) in rule.backend_refs.iter().enumerate() {
            if !b.is_service() {
                continue;
            }
            let path = format!("spec.rules[{i}].backendRefs[{j}]");
            let backend_ns = b.namespace.as_deref().unwrap_or(ns);
            if backend_ns != ns {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced backend not permitted: Service \"{backend_ns}/{}\" is in another namespace, and weft reads no ReferenceGrant yet (its share of requests gets 500)",
                        b.name
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
}
