//! Whatever the input, loading never panics, and every diagnostic is located.

use proptest::prelude::*;
use weft_api::load_str;

const SEED: &str = include_str!("../../../examples/recommendation/virtual-service-fault.yaml");
const ENTRIES: &str = include_str!("../../../examples/recommendation/service-entries.yaml");

fn check(text: &str) {
    let loaded = load_str("fuzz.yaml", text);
    for d in &loaded.diagnostics {
        assert!(!d.message.is_empty());
        assert!(d.to_string().starts_with("fuzz.yaml"));
    }
}

/// Replaces the byte range `at..at+len` of `base` with `with` (on char boundaries).
fn splice(base: &str, at: usize, len: usize, with: &str) -> String {
    let mut start = at.min(base.len());
    while !base.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(base.len());
    while !base.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &base[..start], with, &base[end..])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn yaml_shaped_noise(text in r#"[#"a-zA-Z0-9:\-\[\]{},&*!|>'\n ]{0,300}"#) {
        check(&text);
    }

    /// Mutations of real resources reach deep into the validators.
    #[test]
    fn mutated_resources(at in 0usize..2000, len in 0usize..8, with in r"[\-0-9a-zA-Z:{}\[\] .*]{0,6}", which in 0usize..2) {
        let base = if which == 0 { SEED } else { ENTRIES };
        check(&splice(base, at % base.len(), len, &with));
    }
}
