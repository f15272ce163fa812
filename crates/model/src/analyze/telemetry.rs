//! Telemetry analyzers: IST0159 ConflictingTelemetryWorkloadSelectors (two Telemetries of
//! a namespace select one workload), IST0160 MultipleTelemetriesWithoutWorkloadSelectors
//! (two selector-less Telemetries in one namespace), and IST0101 ReferencedResourceNotFound
//! for a selector that selects no workload of its namespace among the files. Of such
//! conflicting resources weft applies the oldest, as Istio does; the finding says which
//! were written to no effect. With a mesh config, IST0157 InvalidTelemetryProvider: an
//! entry naming no provider where the mesh config has no default provider of its kind
//! does nothing.

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::load::LocatedResource;

use super::workloads::{selector_text, selects, workloads};
use super::{Context, Finding, codes, finding, involved};

/// A workload's name and labels.
type Candidate<'r> = (&'r str, &'r BTreeMap<String, String>);

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(mesh) = ctx.mesh {
        providers(ctx, mesh, out);
    }
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

/// IST0157: entries without providers, of a kind the mesh config has no default for.
fn providers(ctx: &Context<'_>, mesh: &weft_api::mesh_config::MeshConfig, out: &mut Vec<Finding>) {
    let defaults = mesh.default_providers.clone().unwrap_or_default();
    for r in ctx.resources {
        let Resource::Telemetry(t) = &r.resource else {
            continue;
        };
        let empty =
            |kind: &str, count: usize, unnamed: &dyn Fn(usize) -> bool, defaults: &[String]| {
                (0..count)
                    .filter(|i| unnamed(*i) && defaults.is_empty())
                    .map(|i| (kind.to_string(), i))
                    .collect::<Vec<_>>()
            };
        let spec = &t.spec;
        let mut found = empty(
            "tracing",
            spec.tracing.len(),
            &|i| spec.tracing[i].providers.is_empty(),
            &defaults.tracing,
        );
        found.extend(empty(
            "accessLogging",
            spec.access_logging.len(),
            &|i| spec.access_logging[i].providers.is_empty(),
            &defaults.access_logging,
        ));
        found.extend(empty(
            "metrics",
            spec.metrics.len(),
            &|i| spec.metrics[i].providers.is_empty(),
            &defaults.metrics,
        ));
        for (kind, i) in found {
            out.push(finding(
                codes::INVALID_TELEMETRY_PROVIDER,
                format!(
                    "The Telemetry {} in namespace \"{}\" names no {kind} provider and the mesh config has no default {kind} provider (defaultProviders.{kind}): the entry will be ignored.",
                    t.metadata.name,
                    t.metadata.namespace()
                ),
                vec![involved(r, &format!("spec.{kind}[{i}]"))],
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
    fn entries_without_providers_need_a_default_provider_in_the_mesh_config() {
        let yaml = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 10}]
  accessLogging: [{providers: [{name: envoy}]}, {disabled: true}]
  metrics: [{overrides: [{match: {metric: REQUEST_COUNT}, disabled: true}]}]
";
        let loaded = weft_api::load_str("t.yaml", yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let mesh = |text: &str| {
            weft_api::mesh_config::load_mesh_config("mesh.yaml", text)
                .config
                .expect("valid")
        };
        let none = mesh("{}\n");
        let f = super::super::analyze_with_mesh(&loaded.resources, Some(&none));
        let f: Vec<_> = f.iter().filter(|f| f.code == "IST0157").collect();
        // Every entry without providers: tracing (line 5), the disabled log entry (line 6:
        // with no provider in force there is nothing to disable) and metrics (line 7).
        let lines: Vec<usize> = f.iter().map(|f| f.resources[0].line).collect();
        assert_eq!(lines, [5, 6, 7], "{f:#?}");
        assert!(
            f[0].message.starts_with(
                "The Telemetry mesh-default in namespace \"istio-system\" names no tracing provider"
            ),
            "{}",
            f[0].message
        );
        let with_defaults = mesh(
            "defaultProviders: {tracing: [otel], accessLogging: [envoy], metrics: [prometheus]}\nextensionProviders:\n- name: otel\n  opentelemetry: {service: otel.istio-system, port: 4318, http: {path: /v1/traces}}\n",
        );
        let f = super::super::analyze_with_mesh(&loaded.resources, Some(&with_defaults));
        assert!(!f.iter().any(|f| f.code == "IST0157"), "{f:?}");
        // Without a mesh config the analyzer does not run.
        assert!(!run(yaml).iter().any(|f| f.code == "IST0157"));
    }

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
