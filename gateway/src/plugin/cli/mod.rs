//! `sluice plugin new | build | test`: scaffold a plugin project in Rust, TypeScript,
//! JavaScript or Python, build it into a component, run its tests natively, and run a built
//! component over sample events.
//!
//! Each language's toolchain comes from its own registry into the project, never globally:
//! cargo (with the pinned toolchain and its `wasm32-wasip2` target), `npm install` into
//! `node_modules` (TypeScript, esbuild, componentize-qjs), a `.venv` with `pip` (pytest,
//! componentize-py). The WIT contract is embedded in this binary and written into each build,
//! so a component is always built against the world the gateway checks.

mod js;
mod python;
mod run;
mod rust;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use run::{Hook, action_json, decision_json, delivery_json, run};

use super::{EngineLimits, Grants, PluginHost};

/// The plugin world, as the gateway checks it.
pub const WIT: &str = include_str!("../../../../wit/sluice-plugin.wit");

/// Where this build of Sluice finds the SDKs (`sdk/`: the Rust crate, `js/`, `python/`).
pub fn default_sdk_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"))
}

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    /// TypeScript: compiled and bundled by esbuild, run by QuickJS (componentize-qjs).
    Ts,
    /// JavaScript (ES modules), run by QuickJS (componentize-qjs).
    Js,
    /// Python 3, run by CPython compiled to WebAssembly (componentize-py).
    Python,
}

impl Lang {
    /// The language of the project in `dir`, from the files it has.
    pub fn detect(dir: &Path) -> Result<Self, String> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Ok(if dir.join("src/plugin.ts").is_file() { Self::Ts } else { Self::Js })
        } else if dir.join("plugin.py").is_file() {
            Ok(Self::Python)
        } else {
            Err(format!(
                "{} is not a plugin project: no Cargo.toml (Rust), package.json (TypeScript, JavaScript) or plugin.py (Python)",
                dir.display()
            ))
        }
    }

    /// The language's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::Ts => "TypeScript",
            Self::Js => "JavaScript",
            Self::Python => "Python",
        }
    }

    /// What to run after `new`, for the message.
    pub fn next_steps(self) -> &'static str {
        match self {
            Self::Rust => "cargo test && sluice plugin build",
            Self::Ts | Self::Js | Self::Python => "sluice plugin test && sluice plugin build",
        }
    }
}

/// Creates `dir` with a plugin project in `lang` named after its last component: a filter to
/// edit, with a native unit test. `sdk` is the SDKs' directory. Returns the name.
pub fn new(dir: &Path, lang: Lang, sdk: &Path) -> Result<String, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            !n.is_empty()
                && n.starts_with(|c: char| c.is_ascii_alphabetic())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| {
            format!("'{}' is not a usable plugin name (an ASCII letter, then letters, digits, '-', '_')", dir.display())
        })?;
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let sdk = std::fs::canonicalize(sdk).map_err(|e| format!("the SDK is not at {}: {e}", sdk.display()))?;
    let files = match lang {
        Lang::Rust => rust::files(name, &sdk),
        Lang::Ts => js::files(name, &sdk.join("js"), true),
        Lang::Js => js::files(name, &sdk.join("js"), false),
        Lang::Python => python::files(name, &sdk.join("python")),
    };
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(name.to_owned())
}

/// Builds the project in `dir` into a component, checks that the gateway accepts it as a
/// plugin, and writes it to `dir/<name>.wasm`. Returns that path.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let dir = &absolute(dir)?;
    let built = match Lang::detect(dir)? {
        Lang::Rust => rust::build(dir)?,
        Lang::Ts | Lang::Js => js::build(dir)?,
        Lang::Python => python::build(dir)?,
    };
    let bytes = std::fs::read(&built).map_err(|e| format!("cannot read {}: {e}", built.display()))?;
    let host = host()?;
    host.load("check", &bytes, Grants::default())
        .map_err(|e| format!("{} is not a Sluice plugin: {e}", built.display()))?;
    let name = built.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").replace('_', "-");
    let copy = dir.join(format!("{name}.wasm"));
    if copy != built {
        std::fs::write(&copy, &bytes).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
    }
    Ok(copy)
}

/// Runs the project's own tests natively, with its language's runner (`cargo test`, `npm test`,
/// pytest), their output going to this process's.
pub fn test(dir: &Path) -> Result<(), String> {
    let dir = &absolute(dir)?;
    match Lang::detect(dir)? {
        Lang::Rust => rust::test(dir),
        Lang::Ts | Lang::Js => js::test(dir),
        Lang::Python => python::test(dir),
    }
}

/// A plugin host with the default limits and the default compile cache (the gateway's, so a
/// component checked here loads there without compiling again), or none if it is unusable.
fn host() -> Result<PluginHost, String> {
    PluginHost::new(EngineLimits::default(), super::default_cache_dir())
        .or_else(|_| PluginHost::new(EngineLimits::default(), None))
}

/// `dir` made absolute (so its ancestors can be searched, e.g. for an npm workspace's tools).
fn absolute(dir: &Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// `drop-tests` → `DropTests`: the type (Rust) or class (Python) a new plugin is named.
fn upper_camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The project's name: its directory's.
fn project_name(dir: &Path) -> Result<String, String> {
    dir.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or_else(|| format!("{} has no name", dir.display()))
}

/// Writes the WIT into `dir/.sluice/wit/` for a language's component builder; returns that
/// directory.
fn write_wit(dir: &Path) -> Result<PathBuf, String> {
    let wit = dir.join(".sluice").join("wit");
    std::fs::create_dir_all(&wit).map_err(|e| format!("cannot create {}: {e}", wit.display()))?;
    std::fs::write(wit.join("sluice-plugin.wit"), WIT).map_err(|e| format!("cannot write the WIT: {e}"))?;
    Ok(wit)
}

/// Runs a build step with its output going to our stderr (stdout is the command's result).
fn step(command: &mut Command, what: &str) -> Result<(), String> {
    status(command.stdout(std::io::stderr()), what)
}

/// Runs `command` with its output going to ours; an error naming `what` unless it succeeds.
fn status(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what} failed ({status})")) }
}
