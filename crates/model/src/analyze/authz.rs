//! AuthorizationPolicy analyzer: IST0127 NoMatchingWorkloadsFound, a policy that applies
//! to no workload. A policy in the root namespace (`istio-system`) with a selector must
//! select a workload anywhere; elsewhere a selector must select one in its namespace, and
//! a policy without one needs some workload there. The workloads are the in-mesh Pods and
//! Deployments, the WorkloadEntries and the ServiceEntries' inline endpoints among the
//! files; files that declare none are not checked (their workloads are elsewhere).

use std::collections::BTreeMap;

use weft_api::Resource;

use super::workloads::{Namespaces, selector_text, selects, workloads};
use super::{Context, Finding, codes, finding, involved};
use crate::translate::scope::ROOT_NAMESPACE;

/// Every workload's namespace and labels.
fn workload_labels<'r>(ctx: &Context<'r>) -> Vec<(&'r str, &'r BTreeMap<String, String>)> {
    let namespaces = Namespaces::new(ctx.resources);
    let mut out: Vec<_> = workloads(ctx.resources)
        .into_iter()
        .filter(|w| namespaces.in_mesh(w))
        .map(|w| (w.namespace, w.labels))
        .collect();
    for r in ctx.resources {
        match &r.resource {
            Resource::WorkloadEntry(w) => out.push((w.metadata.namespace(), &w.spec.labels)),
            Resource::ServiceEntry(se) => out.extend(
                se.spec
                    .endpoints
                    .iter()
                    .map(|e| (se.metadata.namespace(), &e.labels)),
            ),
            _ => {}
        }
    }
    out
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let all = workload_labels(ctx);
    if all.is_empty() {
        return;
    }
    for r in ctx.resources {
        let Resource::AuthorizationPolicy(p) = &r.resource else {
            continue;
        };
        if p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty() {
            continue;
        }
        let ns = p.metadata.namespace();
        let selector = p.spec.selector.as_ref().map(|s| &s.match_labels);
        let matched = match selector {
            None if ns == ROOT_NAMESPACE => continue,
            None => all.iter().any(|(n, _)| *n == ns),
            Some(sel) => all
                .iter()
                .any(|(n, labels)| (ns == ROOT_NAMESPACE || *n == ns) && selects(sel, labels)),
        };
        if !matched {
            out.push(finding(
                codes::NO_MATCHING_WORKLOADS_FOUND,
                format!(
                    "No matching workloads for this resource with the following labels: {}",
                    selector.map(selector_text).unwrap_or_default()
                ),
                vec![involved(
                    r,
                    if selector.is_some() {
                        "spec.selector"
                    } else {
                        "metadata.name"
                    },
                )],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    const WORKLOADS: &str = "---
apiVersion: v1
kind: Pod
metadata: {name: httpbin-1, namespace: httpbin, labels: {app: httpbin, version: v1}}
spec: {containers: [{name: app, image: httpbin}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm, namespace: legacy}
spec: {address: 10.0.0.9, labels: {app: billing}}
";

    fn policy(name: &str, ns: &str, selector: &str) -> String {
        format!(
            "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
{selector}  action: DENY
  rules: [{{to: [{{operation: {{paths: [/admin]}}}}]}}]
"
        )
    }

    #[test]
    fn a_policy_that_selects_no_workload_is_reported() {
        let yaml = format!(
            "{WORKLOADS}{}{}{}",
            policy(
                "nopods",
                "httpbin",
                "  selector: {matchLabels: {app: httpbin, version: v2}}\n"
            ),
            policy("empty-ns", "httpbin-empty", ""),
            policy(
                "meshwide",
                "istio-system",
                "  selector: {matchLabels: {app: ghost}}\n"
            ),
        );
        let f = run(&yaml);
        assert_eq!(codes_of(&f), vec!["IST0127"; 3], "{f:?}");
        assert_eq!(
            f[0].message,
            "No matching workloads for this resource with the following labels: app=httpbin,version=v2"
        );
        assert_eq!(
            f[1].message,
            "No matching workloads for this resource with the following labels: "
        );
    }

    #[test]
    fn policies_with_workloads_are_clean() {
        let yaml = format!(
            "{WORKLOADS}{}{}{}{}",
            policy(
                "v1",
                "httpbin",
                "  selector: {matchLabels: {version: v1}}\n"
            ),
            policy("ns-wide", "legacy", ""),
            policy(
                "mesh-selected",
                "istio-system",
                "  selector: {matchLabels: {app: billing}}\n"
            ),
            policy("mesh-wide", "istio-system", ""),
        );
        assert_eq!(run(&yaml), vec![]);
        // Without workloads in the files there is nothing to check against.
        assert_eq!(
            run(&policy(
                "nopods",
                "httpbin",
                "  selector: {matchLabels: {app: x}}\n"
            )),
            vec![]
        );
    }
}
