//! Sidecar analyzers: IST0111 MultipleSidecarsWithoutWorkloadSelectors and IST0110
//! ConflictingSidecarWorkloadSelectors. Istio checks selectors against Pods; weft reads
//! no Pods, so the workloads checked are the WorkloadEntries among the inputs.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::load::LocatedResource;

use super::{Context, Finding, codes, finding, involved};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut unselected: BTreeMap<&str, Vec<&LocatedResource>> = BTreeMap::new();
    let mut selecting: BTreeMap<(&str, &str), Vec<&LocatedResource>> = BTreeMap::new();
    for r in ctx.resources {
        let Resource::Sidecar(s) = &r.resource else {
            continue;
        };
        let ns = s.metadata.namespace();
        match &s.spec.workload_selector {
            None => unselected.entry(ns).or_default().push(r),
            Some(sel) => {
                for w in ctx.resources.iter().filter_map(|x| match &x.resource {
                    Resource::WorkloadEntry(w) if w.metadata.namespace() == ns => Some(w),
                    _ => None,
                }) {
                    if sel
                        .labels
                        .iter()
                        .all(|(k, v)| w.spec.labels.get(k) == Some(v))
                    {
                        selecting
                            .entry((ns, w.metadata.name.as_str()))
                            .or_default()
                            .push(r);
                    }
                }
            }
        }
    }
    let names = |rs: &[&LocatedResource]| -> Vec<String> {
        rs.iter().map(|r| r.resource.name().to_string()).collect()
    };
    for (ns, sidecars) in unselected.iter().filter(|(_, s)| s.len() > 1) {
        for r in sidecars {
            out.push(finding(
                codes::MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                format!(
                    "The Sidecars {:?} in namespace \"{ns}\" have no workload selector, which can lead to undefined behavior.",
                    names(sidecars)
                ),
                vec![involved(r, "spec")],
            ));
        }
    }
    for ((ns, workload), sidecars) in selecting.iter().filter(|(_, s)| s.len() > 1) {
        for r in sidecars {
            out.push(finding(
                codes::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                format!(
                    "The Sidecars {:?} in namespace \"{ns}\" select the same workload \"{workload}\", which can lead to undefined behavior.",
                    names(sidecars)
                ),
                vec![involved(r, "spec.workloadSelector")],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn sidecar(name: &str, selector: &str) -> String {
        format!(
            "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}}}
spec:
{selector}  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
        )
    }

    const WORKLOAD: &str = "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1}
spec: {address: 10.0.0.9, labels: {app: reviews, version: v1}}
";

    #[test]
    fn two_sidecars_without_selectors_in_a_namespace_conflict() {
        let f = run(&format!("{}{}", sidecar("a", ""), sidecar("b", "")));
        assert_eq!(codes_of(&f), vec!["IST0111", "IST0111"], "{f:?}");
        let f = run(&format!(
            "{}{}",
            sidecar("a", ""),
            sidecar("b", "  workloadSelector: {labels: {app: reviews}}\n")
        ));
        assert_eq!(f, vec![]);
    }

    #[test]
    fn two_sidecars_selecting_one_workload_conflict() {
        let a = sidecar("a", "  workloadSelector: {labels: {app: reviews}}\n");
        let f = run(&format!(
            "{WORKLOAD}{a}{}",
            sidecar("b", "  workloadSelector: {labels: {version: v1}}\n")
        ));
        assert_eq!(codes_of(&f), vec!["IST0110", "IST0110"], "{f:?}");
        assert!(
            f[0].message.contains("select the same workload \"vm1\""),
            "{f:?}"
        );
        let f = run(&format!(
            "{WORKLOAD}{a}{}",
            sidecar("b", "  workloadSelector: {labels: {version: v2}}\n")
        ));
        assert_eq!(f, vec![]);
    }
}
