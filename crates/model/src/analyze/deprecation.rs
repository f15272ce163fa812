//! IST0002 Deprecated: the fields Istio's deprecation analyzer reports, in its words: a
//! fault delay's integer `percent` (replaced by `percentage`), and a Sidecar's
//! `outboundTrafficPolicy.egressProxy` (which Istio ignores).

use weft_api::Resource;

use super::{Context, Finding, codes, finding, involved};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for r in ctx.resources {
        match &r.resource {
            Resource::VirtualService(vs) => {
                for (i, http) in vs.spec.http.iter().enumerate() {
                    let delay = http.fault.as_ref().and_then(|f| f.delay.as_ref());
                    if delay.and_then(|d| d.percent).is_some_and(|p| p > 0) {
                        out.push(finding(
                            codes::DEPRECATED,
                            "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage".into(),
                            vec![involved(r, &format!("spec.http[{i}].fault.delay.percent"))],
                        ));
                    }
                }
            }
            Resource::Sidecar(sc) => {
                let proxy = sc
                    .spec
                    .outbound_traffic_policy
                    .as_ref()
                    .and_then(|p| p.egress_proxy.as_ref());
                if proxy.is_some() {
                    out.push(finding(
                        codes::DEPRECATED,
                        "Deprecated: OutboundTrafficPolicy.EgressProxy ignored".into(),
                        vec![involved(r, "spec.outboundTrafficPolicy.egressProxy")],
                    ));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    fn route(fault: &str) -> String {
        format!(
            "{SERVICE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - fault: {{delay: {{fixedDelay: 1s, {fault}}}}}
    route: [{{destination: {{host: reviews}}}}]
"
        )
    }

    #[test]
    fn an_integer_delay_percent_and_an_egress_proxy_are_deprecated() {
        let f = run(&route("percent: 10"));
        assert_eq!(codes_of(&f), vec!["IST0002"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage"
        );
        assert_eq!(f[0].resources[0].line, 26, "the fault line");
        let f = run("apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.example.com, port: {number: 443}}
");
        assert_eq!(codes_of(&f), vec!["IST0002"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Deprecated: OutboundTrafficPolicy.EgressProxy ignored"
        );
    }

    #[test]
    fn percentage_is_not_deprecated() {
        assert_eq!(
            codes_of(&run(&route("percentage: {value: 10}"))),
            Vec::<&str>::new()
        );
    }
}
