//! Rust plugins: a crate depending on the Rust SDK (`sdk/`), built with cargo for
//! `wasm32-wasip2` (a `cdylib` built for that target is already a component).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The files of a new plugin crate named `name`: a filter to edit, with a unit test through the
/// SDK's test double.
pub fn files(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let type_name = super::upper_camel(name);
    vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sluice-sdk = {{ path = "{sdk}" }}
serde_json = "1"

[profile.release]
lto = true
codegen-units = 1
strip = "debuginfo"

# A workspace of its own, so the crate builds wherever it is created.
[workspace]
"#,
                sdk = sdk.display()
            ),
        ),
        (
            "rust-toolchain.toml",
            "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\nprofile = \"minimal\"\n".to_owned(),
        ),
        (
            "src/lib.rs",
            format!(
                r##"//! # {name}
//!
//! A Sluice plugin. Edit `produce` (and add the hooks you need); `cargo test` runs the tests
//! natively, `sluice plugin build` makes the component, `sluice plugin test` runs it.
//!
//! Input `{{"test": true}}` → `drop("test event")`; anything else → `accept`.

use sluice_sdk::{{Action, Event, Hooks, Plugin, host}};

pub struct {type_name};

impl Plugin for {type_name} {{
    const HOOKS: Hooks = Hooks::PRODUCE;

    fn produce(event: &Event) -> Action {{
        match event.json() {{
            Ok(value) if value["test"] == true => {{
                host::counter_add("dropped", 1);
                Action::Drop("test event".into())
            }}
            _ => Action::Accept,
        }}
    }}
}}

sluice_sdk::export!({type_name});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn drops_test_events() {{
        let test = Event::new("orders", br#"{{"test": true}}"#.to_vec());
        assert_eq!({type_name}::produce(&test), Action::Drop("test event".into()));
        let real = Event::new("orders", br#"{{"order_id": "o-1"}}"#.to_vec());
        assert_eq!({type_name}::produce(&real), Action::Accept);
        assert_eq!(sluice_sdk::testing::counters()["dropped"], 1);
    }}
}}
"##
            ),
        ),
        (".gitignore", "/target\n*.wasm\n".to_owned()),
    ]
}

/// Builds the crate in `dir` for `wasm32-wasip2` and returns the component cargo wrote
/// (wherever cargo's target directory is).
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("no Cargo.toml in {}", dir.display()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(
            "cargo build failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)".into()
        );
    }
    let wasm = output
        .stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .filter(|file| file.extension().is_some_and(|e| e == "wasm"))
        .last()
        .ok_or("cargo built no .wasm file: is the crate a cdylib?")?;
    Ok(wasm)
}

/// Runs the crate's tests natively (`cargo test`).
pub fn test(dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    super::status(
        Command::new(cargo).arg("test").arg("--manifest-path").arg(dir.join("Cargo.toml")).current_dir(dir),
        "cargo test",
    )
}
