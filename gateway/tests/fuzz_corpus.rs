//! Every committed fuzz input — the seed corpora and each crash the fuzzers found, kept as a
//! regression — run through its target on the stable toolchain, so `cargo test` keeps them
//! fixed without libFuzzer. The fuzzers themselves run from `tests/fuzz/` (see FUZZING.md).

use std::path::Path;

#[test]
fn every_corpus_input_and_regression_passes_its_target() {
    let _deadline = sluice_tests::deadline();
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz");
    let mut ran = 0;
    for (target, run) in sluice::fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a readable input");
                // A panic names the input through the test's output.
                eprintln!("{}", path.display());
                run(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "target {target} has no seed corpus");
        ran += inputs;
    }
    assert!(ran >= sluice::fuzz::TARGETS.len());
}
