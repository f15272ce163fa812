//! IST0166 IneffectiveSelector: a policy with a `selector` (and no `targetRef`) that selects
//! the pods of a Kubernetes Gateway (labelled `gateway.networking.k8s.io/gateway-name`).
//! The policies are AuthorizationPolicies, RequestAuthentications and Telemetries.
//! Istio does not apply selectors to such gateways: a policy for one names it with
//! `targetRefs`. The gateway
//! pods are the Pods and Deployments of the policy's namespace.

use weft_api::Resource;

use super::workloads::{selects, workloads};
use super::{Context, Finding, codes, finding, involved};

/// The label the Gateway API's deployments put on a gateway's pods.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let gateways: Vec<_> = workloads(ctx.resources)
        .into_iter()
        .filter_map(|w| Some((w.namespace, w.labels, w.labels.get(GATEWAY_NAME_LABEL)?)))
        .collect();
    if gateways.is_empty() {
        return;
    }
    for r in ctx.resources {
        let (selector, targeted) = match &r.resource {
            Resource::AuthorizationPolicy(p) => (
                &p.spec.selector,
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
            ),
            Resource::RequestAuthentication(p) => (
                &p.spec.selector,
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
            ),
            Resource::Telemetry(p) => (
                &p.spec.selector,
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
            ),
            _ => continue,
        };
        let Some(selector) = selector.as_ref().filter(|_| !targeted) else {
            continue;
        };
        let ns = r.resource.namespace();
        for (_, labels, gateway) in gateways.iter().filter(|(n, _, _)| *n == ns) {
            if selects(&selector.match_labels, labels) {
                out.push(finding(
                    codes::INEFFECTIVE_SELECTOR,
                    format!(
                        "Ineffective selector on Kubernetes Gateway {gateway}. Use the TargetRef field instead."
                    ),
                    vec![involved(r, "spec.selector")],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const GATEWAY_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: bookinfo-gateway-istio-1
  labels: {gateway.networking.k8s.io/gateway-name: bookinfo-gateway, app: gw}
spec:
  containers: [{name: istio-proxy, image: proxyv2}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw-policy}
spec:
";

    #[test]
    fn a_selector_on_a_kubernetes_gateways_pods_is_ineffective() {
        let f = run(&format!(
            "{GATEWAY_POD}  selector: {{matchLabels: {{app: gw}}}}\n"
        ));
        assert_eq!(codes_of(&f), vec!["IST0166"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Ineffective selector on Kubernetes Gateway bookinfo-gateway. Use the TargetRef field instead."
        );
    }

    #[test]
    fn a_telemetry_selecting_a_kubernetes_gateways_pods_is_ineffective() {
        let telemetry = GATEWAY_POD
            .replace("security.istio.io/v1", "telemetry.istio.io/v1")
            .replace("kind: AuthorizationPolicy", "kind: Telemetry");
        let f = run(&format!(
            "{telemetry}  selector: {{matchLabels: {{app: gw}}}}\n  tracing: [{{randomSamplingPercentage: 1}}]\n"
        ));
        assert_eq!(codes_of(&f), vec!["IST0166"], "{f:?}");
    }

    #[test]
    fn target_refs_and_other_selectors_are_clean() {
        let by_ref = format!(
            "{GATEWAY_POD}  targetRefs: [{{kind: Gateway, group: gateway.networking.k8s.io, name: bookinfo-gateway}}]\n"
        );
        assert_eq!(codes_of(&run(&by_ref)), Vec::<&str>::new());
        let other = format!("{GATEWAY_POD}  selector: {{matchLabels: {{app: web}}}}\n");
        let f = run(&other);
        assert!(!codes_of(&f).contains(&"IST0166"), "{f:?}");
    }
}
