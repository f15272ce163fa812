//! Sidecar analyzers: IST0111 MultipleSidecarsWithoutWorkloadSelectors, IST0110
//! ConflictingSidecarWorkloadSelectors and IST0101 ReferencedResourceNotFound for a
//! workload selector that selects nothing. The workloads are the Pods, Deployments and
//! WorkloadEntries of the Sidecar's namespace among the files; a selector is only
//! reported as selecting nothing when the files hold some workload in that namespace.
//! A Sidecar for workloads in ambient mode (a pod annotated `ambient.istio.io/redirection:
//! enabled`, or a selector-less Sidecar in an ambient Namespace) is IST0167
//! IneffectivePolicy instead: no sidecar runs there to apply it.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::Resource;
use weft_api::load::LocatedResource;

use super::workloads::{Namespaces, selector_text, selects, workloads};
use super::{Context, Finding, codes, finding, involved};

/// A workload a Sidecar may select: its name, labels and whether it runs in ambient mode.
struct Candidate<'r> {
    name: &'r str,
    labels: &'r BTreeMap<String, String>,
    ambient: bool,
}

fn ineffective(r: &LocatedResource, reason: &str) -> Finding {
    finding(
        codes::INEFFECTIVE_POLICY,
        format!("The policy has no impact: {reason}."),
        vec![involved(r, "metadata.name")],
    )
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let namespaces = Namespaces::new(ctx.resources);
    let mut unselected: BTreeMap<&str, Vec<&LocatedResource>> = BTreeMap::new();
    let mut selecting: BTreeMap<(&str, &str), (bool, Vec<&LocatedResource>)> = BTreeMap::new();
    let mut by_ns: BTreeMap<&str, Vec<Candidate<'_>>> = BTreeMap::new();
    for w in workloads(ctx.resources) {
        by_ns.entry(w.namespace).or_default().push(Candidate {
            name: w.name,
            labels: w.labels,
            ambient: w.ambient(),
        });
    }
    for x in ctx.resources {
        if let Resource::WorkloadEntry(w) = &x.resource {
            by_ns
                .entry(w.metadata.namespace())
                .or_default()
                .push(Candidate {
                    name: &w.metadata.name,
                    labels: &w.spec.labels,
                    ambient: false,
                });
        }
    }
    for r in ctx.resources {
        let Resource::Sidecar(s) = &r.resource else {
            continue;
        };
        let ns = s.metadata.namespace();
        let sel = match &s.spec.workload_selector {
            Some(sel) if !sel.labels.is_empty() => &sel.labels,
            _ => {
                unselected.entry(ns).or_default().push(r);
                continue;
            }
        };
        let Some(candidates) = by_ns.get(ns) else {
            continue;
        };
        let mut found = false;
        for c in candidates.iter().filter(|c| selects(sel, c.labels)) {
            found = true;
            let entry = selecting.entry((ns, c.name)).or_default();
            entry.0 |= c.ambient;
            entry.1.push(r);
        }
        if !found {
            let first = sel.keys().next().map_or("", String::as_str);
            out.push(finding(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                format!("Referenced selector not found: \"{}\"", selector_text(sel)),
                vec![involved(
                    r,
                    &format!("spec.workloadSelector.labels.{first}"),
                )],
            ));
        }
    }
    let names = |rs: &[&LocatedResource]| -> Vec<String> {
        rs.iter().map(|r| r.resource.name().to_string()).collect()
    };
    let mut reported = BTreeSet::new();
    for ((ns, workload), (ambient, sidecars)) in &selecting {
        for r in sidecars {
            if *ambient {
                // No sidecar runs there: not a conflict, but nothing applies the Sidecar.
                if reported.insert(r.reference()) {
                    out.push(ineffective(
                        r,
                        "selected workload is in ambient mode, the policy has no impact",
                    ));
                }
            } else if sidecars.len() > 1 {
                out.push(finding(
                    codes::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                    format!(
                        "The Sidecars {:?} in namespace \"{ns}\" select the same workload pod \"{workload}\", which can lead to undefined behavior.",
                        names(sidecars)
                    ),
                    vec![involved(r, "spec.workloadSelector")],
                ));
            }
        }
    }
    for (ns, sidecars) in &unselected {
        if namespaces.ambient(ns) {
            for r in sidecars {
                if reported.insert(r.reference()) {
                    out.push(ineffective(
                        r,
                        "namespace is in ambient mode, the policy has no impact",
                    ));
                }
            }
        } else if sidecars.len() > 1 {
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
            f[0].message
                .contains("select the same workload pod \"vm1\""),
            "{f:?}"
        );
        let f = run(&format!(
            "{WORKLOAD}{a}{}",
            sidecar("b", "  workloadSelector: {labels: {app: ratings}}\n")
        ));
        assert!(!codes_of(&f).contains(&"IST0110"), "{f:?}");
    }

    #[test]
    fn a_sidecar_for_ambient_workloads_has_no_impact() {
        let pod = "---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-1
  labels: {app: reviews}
  annotations: {ambient.istio.io/redirection: enabled}
spec: {containers: [{name: app, image: reviews:1}]}
";
        let a = sidecar("a", "  workloadSelector: {labels: {app: reviews}}\n");
        let b = sidecar("b", "  workloadSelector: {labels: {app: reviews}}\n");
        let f = run(&format!("{pod}{a}{b}"));
        assert_eq!(codes_of(&f), vec!["IST0167", "IST0167"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The policy has no impact: selected workload is in ambient mode, the policy has no impact."
        );
        let ambient = "---
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio.io/dataplane-mode: ambient}}
";
        let f = run(&format!("{ambient}{}", sidecar("a", "")));
        assert_eq!(codes_of(&f), vec!["IST0167"], "{f:?}");
        assert!(
            f[0].message.contains("namespace is in ambient mode"),
            "{f:?}"
        );
        let sidecars = pod.replace(
            "  annotations: {ambient.istio.io/redirection: enabled}\n",
            "",
        );
        assert_eq!(run(&format!("{sidecars}{a}")), vec![]);
    }

    #[test]
    fn a_sidecar_selecting_no_pod_in_its_namespace_is_reported() {
        let pod = "---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, labels: {app: reviews}}
spec: {containers: [{name: app, image: reviews:1}]}
";
        let f = run(&format!(
            "{pod}{}",
            sidecar("a", "  workloadSelector: {labels: {app: ratings}}\n")
        ));
        assert_eq!(codes_of(&f), vec!["IST0101"], "{f:?}");
        assert_eq!(
            f[0].message,
            "Referenced selector not found: \"app=ratings\""
        );
        let f = run(&format!(
            "{pod}{}",
            sidecar("a", "  workloadSelector: {labels: {app: reviews}}\n")
        ));
        assert_eq!(f, vec![]);
        // No workload of that namespace in the files: nothing to check against.
        let f = run(&sidecar(
            "a",
            "  workloadSelector: {labels: {app: ratings}}\n",
        ));
        assert_eq!(f, vec![]);
    }
}
