//! Which version of each plugin runs, and where uploaded versions are kept.
//!
//! Uploaded components live in a compacted Kafka topic (`plugin_host.topic`), so they survive
//! restarts and every replica runs the same version: a version is its chunks (Kafka records
//! are small) and a manifest; which version is active is one record per plugin, with the
//! versions it replaced, for rollback. Each replica folds the topic ([`StoreState`]) and swaps
//! in a newly active version as soon as it reads it. A swap replaces an `Arc`: requests already
//! running keep the version they started with.
//!
//! Plugins declared with a `path` start from that file; an uploaded version, once there is one,
//! takes precedence.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Grants, LoadedPlugin, PluginHost, content_version};
use crate::config::PluginConfig;
use crate::kafka::log::{self, CompactedLog, Fold, LogError, Outcome, Plan};

/// Bytes per chunk record: below Kafka's default 1 MiB record limit with room for headers.
const CHUNK_BYTES: usize = 512 << 10;
/// Versions kept in an active record's history (for rollbacks).
const HISTORY: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Key {
    Chunk { plugin: String, version: String, index: u32 },
    Version { plugin: String, version: String },
    Active { plugin: String },
}

/// What is known about an uploaded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub version: String,
    pub sha256: String,
    pub size: usize,
    pub chunks: u32,
    pub uploaded_at_ms: i64,
    /// What the plugin says about itself.
    pub describes_as: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ActiveRecord {
    version: String,
    /// Versions this one replaced, most recent first.
    history: Vec<String>,
}

/// The store's state: a fold over its topic.
#[derive(Debug, Default)]
pub struct StoreState {
    chunks: HashMap<(String, String), BTreeMap<u32, Vec<u8>>>,
    versions: BTreeMap<(String, String), VersionMeta>,
    active: HashMap<String, ActiveRecord>,
}

impl Fold for StoreState {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let key: Key = match serde_json::from_slice(key) {
            Ok(key) => key,
            // Not a record kind this version knows: skip it.
            Err(_) => return Ok(()),
        };
        match (key, value) {
            (Key::Chunk { plugin, version, index }, Some(bytes)) => {
                self.chunks.entry((plugin, version)).or_default().insert(index, bytes.to_vec());
            }
            (Key::Chunk { plugin, version, index }, None) => {
                if let Some(chunks) = self.chunks.get_mut(&(plugin, version)) {
                    chunks.remove(&index);
                }
            }
            (Key::Version { plugin, version }, Some(bytes)) => {
                let meta: VersionMeta =
                    serde_json::from_slice(bytes).map_err(|e| format!("unreadable version record: {e}"))?;
                self.versions.insert((plugin, version), meta);
            }
            (Key::Version { plugin, version }, None) => {
                self.versions.remove(&(plugin, version));
            }
            (Key::Active { plugin }, Some(bytes)) => {
                let active: ActiveRecord =
                    serde_json::from_slice(bytes).map_err(|e| format!("unreadable active record: {e}"))?;
                self.active.insert(plugin, active);
            }
            (Key::Active { plugin }, None) => {
                self.active.remove(&plugin);
            }
        }
        Ok(())
    }
}

impl StoreState {
    /// The component of an uploaded version, checked against its manifest's hash.
    fn bytes(&self, plugin: &str, version: &str) -> Option<Vec<u8>> {
        let key = (plugin.to_owned(), version.to_owned());
        let meta = self.versions.get(&key)?;
        let chunks = self.chunks.get(&key)?;
        if chunks.len() != meta.chunks as usize {
            return None;
        }
        let bytes: Vec<u8> = chunks.values().flatten().copied().collect();
        (hex(&Sha256::digest(&bytes)) == meta.sha256).then_some(bytes)
    }

