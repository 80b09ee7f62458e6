//! README's plugin walkthrough, as written: `sluice plugin new` → `cargo test` → `sluice plugin
//! build` → `sluice plugin test`, in a fresh directory, with the real binary.

use std::process::Command;

use sluice_tests::readme_block;

#[test]
fn the_readme_plugin_walkthrough_works() {
    let _deadline = sluice_tests::deadline();
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sluice")).parent().expect("bin dir").to_owned();
    // `sluice` on PATH as after `cargo install`; plugins share one cargo target directory
    // (the harness's) so their dependencies are compiled once per machine.
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join("plugins"),
        None => sluice_tests::cache_dir().expect("cache dir").join("plugin-target"),
    };
    let output = Command::new("sh")
        .args(["-ec", &readme_block("plugin-cli")])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("test tests::drops_test_events ... ok"), "the scaffold's unit test ran: {stdout}");
    let decisions: Vec<&str> = stdout.lines().filter(|l| l.starts_with("{\"action\"")).collect();
    assert_eq!(
        decisions,
        [r#"{"action":"accept","index":0}"#, r#"{"action":"drop","index":1,"reason":"test event"}"#],
        "the decisions the README shows"
    );
    assert!(dir.path().join("drop-tests/drop-tests.wasm").is_file());
}
