//! IST0149 JwtClaimBasedRoutingWithoutRequestAuthN: a VirtualService bound to a gateway
//! routes on a JWT claim (`@request.auth.claims.…` header keys) but no RequestAuthentication
//! (in `istio-system` or the pod's namespace) applies to a pod of that gateway, so no token
//! is verified there and the claims never hold a value. The gateway pods are the Pods and
//! Deployments the Gateway's selector selects.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::networking::virtual_service::VirtualService;

use super::workloads::{selects, workloads};
use super::{Context, Finding, codes, finding, involved};

const CLAIM_PREFIX: &str = "@request.auth.claims";
const ROOT_NAMESPACE: &str = "istio-system";

/// The first header key routing on a claim, as Istio picks it.
fn claim_key(vs: &VirtualService) -> Option<&str> {
    vs.http.iter().flat_map(|h| &h.matches).find_map(|m| {
        m.headers
            .keys()
            .chain(m.without_headers.keys())
            .find(|k| k.starts_with(CLAIM_PREFIX))
            .map(String::as_str)
    })
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let pods = workloads(ctx.resources);
    let request_authns: Vec<(&str, BTreeMap<String, String>)> = ctx
        .resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::RequestAuthentication(ra) => Some((
                r.resource.namespace(),
                ra.spec
                    .selector
                    .as_ref()
                    .map(|s| s.match_labels.clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    for r in ctx.resources {
        let Resource::VirtualService(vs) = &r.resource else {
            continue;
        };
        let Some(key) = claim_key(&vs.spec) else {
            continue;
        };
        let vs_ns = r.resource.namespace();
        for gateway in vs.spec.gateways.iter().filter(|g| *g != "mesh") {
            let (gw_ns, gw_name) = gateway.split_once('/').unwrap_or((vs_ns, gateway));
            let Some(selector) = ctx.resources.iter().find_map(|g| match &g.resource {
                Resource::Gateway(gw)
                    if g.resource.namespace() == gw_ns && gw.metadata.name == gw_name =>
                {
                    Some(&gw.spec.selector)
                }
                _ => None,
            }) else {
                continue; // A missing gateway is IST0101's.
            };
            for pod in pods.iter().filter(|p| selects(selector, p.labels)) {
                let covered = request_authns.iter().any(|(ns, s)| {
                    (*ns == ROOT_NAMESPACE || *ns == pod.namespace) && selects(s, pod.labels)
                });
                if !covered {
                    out.push(finding(
                        codes::JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                        format!(
                            "The virtual service uses the JWT claim based routing (key: {key}) but found no request authentication for the gateway ({gw_ns}/{gw_name}) pod ({}). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
                            pod.name
                        ),
                        vec![involved(r, "spec.http")],
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const MESH: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ingressgateway-1
  namespace: istio-system
  labels: {istio: ingressgateway}
spec:
  containers: [{name: istio-proxy, image: proxyv2}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: ['*']
  gateways: [gw]
  http:
  - match: [{headers: {'@request.auth.claims.groups': {exact: admin}}}]
    directResponse: {status: 200}
";

    #[test]
    fn claim_routing_on_a_gateway_without_request_authentication_is_reported() {
        let f: Vec<_> = run(MESH)
            .into_iter()
            .filter(|f| f.code == "IST0149")
            .collect();
        assert_eq!(codes_of(&f), vec!["IST0149"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The virtual service uses the JWT claim based routing (key: @request.auth.claims.groups) but found no request authentication for the gateway (istio-system/gw) pod (ingressgateway-1). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing."
        );
    }

    #[test]
    fn a_request_authentication_for_the_gateway_pods_is_enough() {
        let with = format!(
            "{MESH}---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules: [{{issuer: https://issuer.example, jwksUri: https://issuer.example/jwks}}]
"
        );
        assert!(!codes_of(&run(&with)).contains(&"IST0149"));
    }
}
