//! Every input of every fuzz target's corpus (`fuzz/corpus/<target>/`) and every input
//! that once crashed a target (`fuzz/regressions/<target>/`) runs through the target on
//! the stable toolchain: CI keeps what fuzzing found without needing nightly.

use std::path::{Path, PathBuf};

use weft_fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_every_input_replays_without_a_panic() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "{target} has no seed corpus in fuzz/corpus/{target}"
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(target));
        for input in corpus.iter().chain(&regressions) {
            let bytes = std::fs::read(input).expect("input");
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target} panics on {}", input.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "{replayed} inputs replayed");
}

#[test]
fn every_fuzz_target_wraps_an_entry_point() {
    // `fuzz/fuzz_targets/<target>.rs` exists for each entry point, and nothing else.
    let mut wrapped: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    wrapped.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(wrapped, names);
}
