//! README's plugin walkthroughs, as written, in Rust, TypeScript and Python: `sluice plugin new`
//! → the native tests → `sluice plugin build` → `sluice plugin test` over sample events, in a
//! fresh directory, with the real binary; and every example of `plugins/` passing its native
//! tests in TypeScript and Python through `sluice plugin test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_tests::readme_block;

/// `sluice` on PATH as after `cargo install`.
fn path_with_sluice() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().expect("bin dir").to_owned();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// Runs README's block `name` in a fresh directory; returns its output and the directory.
fn run_block(name: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Rust plugins share one cargo target directory (the harness's), so their dependencies are
    // compiled once per machine.
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("plugins"),
        None => sluice_tests::cache_dir().expect("cache dir").join("plugin-target"),
    };
    let output = Command::new("sh")
        .args(["-ec", &readme_block(name)])
        .current_dir(dir.path())
        .env("PATH", path_with_sluice())
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("sh runs");
    (output, dir)
}

/// The decisions README shows for its sample events.
fn assert_readme_decisions(stdout: &str) {
    let decisions: Vec<&str> = stdout.lines().filter(|l| l.starts_with("{\"action\"")).collect();
    assert_eq!(
        decisions,
        [r#"{"action":"accept","index":0}"#, r#"{"action":"drop","index":1,"reason":"test event"}"#],
        "the decisions the README shows: {stdout}"
    );
}

#[test]
fn the_readme_plugin_walkthrough_works() {
    let _deadline = sluice_tests::deadline();
    let (output, dir) = run_block("plugin-cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("test tests::drops_test_events ... ok"), "the scaffold's unit test ran: {stdout}");
    assert_readme_decisions(&stdout);
    assert!(dir.path().join("drop-tests/drop-tests.wasm").is_file());
}

#[test]
fn the_readme_typescript_plugin_walkthrough_works() {
    let _deadline = sluice_tests::deadline();
    let (output, dir) = run_block("plugin-cli-ts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ok 1 - drops test events"), "the scaffold's test ran under node: {stdout}");
    assert!(dir.path().join("drop-tests/src/plugin.ts").is_file(), "a TypeScript project");
    assert_readme_decisions(&stdout);
    assert!(dir.path().join("drop-tests/drop-tests.wasm").is_file());
}

#[test]
fn the_readme_python_plugin_walkthrough_works() {
    let _deadline = sluice_tests::deadline();
    let (output, dir) = run_block("plugin-cli-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 passed"), "the scaffold's test ran under pytest: {stdout}");
    assert_readme_decisions(&stdout);
    assert!(dir.path().join("drop-tests/drop-tests.wasm").is_file());
}

#[test]
fn a_javascript_plugin_is_scaffolded_tested_and_built_the_same_way() {
    let _deadline = sluice_tests::deadline();
    let dir = tempfile::tempdir().expect("temp dir");
    let block = readme_block("plugin-cli-ts").replace("--lang ts", "--lang js");
    let output = Command::new("sh")
        .args(["-ec", &block])
        .current_dir(dir.path())
        .env("PATH", path_with_sluice())
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("drop-tests/src/plugin.js").is_file(), "a JavaScript project");
    assert!(stdout.contains("ok 1 - drops test events"), "{stdout}");
    assert_readme_decisions(&stdout);
}

/// The examples' native tests: the behaviour cases each example shares with its Rust version,
/// run by node's test runner and pytest through `sluice plugin test`.
#[test]
fn every_example_passes_its_cases_natively_in_typescript_and_python() {
    let _deadline = sluice_tests::deadline_of(std::time::Duration::from_secs(600));
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for example in ["enrich", "filter", "redact", "rules", "tenant-router"] {
        let cases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(plugins.join(example).join("cases.json")).expect("cases"))
                .expect("JSON");
        let count = cases["cases"].as_array().expect("cases").len();
        for (lang, passed) in [("ts", format!("# pass {count}")), ("python", format!("{count} passed"))] {
            let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["plugin", "test"])
                .arg(plugins.join(example).join(lang))
                .output()
                .expect("sluice runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{example} ({lang}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(stdout.contains(&passed), "{example} ({lang}): every case ran: {stdout}");
        }
    }
}