    fn active_version(&self, plugin: &str) -> Option<&str> {
        self.active.get(plugin).map(|a| a.version.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a plugin operation failed, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("plugin '{0}' is not declared in the configuration ([[plugins]])")]
    Undeclared(String),
    #[error("plugin '{plugin}' has no version '{version}'")]
    UnknownVersion { plugin: String, version: String },
    #[error("plugin '{0}' has no earlier version to roll back to")]
    NothingToRollBack(String),
    #[error("the component was refused: {0}")]
    Invalid(String),
    #[error("the plugin store is unavailable: {0}")]
    Unavailable(String),
}

impl From<LogError> for StoreError {
    fn from(error: LogError) -> Self {
        StoreError::Unavailable(error.0)
    }
}

/// A plugin as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    /// The version requests run now, if any.
    pub active: Option<String>,
    /// `file` (from the config's `path`) or `uploaded`.
    pub source: Option<&'static str>,
    pub describes_as: Option<String>,
    pub hooks: Vec<&'static str>,
    /// Failed calls of the active version, by kind (`timeout`, `memory`, `trap`, `bad-output`).
    pub failures: HashMap<&'static str, u64>,
    /// The active version's own counters (`counter-add`).
    pub counters: HashMap<String, u64>,
    /// The active version's circuit breaker and calls running now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<super::breaker::CircuitStatus>,
    /// Uploaded versions.
    pub versions: Vec<VersionMeta>,
    /// Versions a rollback would go back to, most recent first.
    pub history: Vec<String>,
}

struct Active {
    plugin: Arc<LoadedPlugin>,
    source: &'static str,
}

/// The plugins of one gateway: declared, loaded, swapped.
pub struct Plugins {
    host: Option<Arc<PluginHost>>,
    declared: HashMap<String, Grants>,
    active: RwLock<HashMap<String, Active>>,
    log: Option<Arc<CompactedLog<StoreState>>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins").field("declared", &self.declared.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// The limits and grants of a declared plugin.
pub fn grants(config: &PluginConfig) -> Grants {
    Grants {
        timeout: Duration::from_millis(config.timeout_ms),
        memory_bytes: config.memory_mb << 20,
        max_output_bytes: config.max_output_bytes,
        config: config.config.clone(),
        env: config.env.clone(),
        stdio: config.stdio,
        network: config.network,
        dirs: config.dirs.clone(),
        admission: super::breaker::AdmissionLimits {
            max_concurrency: config.max_concurrency,
            failures: config.circuit_failures,
            cooldown: Duration::from_millis(config.circuit_cooldown_ms),
        },
    }
}

impl Plugins {
    /// No plugins at all: no engine is started.
    pub fn none() -> Arc<Self> {
        Arc::new(Self { host: None, declared: HashMap::new(), active: RwLock::default(), log: None })
    }

