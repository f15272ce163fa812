//! The seed scenario's files read and validate.

use weft_api::{Resource, Severity, load_str};

fn load(name: &str) -> weft_api::Loaded {
    let path = format!(
        "{}/../../examples/recommendation/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("example exists");
    load_str(name, &text)
}

#[test]
fn every_example_is_valid() {
    for name in [
        "service-entries.yaml",
        "destination-rule.yaml",
        "virtual-service.yaml",
        "virtual-service-fault.yaml",
    ] {
        let loaded = load(name);
        assert!(!loaded.has_errors(), "{name}: {:#?}", loaded.diagnostics);
        assert!(!loaded.resources.is_empty(), "{name}");
    }
}

#[test]
fn the_fault_variant_uses_the_deprecated_percent_with_a_warning() {
    let loaded = load("virtual-service-fault.yaml");
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("spec.http[0].fault.abort.percent: warning")
            || warnings[0].contains("deprecated"),
        "{warnings:?}"
    );
    let Resource::VirtualService(vs) = &loaded.resources[0].resource else {
        panic!("a VirtualService")
    };
    assert_eq!(
        vs.spec.http[0]
            .fault
            .as_ref()
            .and_then(|f| f.abort.as_ref())
            .and_then(|a| a.percent),
        Some(100)
    );
}
