//! Helpers the analyzer tests share, and tests of the runner itself.

use super::{Finding, analyze, schema_findings};

/// A service `reviews` with endpoints v1 and v2 and a DestinationRule naming both subsets.
pub(super) const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [240.0.0.1]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

/// Analyzes `yaml`, which must be valid.
pub(super) fn run(yaml: &str) -> Vec<Finding> {
    let loaded = weft_api::load_str("t.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    analyze(&loaded.resources)
}

/// The codes of `findings`.
pub(super) fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

#[test]
fn a_clean_service_has_no_findings() {
    assert_eq!(run(SERVICE), vec![]);
}

#[test]
fn the_suppress_annotation_silences_a_code_on_its_resource() {
    let yaml = "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d, annotations: {galley.istio.io/analyze-suppress: 'CODES'}}
spec:
  host: nothing
";
    let shown = run(&format!("{SERVICE}{}", yaml.replace("CODES", "IST0108")));
    assert!(codes_of(&shown).contains(&"IST0174"), "{shown:?}");
    for codes in ["IST0174", "IST0108, IST0174", "*"] {
        let hidden = run(&format!("{SERVICE}{}", yaml.replace("CODES", codes)));
        assert!(
            !codes_of(&hidden).contains(&"IST0174"),
            "{codes}: {hidden:?}"
        );
    }
}

#[test]
fn validation_diagnostics_become_schema_findings() {
    let loaded = weft_api::load_str(
        "t.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - route: [{destination: {host: r}, weight: -5}]
",
    );
    let f = schema_findings(&loaded.diagnostics);
    assert!(
        f.iter()
            .any(|f| f.code == "IST0106" && f.message.starts_with("Schema validation error: ")),
        "{f:?} from {:?}",
        loaded.diagnostics
    );
    let clean = weft_api::load_str("t.yaml", SERVICE);
    assert!(schema_findings(&clean.diagnostics).is_empty());
}
