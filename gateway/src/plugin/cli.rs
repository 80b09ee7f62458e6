//! `sluice plugin new | build | test`: scaffold a plugin crate, build it into a component, and
//! run a component locally over sample events.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::bindings::{Action, Changes, Delivery, Event, Header};
use super::{EngineLimits, Grants, PluginHost};

/// Where this build of Sluice finds the SDK a new plugin depends on.
pub fn default_sdk_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"))
}

/// Creates `dir` with a plugin crate named after its last component: a filter to edit, with a
/// unit test through the SDK's test double.
pub fn new(dir: &Path, sdk: &Path) -> Result<String, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .ok_or_else(|| format!("'{}' is not a usable crate name (ASCII letters, digits, '-', '_')", dir.display()))?;
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let sdk = std::fs::canonicalize(sdk).map_err(|e| format!("the SDK is not at {}: {e}", sdk.display()))?;
    let type_name: String = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = [
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
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).map_err(|e| format!("cannot write {file}: {e}"))?;
    }
    Ok(name.to_owned())
}

/// Builds the crate in `dir` for `wasm32-wasip2`, checks the result is a plugin component, and
/// copies it to `dir/<crate name>.wasm` (wherever cargo's target directory is). Returns that
/// path.
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
    let host = PluginHost::new(EngineLimits::default(), None)?;
    let bytes = std::fs::read(&wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    host.load("check", &bytes, Grants::default())
        .map_err(|e| format!("{} is not a Sluice plugin: {e}", wasm.display()))?;
    let name = wasm.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").replace('_', "-");
    let copy = dir.join(format!("{name}.wasm"));
    std::fs::write(&copy, &bytes).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
    Ok(copy)
}

/// Which hook `plugin test` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    Produce,
    Consume,
}

/// Runs a component over the events of an NDJSON file (one event's JSON per line) and
/// returns one JSON line per decision.
pub fn test(wasm: &Path, input: &Path, topic: &str, hook: Hook, config: &[(String, String)]) -> Result<String, String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    let host = PluginHost::new(EngineLimits::default(), None)?;
    let grants = Grants { config: config.iter().cloned().collect(), ..Grants::default() };
    let plugin = host.load("test", &bytes, grants)?;
    let file = std::fs::File::open(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut events = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: not JSON: {e}", input.display(), number + 1))?;
        events.push(Event {
            topic: topic.to_owned(),
            key: None,
            value: value.to_string().into_bytes(),
            headers: Vec::new(),
            timestamp_ms: i64::try_from(now).unwrap_or(i64::MAX),
        });
    }
    let lines: Vec<Value> = match hook {
        Hook::Produce => plugin.on_produce(&events).map_err(|e| e.to_string())?.iter().map(action_json).collect(),
        Hook::Consume => plugin.on_consume(&events).map_err(|e| e.to_string())?.iter().map(delivery_json).collect(),
    };
    let mut out = String::new();
    for (index, mut line) in lines.into_iter().enumerate() {
        line["index"] = json!(index);
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn headers_json(headers: &[Header]) -> Value {
    headers.iter().map(|h| (h.key.clone(), Value::String(String::from_utf8_lossy(&h.value).into_owned()))).collect()
}

fn changes_json(out: &mut Value, changes: &Changes) {
    if let Some(value) = &changes.value {
        out["value"] = json_or_text(value);
    }
    if let Some(key) = &changes.key {
        out["key"] = json!(String::from_utf8_lossy(key));
    }
    if let Some(headers) = &changes.headers {
        out["headers"] = headers_json(headers);
    }
}

fn action_json(action: &Action) -> Value {
    match action {
        Action::Accept => json!({"action": "accept"}),
        Action::Modify(changes) => {
            let mut out = json!({"action": "modify"});
            changes_json(&mut out, changes);
            out
        }
        Action::Drop(reason) => json!({"action": "drop", "reason": reason}),
        Action::Reject(reason) => json!({"action": "reject", "reason": reason}),
        Action::DeadLetter(reason) => json!({"action": "dead-letter", "reason": reason}),
        Action::Reroute(to) => {
            let mut out = json!({"action": "reroute", "topic": to.topic});
            if let Some(changes) = &to.changes {
                changes_json(&mut out, changes);
            }
            out
        }
        Action::FanOut(events) => json!({
            "action": "fan-out",
            "events": events.iter().map(|e| json!({"topic": e.topic, "value": json_or_text(&e.value)})).collect::<Vec<_>>(),
        }),
    }
}

fn delivery_json(delivery: &Delivery) -> Value {
    match delivery {
        Delivery::Deliver => json!({"delivery": "deliver"}),
        Delivery::Modify(changes) => {
            let mut out = json!({"delivery": "modify"});
            changes_json(&mut out, changes);
            out
        }
        Delivery::Skip(reason) => json!({"delivery": "skip", "reason": reason}),
        Delivery::DeadLetter(reason) => json!({"delivery": "dead-letter", "reason": reason}),
    }
}