    /// Loads declared plugins from their files, then from the store (`log`, when given), and
    /// keeps following the store.
    pub async fn start(
        host: Arc<PluginHost>,
        declared: &[PluginConfig],
        log: Option<CompactedLog<StoreState>>,
    ) -> Result<Arc<Self>, String> {
        let plugins = Arc::new(Self {
            host: Some(host),
            declared: declared.iter().map(|p| (p.name.clone(), grants(p))).collect(),
            active: RwLock::default(),
            log: log.map(Arc::new),
        });
        for config in declared {
            if let Some(path) = &config.path {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("plugin {}: cannot read {}: {e}", config.name, path.display()))?;
                let loaded =
                    plugins.load(&config.name, bytes).await.map_err(|e| format!("plugin {}: {e}", config.name))?;
                plugins.swap(&config.name, loaded, "file");
            }
        }
        if let Some(log) = plugins.log.clone() {
            plugins.follow_store().await;
            let weak = Arc::downgrade(&plugins);
            let mut changes = log.watch();
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let Some(plugins) = weak.upgrade() else { break };
                    plugins.follow_store().await;
                }
            });
        }
        Ok(plugins)
    }

    /// The version of a plugin requests should run now.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.active.read().unwrap_or_else(PoisonError::into_inner).get(name).map(|a| a.plugin.clone())
    }

    /// Checks a component, stores it as a new version and makes it active.
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<VersionMeta, StoreError> {
        let log = self.log.clone().ok_or_else(|| StoreError::Unavailable("no plugin store".into()))?;
        let loaded = self.load(name, bytes.clone()).await.map_err(StoreError::Invalid)?;
        let version = loaded.version().to_owned();
        let meta = VersionMeta {
            version: version.clone(),
            sha256: hex(&Sha256::digest(&bytes)),
            size: bytes.len(),
            chunks: u32::try_from(bytes.len().div_ceil(CHUNK_BYTES).max(1)).unwrap_or(u32::MAX),
            uploaded_at_ms: crate::telemetry::now_ms(),
            describes_as: format!("{} {}", loaded.info().name, loaded.info().version),
        };
        let plugin = name.to_owned();
        let stored = log
            .write(|state: &StoreState| {
                let mut records = Vec::new();
                if !state.versions.contains_key(&(plugin.clone(), version.clone())) {
                    for (index, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
                        let key = Key::Chunk {
                            plugin: plugin.clone(),
                            version: version.clone(),
                            index: u32::try_from(index).unwrap_or(u32::MAX),
                        };
                        records.push((
                            serde_json::to_vec(&key).map_err(|e| StoreError::Unavailable(e.to_string()))?,
                            Some(chunk.to_vec()),
                        ));
                    }
                    records.push(log::record(
                        &Key::Version { plugin: plugin.clone(), version: version.clone() },
                        Some(&meta),
                    )?);
                }
                records.push(activation(state, &plugin, &version)?);
                let (plugin, version) = (plugin.clone(), version.clone());
                Ok::<_, StoreError>(Outcome::Write(Plan {
                    records,
                    result: (),
                    applied: Box::new(move |s: &StoreState| s.active_version(&plugin) == Some(version.as_str())),
                }))
            })
            .await;
        stored?;
        self.swap(name, loaded, "uploaded");
        Ok(meta)
    }

    /// Makes an uploaded version active again.
    pub async fn activate(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let log = self.log.clone().ok_or_else(|| StoreError::Unavailable("no plugin store".into()))?;
        self.check_declared(name)?;
        let (plugin, target) = (name.to_owned(), version.to_owned());
        log.write(|state: &StoreState| {
            if !state.versions.contains_key(&(plugin.clone(), target.clone())) {
                return Err(StoreError::UnknownVersion { plugin: plugin.clone(), version: target.clone() });
            }
            if state.active_version(&plugin) == Some(target.as_str()) {
                return Ok(Outcome::Nothing(()));
            }
            let (p, v) = (plugin.clone(), target.clone());
            Ok::<_, StoreError>(Outcome::Write(Plan {
                records: vec![activation(state, &plugin, &target)?],
                result: (),
                applied: Box::new(move |s: &StoreState| s.active_version(&p) == Some(v.as_str())),
            }))
        })
        .await?;
        self.follow_store().await;
        Ok(())
    }

    /// Goes back to the version the active one replaced; returns it.
    pub async fn rollback(&self, name: &str) -> Result<String, StoreError> {
        let log = self.log.clone().ok_or_else(|| StoreError::Unavailable("no plugin store".into()))?;
        self.check_declared(name)?;
        let plugin = name.to_owned();
        let version = log
            .write(|state: &StoreState| {
                let active = state.active.get(&plugin).ok_or_else(|| StoreError::NothingToRollBack(plugin.clone()))?;
                let previous = active
                    .history
                    .iter()
                    .find(|v| state.versions.contains_key(&(plugin.clone(), (*v).clone())))
                    .ok_or_else(|| StoreError::NothingToRollBack(plugin.clone()))?
                    .clone();
                let position = active.history.iter().position(|v| *v == previous).unwrap_or(0);
                let record =
                    ActiveRecord { version: previous.clone(), history: active.history[position + 1..].to_vec() };
                let (p, v) = (plugin.clone(), previous.clone());
                Ok::<_, StoreError>(Outcome::Write(Plan {
                    records: vec![log::record(&Key::Active { plugin: plugin.clone() }, Some(&record))?],
                    result: previous,
                    applied: Box::new(move |s: &StoreState| s.active_version(&p) == Some(v.as_str())),
                }))
            })
            .await?;
        self.follow_store().await;
        Ok(version)
    }

    /// Every declared plugin, with its versions.
    pub fn status(&self) -> Vec<PluginStatus> {
        let mut names: Vec<&String> = self.declared.keys().collect();
        names.sort();
        names.into_iter().map(|name| self.status_of(name)).collect()
    }

    pub fn status_of(&self, name: &str) -> PluginStatus {
        let active = self.active.read().unwrap_or_else(PoisonError::into_inner);
        let current = active.get(name);
        let (versions, history) = match &self.log {
            Some(log) => {
                let state = log.read();
                let versions = state.versions.iter().filter(|((p, _), _)| p == name).map(|(_, m)| m.clone()).collect();
                (versions, state.active.get(name).map(|a| a.history.clone()).unwrap_or_default())
            }
            None => (Vec::new(), Vec::new()),
        };
        PluginStatus {
            name: name.to_owned(),
            active: current.map(|a| a.plugin.version().to_owned()),
            source: current.map(|a| a.source),
            describes_as: current.map(|a| format!("{} {}", a.plugin.info().name, a.plugin.info().version)),
            hooks: current.map(|a| hook_names(&a.plugin)).unwrap_or_default(),
            failures: current.map(|a| a.plugin.failures()).unwrap_or_default(),
            counters: current.map(|a| a.plugin.counters()).unwrap_or_default(),
            circuit: current.map(|a| a.plugin.circuit()),
            versions,
            history,
        }
    }

    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.contains_key(name)
    }

    fn check_declared(&self, name: &str) -> Result<(), StoreError> {
        if self.is_declared(name) { Ok(()) } else { Err(StoreError::Undeclared(name.to_owned())) }
    }

    /// Compiles and checks a component off the async runtime (compilation takes a while).
    async fn load(&self, name: &str, bytes: Vec<u8>) -> Result<Arc<LoadedPlugin>, String> {
        let grants =
            self.declared.get(name).cloned().ok_or_else(|| StoreError::Undeclared(name.to_owned()).to_string())?;
        let host = self.host.clone().ok_or_else(|| "no plugin engine is running".to_owned())?;
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || host.load(&name, &bytes, grants))
            .await
            .map_err(|e| format!("the loading task failed: {e}"))?
    }

    fn swap(&self, name: &str, plugin: Arc<LoadedPlugin>, source: &'static str) {
        let previous = self
            .active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Active { plugin: plugin.clone(), source });
        let previous = previous.map(|p| p.plugin.version().to_owned());
        if previous.as_deref() != Some(plugin.version()) {
            tracing::info!(plugin = name, version = plugin.version(), ?previous, source, "plugin version active");
        }
    }

    /// Brings every declared plugin to the version the store says is active.
    async fn follow_store(&self) {
        let Some(log) = &self.log else { return };
        let wanted: Vec<(String, String, Option<Vec<u8>>)> = {
            let state = log.read();
            self.declared
                .keys()
                .filter_map(|name| {
                    let version = state.active_version(name)?;
                    let running = self.get(name).map(|p| p.version().to_owned());
                    (running.as_deref() != Some(version))
                        .then(|| (name.clone(), version.to_owned(), state.bytes(name, version)))
                })
                .collect()
        };
        for (name, version, bytes) in wanted {
            let Some(bytes) = bytes else {
                tracing::error!(plugin = name, version, "the active version's component is incomplete in the store");
                continue;
            };
            debug_assert_eq!(content_version(&bytes), version);
            match self.load(&name, bytes).await {
                Ok(loaded) => self.swap(&name, loaded, "uploaded"),
                Err(error) => tracing::error!(
                    plugin = name,
                    version,
                    error,
                    "cannot load the active version; keeping the running one"
                ),
            }
        }
    }
}

/// The record that makes `version` active, remembering the version it replaces.
fn activation(state: &StoreState, plugin: &str, version: &str) -> Result<(Vec<u8>, Option<Vec<u8>>), LogError> {
    let mut history = Vec::new();
    if let Some(current) = state.active.get(plugin) {
        if current.version != version {
            history.push(current.version.clone());
        }
        history.extend(current.history.iter().filter(|v| *v != version).cloned());
    }
    history.truncate(HISTORY);
    log::record(
        &Key::Active { plugin: plugin.to_owned() },
        Some(&ActiveRecord { version: version.to_owned(), history }),
    )
}

fn hook_names(plugin: &LoadedPlugin) -> Vec<&'static str> {
    use super::bindings::Hooks;
    [(Hooks::PRODUCE, "produce"), (Hooks::CONSUME, "consume"), (Hooks::FAILURE, "failure")]
        .into_iter()
        .filter(|(hook, _)| plugin.implements(*hook))
        .map(|(_, name)| name)
        .collect()
}
