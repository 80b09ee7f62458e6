//! WebAssembly plugins: the host that compiles, checks, sandboxes and calls them.
//!
//! - [`bindings`]: the one `bindgen!` over `wit/sluice-plugin.wit`;
//! - [`engine`]: the wasmtime engine, its pooling allocator and epoch ticker;
//! - [`instance`]: a loaded plugin version, its instance pool, limits and host imports;
//! - [`store`]: uploaded versions kept in Kafka, and which version of each plugin is active;
//! - [`breaker`]: calls at once per plugin, and the circuit breaker for plugins that keep failing;
//! - [`chain`]: running a route's plugins over a batch and applying their actions.
//!
//! Compiled code is cached by content hash, in memory and on disk (`plugins.cache_dir`), so a
//! version is compiled once per machine and a restart loads it in milliseconds.

pub mod bindings;
pub mod breaker;
pub mod chain;
pub mod cli;
pub mod engine;
pub mod instance;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use self::engine::PluginEngine;
pub use self::engine::{DEFAULT_NICE, EngineLimits};
pub use self::instance::{Grants, LoadedPlugin, PluginError};
use self::instance::{HostState, linker};

/// Compiles, checks and loads plugins.
pub struct PluginHost {
    engine: PluginEngine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    compiled: Mutex<HashMap<String, Component>>,
    limits: EngineLimits,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

/// The version name of a component: the start of its SHA-256, in hex.
pub fn content_version(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl PluginHost {
    pub fn new(limits: EngineLimits, cache_dir: Option<PathBuf>) -> Result<Self, String> {
        let engine = PluginEngine::new(limits).map_err(|e| format!("cannot start the plugin engine: {e:#}"))?;
        let linker = linker(&engine.engine).map_err(|e| format!("cannot link the plugin interfaces: {e:#}"))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        Ok(Self { engine, linker, cache_dir, compiled: Mutex::default(), limits })
    }

    /// Loads a component as a version of plugin `name`: compiles (or reuses the cached
    /// compilation), checks it against the plugin world and asks it to describe itself. The
    /// error says what is wrong with the component.
    pub fn load(&self, name: &str, bytes: &[u8], grants: Grants) -> Result<Arc<LoadedPlugin>, String> {
        if grants.memory_bytes > self.limits.max_memory_bytes {
            return Err(format!(
                "plugin {name} asks for {} bytes of memory; the gateway allows at most {}",
                grants.memory_bytes, self.limits.max_memory_bytes
            ));
        }
        let version = content_version(bytes);
        let component = self.compile(&version, bytes)?;
        let plugin = LoadedPlugin::new(&self.engine, &self.linker, &component, name, &version, grants)?;
        tracing::info!(
            plugin = name,
            version,
            describes_itself_as = plugin.info().name,
            its_version = plugin.info().version,
            "plugin loaded"
        );
        Ok(Arc::new(plugin))
    }

    fn compile(&self, version: &str, bytes: &[u8]) -> Result<Component, String> {
        if let Some(component) = self.compiled.lock().unwrap_or_else(PoisonError::into_inner).get(version) {
            return Ok(component.clone());
        }
        let cached = self.cache_dir.as_ref().map(|dir| dir.join(format!("{version}.cwasm")));
        let component = match cached.as_ref().and_then(|path| self.deserialize(path)) {
            Some(component) => component,
            None => {
                if !bytes.starts_with(b"\0asm") {
                    return Err("not a WebAssembly binary (no \\0asm header)".into());
                }
                let component =
                    Component::new(&self.engine.engine, bytes).map_err(|e| format!("not a valid component: {e:#}"))?;
                if let Some(path) = &cached {
                    self.write_cache(path, &component);
                }
                component
            }
        };
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner).insert(version.to_owned(), component.clone());
        Ok(component)
    }

    /// A compilation cached on disk, if there is one this engine can use.
    fn deserialize(&self, path: &std::path::Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime requires that the file holds code it compiled itself, because the
        // code is run as is. The cache directory is Sluice's own, files are named by the hash of
        // the component they were compiled from and written atomically, and wasmtime checks that
        // they were compiled by a compatible engine and configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine.engine, path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "ignoring an unusable cached compilation");
                None
            }
        }
    }

    fn write_cache(&self, path: &std::path::Path, component: &Component) {
        let written = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
            let temporary = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&temporary, bytes)
                .and_then(|()| std::fs::rename(&temporary, path))
                .map_err(|e| e.to_string())
        });
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), error, "cannot cache a compiled plugin");
        }
    }
}

/// Where compiled plugins are cached when `plugin_host.cache_dir` is not set (and where
/// `sluice plugin build` and `test` cache theirs, so a gateway on the same machine loads them
/// without compiling): `~/.cache/sluice/compiled`, or none without a home directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/sluice/compiled"))
}

#[cfg(test)]
mod tests;
