//! AuthorizationPolicy analyzer: IST0127 NoMatchingWorkloadsFound, a policy that applies
//! to no workload. A policy in the root namespace (`istio-system`) with a selector must
//! select a workload anywhere; elsewhere a selector must select one in its namespace, and
//! a policy without one needs some workload there. The workloads are the in-mesh Pods and
//! Deployments, the WorkloadEntries and the ServiceEntries' inline endpoints among the
//! files; files that declare none are not checked (their workloads are elsewhere).
//!
//! And IST0101 ReferencedResourceNotFound for a `from.source.namespaces` or `notNamespaces`
//! entry (exact, `prefix*`, `*suffix` or `*`) that names no namespace, when the files
//! declare Namespaces: those, the namespaces the files' resources are in, and the ones
//! every mesh has (`default`, `istio-system`, Kubernetes' system namespaces).

use std::collections::{BTreeMap, BTreeSet};

use weft_api::Resource;

use super::workloads::{Namespaces, SYSTEM_NAMESPACES, selector_text, selects, workloads};
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

/// True when a policy's namespace pattern names `ns`, as Istio matches it.
fn namespace_matches(pattern: &str, ns: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    pattern.eq_ignore_ascii_case(ns)
}

/// IST0101 for source namespaces that name no known namespace.
fn source_namespaces(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut known: BTreeSet<&str> = ctx
        .resources
        .iter()
        .filter_map(|r| match &r.resource {
            Resource::Namespace(n) => Some(n.metadata.name.as_str()),
            _ => None,
        })
        .collect();
    if known.is_empty() {
        return;
    }
    known.extend(["default", ROOT_NAMESPACE]);
    known.extend(SYSTEM_NAMESPACES);
    known.extend(ctx.resources.iter().map(|r| r.resource.namespace()));
    for r in ctx.resources {
        let Resource::AuthorizationPolicy(p) = &r.resource else {
            continue;
        };
        for (i, rule) in p.spec.rules.iter().enumerate() {
            for (j, from) in rule.from.iter().enumerate() {
                let Some(source) = &from.source else {
                    continue;
                };
                for (field, list) in [
                    ("namespaces", &source.namespaces),
                    ("notNamespaces", &source.not_namespaces),
                ] {
                    for (k, pattern) in list.iter().enumerate() {
                        if !known.iter().any(|ns| namespace_matches(pattern, ns)) {
                            out.push(finding(
                                codes::REFERENCED_RESOURCE_NOT_FOUND,
                                format!("Referenced namespace not found: {pattern:?}"),
                                vec![involved(
                                    r,
                                    &format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                                )],
                            ));
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    source_namespaces(ctx, out);
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
    fn a_source_namespace_that_does_not_exist_is_reported() {
        let yaml = "---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: [NAMES]}}]}]
";
        let f = run(&yaml.replace("NAMES", "shop, 'sh*', '*op', default, frontend"));
        assert_eq!(codes_of(&f), vec!["IST0101"], "{f:?}");
        assert_eq!(f[0].message, "Referenced namespace not found: \"frontend\"");
        assert_eq!(run(&yaml.replace("NAMES", "'*'")), vec![]);
        // Without Namespaces in the files, which exist is not known.
        let policy_only = yaml
            .split("---")
            .nth(2)
            .unwrap_or("")
            .replace("NAMES", "frontend");
        assert_eq!(run(&policy_only), vec![]);
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
