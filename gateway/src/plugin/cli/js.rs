//! TypeScript and JavaScript plugins: an npm project depending on the JS SDK (`sdk/js`),
//! tested natively with node's test runner (TypeScript compiled by `tsc` first), bundled by
//! esbuild and built into a component by componentize-qjs (QuickJS, synchronous runtime).
//!
//! Why QuickJS rather than SpiderMonkey (componentize-js): measured here, a QuickJS component is
//! 1.6 MB and costs ~8–15 µs per event, a SpiderMonkey one 12 MB and ~60–70 µs
//! (`../shared/notes/measured-facts.md`, BENCHMARKS.md "Plugins in three languages"). QuickJS
//! has no `TextEncoder`/`TextDecoder`; the SDK carries its own UTF-8 code.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain a new project pins (npm registry versions).
const COMPONENTIZE_QJS: &str = "0.4.5";
const ESBUILD: &str = "0.28.2";
const TYPESCRIPT: &str = "5.9.3";
const TYPES_NODE: &str = "20.19.43";

pub fn files(name: &str, sdk: &Path, typescript: bool) -> Vec<(&'static str, String)> {
    let (test_script, dev) = if typescript {
        (
            "tsc -p . && node --test .sluice/test-build/test/",
            format!(
                r#""componentize-qjs": "{COMPONENTIZE_QJS}",
    "esbuild": "{ESBUILD}",
    "typescript": "{TYPESCRIPT}",
    "@types/node": "{TYPES_NODE}""#
            ),
        )
    } else {
        (
            "node --test test/",
            format!(
                r#""componentize-qjs": "{COMPONENTIZE_QJS}",
    "esbuild": "{ESBUILD}""#
            ),
        )
    };
    let package = format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {{
    "test": "{test_script}",
    "build": "sluice plugin build"
  }},
  "dependencies": {{
    "sluice-plugin": "file:{sdk}"
  }},
  "devDependencies": {{
    {dev}
  }}
}}
"#,
        sdk = sdk.display()
    );
    let plugin = format!(
        r#"/**
 * # {name}
 *
 * A Sluice plugin. Edit `produce` (and add the hooks you need: `consume`, `onFailure`, or the
 * batch forms `onProduce`/`onConsume`); `sluice plugin test` runs the tests natively,
 * `sluice plugin build` makes the component.
 *
 * Input `{{"test": true}}` → `drop("test event")`; anything else → `accept`.
 */

import {{ Action, definePlugin, host }} from "sluice-plugin";

export default definePlugin({{
  name: "{name}",
  produce(event) {{
    if (event.json{cast}().test === true) {{
      host.counterAdd("dropped");
      return Action.drop("test event");
    }}
    return Action.accept();
  }},
}});
"#,
        cast = if typescript { "<{ test?: unknown }>" } else { "" }
    );
    let test = r#"import { test } from "node:test";
import assert from "node:assert/strict";
import { Action, Event } from "sluice-plugin";
import { counters, reset } from "sluice-plugin/testing";

import plugin from "../src/plugin.js";

test("drops test events", () => {
  reset();
  assert.deepEqual(plugin.produce(new Event("orders", { test: true })), Action.drop("test event"));
  assert.deepEqual(plugin.produce(new Event("orders", { order_id: "o-1" })), Action.accept());
  assert.equal(counters().dropped, 1);
});
"#
    .to_owned();
    let mut files = vec![
        ("package.json", package),
        (if typescript { "src/plugin.ts" } else { "src/plugin.js" }, plugin),
        (if typescript { "test/plugin.test.ts" } else { "test/plugin.test.js" }, test),
        (".gitignore", "node_modules/\n.sluice/\n*.wasm\n".to_owned()),
    ];
    if typescript {
        files.push((
            "tsconfig.json",
            r#"{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "skipLibCheck": true,
    "outDir": ".sluice/test-build",
    "rootDir": "."
  },
  "include": ["src", "test"]
}
"#
            .to_owned(),
        ));
    }
    files
}

/// The directory whose `node_modules/.bin` has `tool`: `dir` or an ancestor (an npm workspace
/// installs there).
fn find_bin(dir: &Path, tool: &str) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join("node_modules").join(".bin").join(tool)).find(|p| p.is_file())
}

/// The project's npm toolchain, installed into it (`npm install`) the first time.
fn ensure_installed(dir: &Path) -> Result<(), String> {
    if find_bin(dir, "componentize-qjs").is_some() && find_bin(dir, "esbuild").is_some() {
        return Ok(());
    }
    super::step(Command::new("npm").args(["install", "--no-audit", "--no-fund"]).current_dir(dir), "npm install")?;
    if find_bin(dir, "componentize-qjs").is_none() || find_bin(dir, "esbuild").is_none() {
        return Err("npm install did not install componentize-qjs and esbuild: are they in devDependencies?".into());
    }
    Ok(())
}

pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let source = ["src/plugin.ts", "src/plugin.js"]
        .into_iter()
        .find(|file| dir.join(file).is_file())
        .ok_or_else(|| format!("no src/plugin.ts or src/plugin.js in {}", dir.display()))?;
    ensure_installed(dir)?;
    let wit = super::write_wit(dir)?;
    let work = dir.join(".sluice");
    // The component's entry: the plugin (its default export) wired to the world's exports.
    std::fs::write(
        work.join("entry.js"),
        format!(
            "// Generated by `sluice plugin build`.\n\
             import witHost from \"sluice:plugin/host@0.1.0\";\n\
             import {{ component }} from \"sluice-plugin/component\";\n\
             import plugin from \"../{source}\";\n\
             export const {{ describe, onProduce, onConsume, onFailure }} = component(plugin, witHost);\n"
        ),
    )
    .map_err(|e| format!("cannot write the entry module: {e}"))?;
    let esbuild = find_bin(dir, "esbuild").ok_or("esbuild is not installed")?;
    super::step(
        Command::new(esbuild)
            .args([
                ".sluice/entry.js",
                "--bundle",
                "--format=esm",
                "--platform=neutral",
                "--target=es2022",
                "--external:sluice:plugin/*",
                "--log-level=warning",
                "--outfile=.sluice/bundle.js",
            ])
            .current_dir(dir),
        "esbuild",
    )?;
    let output = work.join(format!("{}.wasm", package_name(dir)?));
    let componentize = find_bin(dir, "componentize-qjs").ok_or("componentize-qjs is not installed")?;
    super::step(
        Command::new(componentize)
            .arg("--sync")
            .arg("--wit")
            .arg(&wit)
            .args(["--world", "plugin", "--js", ".sluice/bundle.js", "--output"])
            .arg(&output)
            .current_dir(dir),
        "componentize-qjs",
    )?;
    Ok(output)
}

/// The package's name without its scope (`@team/redact` → `redact`), else the directory's.
fn package_name(dir: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(dir.join("package.json")).map_err(|e| format!("cannot read package.json: {e}"))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("package.json is not JSON: {e}"))?;
    match package["name"].as_str().map(|name| name.rsplit('/').next().unwrap_or(name)) {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => super::project_name(dir),
    }
}

pub fn test(dir: &Path) -> Result<(), String> {
    let installed = dir.ancestors().any(|d| d.join("node_modules").join("sluice-plugin").exists())
        && (!dir.join("tsconfig.json").is_file() || find_bin(dir, "tsc").is_some());
    if !installed {
        super::step(Command::new("npm").args(["install", "--no-audit", "--no-fund"]).current_dir(dir), "npm install")?;
    }
    super::status(Command::new("npm").args(["test", "--silent"]).current_dir(dir), "npm test")
}
