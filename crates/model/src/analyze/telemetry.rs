//! Telemetry analyzers: IST0159 ConflictingTelemetryWorkloadSelectors (two Telemetries of
//! a namespace select one workload), IST0160 MultipleTelemetriesWithoutWorkloadSelectors
//! (two selector-less Telemetries in one namespace), and IST0101 ReferencedResourceNotFound
//! for a selector that selects no workload of its namespace among the files. Of such
//! conflicting resources weft applies the oldest, as Istio does; the finding says which
//! were written to no effect.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::load::LocatedResource;

use super::workloads::{selector_text, selects, workloads};
use super::{Context, Finding, codes, finding, involved};

/// A workload's name and labels.
type Candidate<'r> = (&'r str, &'r BTreeMap<String, String>);

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut by_ns: BTreeMap<&str, Vec<Candidate<'_>>> = BTreeMap::new();
    for w in workloads(ctx.resources) {
        by_ns
            .entry(w.namespace)
            .or_default()
            .push((w.name, w.labels));
    }
    for x in ctx.resources {
        if let Resource::WorkloadEntry(w) = &x.resource {
            by_ns
                .entry(w.metadata.namespace())
                .or_default()
                .push((&w.metadata.name, &w.spec.labels));
        }
    }
    let mut unselected: BTreeMap<&str, Vec<&LocatedResource>> = BTreeMap::new();
    let mut selecting: BTreeMap<(&str, &str), Vec<&LocatedResource>> = BTreeMap::new();
    for r in ctx.resources {
        let Resource::Telemetry(t) = &r.resource else {
            continue;
        };
        if t.spec.target_ref.is_some() || !t.spec.target_refs.is_empty() {
            continue;
        }
        let ns = t.metadata.namespace();
        let sel = match &t.spec.selector {
            Some(s) if !s.match_labels.is_empty() => &s.match_labels,
            _ => {
                unselected.entry(ns).or_default().push(r);
                continue;
            }
        };
        let Some(candidates) = by_ns.get(ns) else {
            continue;
        };
        let mut found = false;
        for (name, _) in candidates.iter().filter(|(_, labels)| selects(sel, labels)) {
            found = true;
            selecting.entry((ns, name)).or_default().push(r);
        }
        if !found {
            let first = sel.keys().next().map_or("", String::as_str);
            out.push(finding(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                format!("Referenced selector not found: \"{}\"", selector_text(sel)),
                vec![involved(r, &format!("spec.selector.matchLabels.{first}"))],
            ));
        }
    }
    let names = |rs: &[&LocatedResource]| -> Vec<String> {
        rs.iter().map(|r| r.resource.name().to_string()).collect()
    };
    for ((ns, workload), telemetries) in &selecting {
        if telemetries.len() < 2 {
            continue;
        }
        for r in telemetries {
            out.push(finding(
                codes::CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
                format!(
                    "The Telemetries {:?} in namespace \"{ns}\" select the same workload pod \"{workload}\", which can lead to undefined behavior.",
                    names(telemetries)
                ),
                vec![involved(r, "spec.selector")],
            ));
        }
    }
    for (ns, telemetries) in &unselected {
        if telemetries.len() < 2 {
            continue;
        }
        for r in telemetries {
            out.push(finding(
                codes::MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
                format!(
                    "The Telemetries {:?} in namespace \"{ns}\" are not used because they have no workload selector and multiple exist.",
                    names(telemetries)
                ),
                vec![involved(r, "spec")],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes_of, run};

    fn telemetry(name: &str, selector: &str) -> String {
        format!(
            "---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}}}
spec:
{selector}  tracing: [{{randomSamplingPercentage: 10}}]
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
    fn two_telemetries_selecting_one_workload_conflict() {
        let a = telemetry("a", "  selector: {matchLabels: {app: reviews}}\n");
        let b = telemetry("b", "  selector: {matchLabels: {version: v1}}\n");
        let f = run(&format!("{WORKLOAD}{a}{b}"));
        assert_eq!(codes_of(&f), vec!["IST0159", "IST0159"], "{f:?}");
        assert_eq!(
            f[0].message,
            "The Telemetries [\"a\", \"b\"] in namespace \"default\" select the same workload pod \"vm1\", which can lead to undefined behavior."
        );
        let other = telemetry("b", "  selector: {matchLabels: {app: ratings}}\n");
        let f = run(&format!("{WORKLOAD}{a}{other}"));
        assert_eq!(codes_of(&f), vec!["IST0101"], "{f:?}");
    }

    #[test]
    fn two_namespace_wide_telemetries_conflict() {
        let f = run(&format!("{}{}", telemetry("a", ""), telemetry("b", "")));
        assert_eq!(codes_of(&f), vec!["IST0160", "IST0160"], "{f:?}");
        let f = run(&format!(
            "{WORKLOAD}{}{}",
            telemetry("a", ""),
            telemetry("b", "  selector: {matchLabels: {app: reviews}}\n")
        ));
        assert_eq!(f, vec![]);
    }
}
