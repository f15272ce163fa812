//! IST0140 IngressRouteRulesNotAffected: a gateway-bound VirtualService routes HTTP to a
//! host without a subset while another VirtualService for that host splits it by subsets.
//! The gateway applies only its own VirtualService, so the subset rules (a canary split,
//! say) do not shape traffic entering through the gateway.

use std::collections::BTreeSet;

use weft_api::Resource;
use weft_api::networking::virtual_service::MESH_GATEWAY;

use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    // Hosts that some VirtualService for that very host routes to by subset, with its name.
    let mut split: Vec<(String, String)> = Vec::new();
    for r in ctx.resources {
        let Resource::VirtualService(v) = &r.resource else {
            continue;
        };
        let ns = v.metadata.namespace();
        let own: BTreeSet<String> = v.spec.hosts.iter().map(|h| host::resolve(h, ns)).collect();
        for d in v.spec.http.iter().flat_map(|h| &h.route) {
            let target = host::resolve(&d.destination.host, ns);
            if d.destination.subset.is_some() && own.contains(&target) {
                split.push((target, format!("{ns}/{}", v.metadata.name)));
            }
        }
    }
    for r in ctx.resources {
        let Resource::VirtualService(v) = &r.resource else {
            continue;
        };
        if !v.spec.gateways.iter().any(|g| g != MESH_GATEWAY) {
            continue;
        }
        let ns = v.metadata.namespace();
        let name = format!("{ns}/{}", v.metadata.name);
        for (i, rule) in v.spec.http.iter().enumerate() {
            for (j, d) in rule.route.iter().enumerate() {
                if d.destination.subset.is_some() {
                    continue;
                }
                let target = host::resolve(&d.destination.host, ns);
                let others: BTreeSet<&str> = split
                    .iter()
                    .filter(|(h, _)| *h == target)
                    .map(|(_, vs)| vs.as_str())
                    .collect();
                for other in others {
                    out.push(finding(
                        codes::INGRESS_ROUTE_RULES_NOT_AFFECTED,
                        format!(
                            "Subset in virtual service {other} has no effect on ingress gateway {name} requests"
                        ),
                        vec![involved(
                            r,
                            &format!("spec.http[{i}].route[{j}].destination.host"),
                        )],
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    const INGRESS: &str = "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [ingress]
  http:
  - route: [{destination: DEST}]
";

    const CANARY: &str = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
";

    #[test]
    fn a_gateway_route_that_bypasses_a_subset_split_is_reported() {
        let f = run(&format!(
            "{SERVICE}{CANARY}{}",
            INGRESS.replace(
                "DEST",
                "{host: reviews.default.svc.cluster.local, port: {number: 80}}"
            )
        ));
        assert_eq!(codes_of(&f), vec!["IST0140"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Subset in virtual service default/reviews has no effect on ingress gateway default/shop requests"
        );
    }

    #[test]
    fn a_gateway_route_by_subset_or_without_a_split_is_clean() {
        let with_subset =
            INGRESS.replace("DEST", "{host: reviews, subset: v1, port: {number: 80}}");
        assert_eq!(run(&format!("{SERVICE}{CANARY}{with_subset}")), vec![]);
        let plain = INGRESS.replace("DEST", "{host: reviews, port: {number: 80}}");
        assert_eq!(run(&format!("{SERVICE}{plain}")), vec![]);
    }
}
