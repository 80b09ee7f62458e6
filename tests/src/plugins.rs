//! The example plugins and hostile fixtures of `plugins/`, built once per test process: the Rust
//! crates for `wasm32-wasip2` (kept by cargo between runs), the TypeScript, JavaScript and
//! Python projects with `sluice plugin build` (npm and pip install their toolchains into the
//! projects the first time).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{Context as _, bail};

/// The built component of a plugin crate of `plugins/` (`noop`, `redact`, `infinite-loop`, …).
///
/// # Panics
/// If the plugins cannot be built: a precondition of the test, with cargo's output.
pub fn plugin_wasm(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(|| build().map_err(|e| format!("{e:#}"))) {
        Ok(dir) => dir,
        Err(error) => panic!("building the test plugins failed: {error}"),
    };
    let path = dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(path.is_file(), "no plugin {crate_name} at {}", path.display());
    path
}

fn build() -> anyhow::Result<PathBuf> {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("plugins"),
        None => crate::cache_dir()?.join("plugin-target"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build of plugins/ failed (is the wasm32-wasip2 target installed? tests/run.sh installs it):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(target.join("wasm32-wasip2").join("release"))
}

/// The component of a TypeScript, JavaScript or Python project of `plugins/` (`redact/ts`,
/// `redact/python`, `fixtures/memory-bomb-js`, …), built with `sluice plugin build`.
///
/// # Panics
/// If the project cannot be built: a precondition of the test, with the builder's error.
pub fn plugin_component(project: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    // One build at a time: projects share an npm workspace, and builds are CPU-bound anyway.
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    let result = built.entry(project.to_owned()).or_insert_with(|| {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins")).join(project);
        sluice::plugin::cli::build(&dir)
    });
    match result {
        Ok(path) => path.clone(),
        Err(error) => panic!("building plugins/{project} failed: {error}"),
    }
}
