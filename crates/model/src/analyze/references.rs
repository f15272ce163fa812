//! IST0101 ReferencedResourceNotFound on every reference weft can check: a
//! VirtualService's gateways, destination hosts (ServiceEntries' and Kubernetes Services':
//! short names resolve in the VirtualService's namespace, other names are taken as written),
//! ports and subsets (honouring `exportTo`), and a Sidecar's egress hosts; and IST0112
//! VirtualServiceDestinationPortSelectorRequired for gateway routes to multi-port services.

use std::collections::BTreeSet;

use weft_api::load::LocatedResource;
use weft_api::networking::Destination;
use weft_api::networking::virtual_service::{MESH_GATEWAY, VirtualService};
use weft_api::{Object, Resource};

use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let gateways: BTreeSet<(String, String)> = ctx
        .resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Gateway(g) => {
                Some((g.metadata.namespace().to_string(), g.metadata.name.clone()))
            }
            _ => None,
        })
        .collect();
    for r in ctx.resources {
        match &r.resource {
            Resource::VirtualService(v) => {
                destinations(ctx, r, v, out);
                for (i, g) in v.spec.gateways.iter().enumerate() {
                    let reference =
                        crate::translate::scope::gateway_reference(g, v.metadata.namespace());
                    if g != MESH_GATEWAY && !gateways.contains(&reference) {
                        out.push(finding(
                            codes::REFERENCED_RESOURCE_NOT_FOUND,
                            format!(
                                "Referenced gateway not found: \"{}/{}\" (no gateway proxy serves this VirtualService through it)",
                                reference.0, reference.1
                            ),
                            vec![involved(r, &format!("spec.gateways[{i}]"))],
                        ));
                    }
                }
            }
            Resource::Sidecar(s) => {
                let ns = s.metadata.namespace();
                for (i, listener) in s.spec.egress.iter().enumerate() {
                    for (j, h) in listener.hosts.iter().enumerate() {
                        let Some((scope, name)) = h.split_once('/') else {
                            continue;
                        };
                        let scope = match scope {
                            "." => Some(ns),
                            "*" | "~" => None,
                            other => Some(other),
                        };
                        if h.starts_with('~') || name == "*" {
                            continue;
                        }
                        let pattern = name.to_ascii_lowercase();
                        if !ctx.registry.overlaps(&pattern, scope) {
                            out.push(finding(
                                codes::REFERENCED_RESOURCE_NOT_FOUND,
                                format!(
                                    "Referenced egress host not found: \"{h}\" (no ServiceEntry there declares it; the sidecar imports nothing for it)"
                                ),
                                vec![involved(r, &format!("spec.egress[{i}].hosts[{j}]"))],
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn destinations(
    ctx: &Context<'_>,
    r: &LocatedResource,
    v: &Object<VirtualService>,
    out: &mut Vec<Finding>,
) {
    let ns = v.metadata.namespace();
    let through_gateway = v.spec.gateways.iter().any(|g| g != MESH_GATEWAY);
    let mut check = |d: &Destination, path: String| {
        let hostname = host::resolve(&d.host, ns);
        let services: Vec<_> = ctx.registry.services(&hostname, ns).collect();
        if services.is_empty() {
            let why = if ctx.registry.declared_anywhere(&hostname) {
                "its ServiceEntry or Service is not exported to this namespace"
            } else {
                "no ServiceEntry or Service declares it"
            };
            out.push(finding(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                format!(
                    "Referenced host not found: \"{hostname}\" ({why}; requests would fail with 503 NC)"
                ),
                vec![involved(r, &format!("{path}.host"))],
            ));
            return;
        }
        if let Some(subset) = &d.subset {
            if !ctx.registry.has_subset(&hostname, subset, ns) {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced host+subset in destinationrule not found: \"{hostname}+{subset}\" (requests would fail with 503 NC)"
                    ),
                    vec![involved(r, &format!("{path}.subset"))],
                ));
            }
        }
        let ports = &services[0].ports;
        if let Some(port) = d.port.as_ref().map(|p| p.number) {
            if !ports.is_empty() && !services.iter().any(|s| s.ports.contains(&port)) {
                out.push(finding(
                    codes::REFERENCED_RESOURCE_NOT_FOUND,
                    format!(
                        "Referenced host:port not found: \"{hostname}:{port}\" (the service has ports {ports:?}; requests would fail with 503 NC)"
                    ),
                    vec![involved(r, &format!("{path}.port"))],
                ));
            }
        }
        if through_gateway && d.port.is_none() && ports.len() > 1 {
            out.push(finding(
                codes::VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                format!(
                    "This VirtualService routes to a service \"{hostname}\" that exposes multiple ports {ports:?}. Specifying a port in the destination is required to disambiguate."
                ),
                vec![involved(r, &path)],
            ));
        }
    };
    for (i, rule) in v.spec.http.iter().enumerate() {
        for (j, d) in rule.route.iter().enumerate() {
            check(
                &d.destination,
                format!("spec.http[{i}].route[{j}].destination"),
            );
        }
        if let Some(m) = &rule.mirror {
            check(m, format!("spec.http[{i}].mirror"));
        }
        for (j, m) in rule.mirrors.iter().enumerate() {
            check(
                &m.destination,
                format!("spec.http[{i}].mirrors[{j}].destination"),
            );
        }
    }
    for (kind, routes) in [
        (
            "tcp",
            v.spec.tcp.iter().map(|t| &t.route).collect::<Vec<_>>(),
        ),
        ("tls", v.spec.tls.iter().map(|t| &t.route).collect()),
    ] {
        for (i, route) in routes.iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                check(
                    &d.destination,
                    format!("spec.{kind}[{i}].route[{j}].destination"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    #[test]
    fn a_missing_destination_host_and_subset_are_reported() {
        let f = run(&format!(
            "{SERVICE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [reviews]
  http:
  - match: [{{uri: {{prefix: /a}}}}]
    route: [{{destination: {{host: ratings}}}}]
  - route: [{{destination: {{host: reviews, subset: v9}}}}]
"
        ));
        let msgs: Vec<_> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("Referenced host not found: \"ratings.default")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("\"reviews.default.svc.cluster.local+v9\"")),
            "{msgs:?}"
        );
        let ok = run(&format!(
            "{SERVICE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
"
        ));
        assert!(!codes_of(&ok).contains(&"IST0101"), "{ok:?}");
    }

    #[test]
    fn a_host_not_exported_to_the_namespace_is_not_found() {
        let yaml = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: other}
spec:
  hosts: [api.example.com]
  exportTo: [EXPORT]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [api.example.com]
  http:
  - route: [{destination: {host: api.example.com}}]
";
        let hidden = run(&yaml.replace("EXPORT", "."));
        assert!(
            hidden
                .iter()
                .any(|f| f.code == "IST0101" && f.message.contains("not exported")),
            "{hidden:?}"
        );
        let shown = run(&yaml.replace("EXPORT", "default"));
        assert!(!codes_of(&shown).contains(&"IST0101"), "{shown:?}");
    }

    #[test]
    fn kubernetes_services_are_destination_hosts_with_their_ports() {
        let yaml = "---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: NS}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  http:
  - route: [{destination: {host: HOST, port: {number: PORT}}}]
";
        let case = |ns: &str, host: &str, port: &str| {
            run(&yaml
                .replace("NS", ns)
                .replace("HOST", host)
                .replace("PORT", port))
        };
        for (ns, host) in [
            ("shop", "ratings"),
            ("other", "ratings.shop.svc.cluster.local"),
        ] {
            let f = case(ns, host, "9080");
            assert!(!codes_of(&f).contains(&"IST0101"), "{ns} {host}: {f:?}");
        }
        // A short name resolves in the VirtualService's namespace; `name.namespace` is taken
        // as written, as Istio takes it.
        for (ns, host) in [("other", "ratings"), ("shop", "ratings.shop")] {
            let f = case(ns, host, "9080");
            assert!(
                f.iter()
                    .any(|f| f.code == "IST0101"
                        && f.message.starts_with("Referenced host not found")),
                "{ns} {host}: {f:?}"
            );
        }
        let f = case("shop", "ratings", "9999");
        let found = f.iter().find(|f| f.code == "IST0101").expect("IST0101");
        assert!(
            found.message.starts_with(
                "Referenced host:port not found: \"ratings.shop.svc.cluster.local:9999\""
            ),
            "{f:?}"
        );
    }

    #[test]
    fn a_missing_gateway_is_reported() {
        let vs = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [shop.example.com]
  gateways: [ingress]
  http:
  - route: [{destination: {host: reviews, port: {number: 80}}}]
";
        let f = run(&format!("{SERVICE}{vs}"));
        assert!(
            f.iter().any(|f| f
                .message
                .starts_with("Referenced gateway not found: \"default/ingress\"")),
            "{f:?}"
        );
        let gw = "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
";
        let ok = run(&format!("{SERVICE}{vs}{gw}"));
        assert!(!codes_of(&ok).contains(&"IST0101"), "{ok:?}");
    }

    #[test]
    fn a_sidecar_egress_host_nobody_declares_is_reported() {
        let sc = "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: [HOST]}]
";
        let f = run(&format!(
            "{SERVICE}{}",
            sc.replace("HOST", "./ghost.example.com")
        ));
        assert!(
            f.iter()
                .any(|f| f.code == "IST0101" && f.message.contains("egress host")),
            "{f:?}"
        );
        let ok = run(&format!(
            "{SERVICE}{}",
            sc.replace("HOST", "./reviews.default.svc.cluster.local")
        ));
        assert!(!codes_of(&ok).contains(&"IST0101"), "{ok:?}");
    }

    #[test]
    fn a_gateway_route_to_a_multi_port_service_needs_a_port() {
        let yaml = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [shop.example.com]
  gateways: [ingress]
  http:
  - route: [{destination: DEST}]
";
        let f = run(&yaml.replace("DEST", "{host: api.example.com}"));
        assert!(codes_of(&f).contains(&"IST0112"), "{f:?}");
        let ok = run(&yaml.replace("DEST", "{host: api.example.com, port: {number: 80}}"));
        assert!(!codes_of(&ok).contains(&"IST0112"), "{ok:?}");
    }
}
