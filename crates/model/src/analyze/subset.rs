//! DestinationRule host and subset analyzers, as Istio's `destinationrule` package has them:
//! IST0174 UnknownDestinationRuleHost (a host no ServiceEntry or Kubernetes Service
//! declares; a wildcard host only matches a wildcard service) and IST0173
//! DestinationRuleSubsetNotSelectPods (a subset whose labels, with its Kubernetes
//! Service's selector, pick none of the Service's workloads: Pods, Deployments' pods and
//! WorkloadEntries of its namespace). Subsets are only checked when the files hold some
//! workload in that namespace; ServiceEntries' subsets are WEFT0001's.

use std::collections::BTreeMap;

use weft_api::Resource;

use super::workloads::{selects, workloads};
use super::{Context, Finding, codes, finding, involved};
use crate::host;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut labels_by_ns: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for w in workloads(ctx.resources) {
        labels_by_ns.entry(w.namespace).or_default().push(w.labels);
    }
    for r in ctx.resources {
        if let Resource::WorkloadEntry(w) = &r.resource {
            labels_by_ns
                .entry(w.metadata.namespace())
                .or_default()
                .push(&w.spec.labels);
        }
    }
    for r in ctx.resources {
        let Resource::DestinationRule(d) = &r.resource else {
            continue;
        };
        let hostname = host::resolve(&d.spec.host, d.metadata.namespace());
        if !ctx.registry.declared_anywhere(&hostname) {
            out.push(finding(
                codes::UNKNOWN_DESTINATION_RULE_HOST,
                format!(
                    "The host {} defined in the DestinationRule does not match any services in the mesh.",
                    d.spec.host
                ),
                vec![involved(r, "spec.host")],
            ));
            continue;
        }
        let Some((ns, selector)) = ctx.registry.kube_selector(&hostname) else {
            continue;
        };
        let Some(workloads) = labels_by_ns.get(ns) else {
            continue;
        };
        for (i, subset) in d.spec.subsets.iter().enumerate() {
            let mut wanted = selector.clone();
            wanted.extend(subset.labels.clone());
            if !workloads.iter().any(|labels| selects(&wanted, labels)) {
                out.push(finding(
                    codes::DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    format!(
                        "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                        subset.name
                    ),
                    vec![involved(r, &format!("spec.subsets[{i}]"))],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SERVICE, codes_of, run};

    #[test]
    fn a_destination_rule_for_an_undeclared_host_is_unknown() {
        let dr = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  host: HOST
";
        let f = run(&format!("{SERVICE}{}", dr.replace("HOST", "nothing")));
        assert_eq!(codes_of(&f), vec!["IST0174"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The host nothing defined in the DestinationRule does not match any services in the mesh."
        );
        assert_eq!(f[0].level.as_str(), "Warning");
        let f = run(&format!(
            "{SERVICE}{}",
            dr.replace("HOST", "'*.svc.cluster.local'")
        ));
        assert_eq!(codes_of(&f), vec!["IST0174"], "{f:?}");
        for host in ["reviews", "reviews.default.svc.cluster.local"] {
            let f = run(&format!("{SERVICE}{}", dr.replace("HOST", host)));
            assert_eq!(f, vec![], "{host}");
        }
    }

    const KUBE: &str = "---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ratings-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: ratings, version: v1}}
  template:
    metadata: {labels: {app: ratings, version: v1}}
    spec: {containers: [{name: app, image: ratings:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other-v2, namespace: shop, labels: {app: other, version: v2}}
spec: {containers: [{name: app, image: other:1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}, {name: SUBSET, labels: {version: VERSION}}]
";

    #[test]
    fn a_subset_that_selects_none_of_the_services_pods_is_reported() {
        // v2 is a Pod's label, but not of a Pod the Service selects.
        let f = run(&KUBE.replace("SUBSET", "v2").replace("VERSION", "v2"));
        assert_eq!(codes_of(&f), vec!["IST0173"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The Subset v2 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream)."
        );
        assert_eq!(f[0].level.as_str(), "Error");
        let f = run(&KUBE.replace("SUBSET", "also-v1").replace("VERSION", "v1"));
        assert_eq!(f, vec![]);
    }

    #[test]
    fn subsets_are_not_checked_without_workloads_in_the_namespace() {
        let service_only: String = KUBE
            .split("---\napiVersion: apps/v1")
            .next()
            .unwrap_or("")
            .to_string();
        let dr = KUBE.rsplit("---\n").next().unwrap_or("");
        let yaml = format!(
            "{service_only}---\n{}",
            dr.replace("SUBSET", "v2").replace("VERSION", "v2")
        );
        assert_eq!(run(&yaml), vec![]);
    }
}
