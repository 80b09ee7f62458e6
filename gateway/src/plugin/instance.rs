//! A loaded plugin version: compiled once, instantiated from its `InstancePre`, pooled, and
//! called under its limits. A call that fails discards its instance — a trapped instance cannot
//! be re-entered — and the next call gets a fresh one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{self, Action, Decision, Delivery, Event, Failure, Hooks, Info, Level, Plugin, PluginPre};
use super::breaker::{Admission, AdmissionLimits, CircuitStatus, Permit, Refusal};
use super::engine::{
    CPU_BEFORE_LOWERED, EPOCH_TICK, PluginEngine, PluginThreads, demote_current_thread, thread_cpu_time,
};

/// What an operator lets a plugin do, and its limits.
#[derive(Debug, Clone)]
pub struct Grants {
    /// Time limit per call.
    pub timeout: Duration,
    /// Linear memory limit per instance.
    pub memory_bytes: usize,
    /// Limit on the bytes a call may answer with (values, keys, headers, reasons).
    pub max_output_bytes: usize,
    /// Values `config-get` returns.
    pub config: BTreeMap<String, String>,
    /// Environment variables the plugin sees (none by default).
    pub env: BTreeMap<String, String>,
    /// Whether the plugin's stdout and stderr reach the gateway's (discarded by default).
    pub stdio: bool,
    /// Whether the plugin may open network connections and resolve names (no by default).
    pub network: bool,
    /// Host directories the plugin may read, by the path it sees them at (none by default).
    pub dirs: BTreeMap<String, String>,
    /// Calls at once, and the circuit breaker.
    pub admission: AdmissionLimits,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            memory_bytes: 64 << 20,
            max_output_bytes: 4 << 20,
            config: BTreeMap::new(),
            env: BTreeMap::new(),
            stdio: false,
            network: false,
            dirs: BTreeMap::new(),
            admission: AdmissionLimits::default(),
        }
    }
}

/// Why a plugin call did not produce usable decisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin} ran longer than its {limit_ms} ms limit")]
    Timeout { plugin: String, limit_ms: u64 },
    #[error("plugin {plugin} exceeded its memory limit of {limit_bytes} bytes")]
    Memory { plugin: String, limit_bytes: usize },
    #[error("plugin {plugin} trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin {plugin} answered badly: {message}")]
    BadOutput { plugin: String, message: String },
    #[error("plugin {plugin} could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin {plugin} is running its limit of {limit} calls at once")]
    Busy { plugin: String, limit: usize },
    #[error("plugin {plugin} failed repeatedly; its calls are refused for {retry_after_ms} ms more")]
    CircuitOpen { plugin: String, retry_after_ms: u64 },
    #[error("plugin {plugin} is declared but no version of it is loaded")]
    NotLoaded { plugin: String },
}

impl PluginError {
    /// A short stable name for the kind of failure (logs, headers, metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Timeout { .. } => "timeout",
            PluginError::Memory { .. } => "memory",
            PluginError::Trap { .. } => "trap",
            PluginError::BadOutput { .. } => "bad-output",
            PluginError::Instantiate { .. } => "instantiate",
            PluginError::Busy { .. } => "busy",
            PluginError::CircuitOpen { .. } => "circuit-open",
            PluginError::NotLoaded { .. } => "not-loaded",
        }
    }

    /// Whether the plugin was not called at all (no version loaded yet, at its concurrency cap,
    /// or its breaker open): asking again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PluginError::Busy { .. } | PluginError::CircuitOpen { .. } | PluginError::NotLoaded { .. })
    }
}

/// Per-store host state: WASI (granted per plugin), limits, and what host imports need.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    plugin: Arc<Identity>,
    /// The running call's clock (see `arm`).
    clock: CallClock,
}

/// How far the running call is into its time limit, and into the CPU it may use before its
/// thread's priority is lowered.
#[derive(Debug, Default)]
struct CallClock {
    /// Epoch ticks left before the call is stopped.
    ticks_left: u64,
    /// The thread's CPU time at the call's first tick.
    cpu_at_first_tick: Option<Duration>,
}

/// Memory and table limits that remember whether they refused growth, so a trap after a refused
/// allocation is reported as the memory limit it is, and how far the instance's memories have
/// grown, so an instance nearing its limit is retired between calls (see [`RETIRE_AT`]).
struct Limits {
    memory_bytes: usize,
    refused: bool,
    grown_bytes: usize,
}

/// The share of its memory limit past which an instance is not reused after a successful call.
/// Linear memory never shrinks, so a guest that leaks would otherwise reach its limit in the
/// middle of some later call and fail that batch: componentize-py 0.25 components leak the byte
/// lists they return (measured: ~30 KB per batch of 100 modified events, a 64 MiB instance full
/// after ~2,000 batches). A fresh instance costs microseconds to milliseconds.
const RETIRE_AT: (usize, usize) = (1, 2);

impl Limits {
    fn near_limit(&self) -> bool {
        self.grown_bytes > self.memory_bytes / RETIRE_AT.1 * RETIRE_AT.0
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.refused |= !allowed;
        if allowed {
            self.grown_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState").field("plugin", &self.plugin.name).finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::sluice::plugin::types::Host for HostState {}

impl bindings::sluice::plugin::host::Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let (plugin, version) = (self.plugin.name.as_str(), self.plugin.version.as_str());
        let fields: BTreeMap<String, String> = fields.into_iter().collect();
        match level {
            Level::Trace => tracing::trace!(plugin, version, ?fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, version, ?fields, "{message}"),
            Level::Info => tracing::info!(plugin, version, ?fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, version, ?fields, "{message}"),
            Level::Error => tracing::error!(plugin, version, ?fields, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        let mut counters = self.plugin.counters.lock().unwrap_or_else(PoisonError::into_inner);
        // Counter names become label values: a plugin gets a bounded number of them.
        let name = if counters.contains_key(&name)
            || (name.len() <= MAX_COUNTER_NAME_BYTES && counters.len() < MAX_COUNTERS - 1)
        {
            name
        } else {
            OTHER_COUNTER.to_owned()
        };
        let labels =
            crate::telemetry::metrics::PluginCounterLabels { plugin: self.plugin.name.clone(), name: name.clone() };
        crate::telemetry::metrics::metrics().plugin_counters.get_or_create(&labels).inc_by(delta);
        *counters.entry(name).or_default() += delta;
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.plugin.grants.config.get(&key).cloned()
    }
}

/// Distinct counter names one plugin version may use; later names count under
/// [`OTHER_COUNTER`].
pub const MAX_COUNTERS: usize = 64;
/// Longer counter names count under [`OTHER_COUNTER`].
pub const MAX_COUNTER_NAME_BYTES: usize = 64;
pub const OTHER_COUNTER: &str = "_other";

/// Who a plugin version is, for host imports and messages.
#[derive(Debug)]
struct Identity {
    name: String,
    version: String,
    grants: Grants,
    counters: Mutex<HashMap<String, u64>>,
    /// Failed calls by kind (`timeout`, `memory`, …).
    failures: Mutex<HashMap<&'static str, u64>>,
}

struct Instance {
    store: Store<HostState>,
    bindings: Plugin,
}

/// Idle instances kept per plugin version.
const POOL_SIZE: usize = 16;

/// One version of one plugin, ready to call.
pub struct LoadedPlugin {
    /// Whether this plugin has called a WASI function that blocks on tokio (stdio, …), so its
    /// calls must leave the runtime worker first.
    blocking_io: std::sync::atomic::AtomicBool,
    identity: Arc<Identity>,
    engine: Engine,
    threads: PluginThreads,
    pre: PluginPre<HostState>,
    info: Info,
    idle: Mutex<Vec<Instance>>,
    admission: Arc<Admission>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.identity.name)
            .field("version", &self.identity.version)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Links a compiled component against the plugin world, checks it fits (imports only what
    /// Sluice offers, exports every hook with the right types), and asks it to describe itself.
    pub fn new(
        engine: &PluginEngine,
        linker: &Linker<HostState>,
        component: &Component,
        name: &str,
        version: &str,
        grants: Grants,
    ) -> Result<Self, String> {
        let pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let pre = PluginPre::new(pre).map_err(|e| format!("the component does not export the plugin world: {e:#}"))?;
        let grants_admission = grants.admission;
        let identity = Arc::new(Identity {
            name: name.into(),
            version: version.into(),
            grants,
            counters: Mutex::default(),
            failures: Mutex::default(),
        });
        let mut plugin = Self {
            blocking_io: std::sync::atomic::AtomicBool::new(false),
            identity,
            engine: engine.engine.clone(),
            threads: engine.threads.clone(),
            pre,
            info: Info { name: String::new(), version: String::new(), hooks: Hooks::empty() },
            idle: Mutex::default(),
            admission: Admission::new(name, grants_admission),
        };
        plugin.info = plugin
            .admit()
            .and_then(|permit| plugin.call(permit, "describe", |p, store| p.call_describe(store), |_| Ok(())))
            .map_err(|e| e.to_string())?;
        Ok(plugin)
    }

    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// The content hash this version goes by.
    pub fn version(&self) -> &str {
        &self.identity.version
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &Info {
        &self.info
    }

    pub fn implements(&self, hook: Hooks) -> bool {
        self.info.hooks.contains(hook)
    }

    /// Failed calls of this version, by kind.
    pub fn failures(&self) -> HashMap<&'static str, u64> {
        self.identity.failures.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Counters the plugin has added to through `counter-add`.
    pub fn counters(&self) -> HashMap<String, u64> {
        self.identity.counters.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The circuit breaker's state and the calls running now.
    pub fn circuit(&self) -> CircuitStatus {
        self.admission.status()
    }

    /// Produce path: one action per event. Runs on the caller's thread: async callers use
    /// [`Self::produce`].
    pub fn on_produce(&self, events: &[Event]) -> Result<Vec<Action>, PluginError> {
        self.admit().and_then(|permit| self.produce_admitted(permit, events))
    }

    /// Consume path: one delivery decision per event.
    pub fn on_consume(&self, events: &[Event]) -> Result<Vec<Delivery>, PluginError> {
        self.admit().and_then(|permit| self.consume_admitted(permit, events))
    }

    /// A failed delivery: what to do next.
    pub fn on_failure(&self, failure: &Failure) -> Result<Decision, PluginError> {
        self.admit().and_then(|permit| self.failure_admitted(permit, failure))
    }

    /// [`Self::on_produce`] on one of the plugin threads (see [`PluginThreads`]). `events` come
    /// back with the answer.
    pub async fn produce(self: &Arc<Self>, events: Vec<Event>) -> (Vec<Event>, Result<Vec<Action>, PluginError>) {
        self.off_thread(events, |plugin, permit, events| plugin.produce_admitted(permit, events)).await
    }

    /// [`Self::on_consume`] on one of the plugin threads.
    pub async fn consume(self: &Arc<Self>, events: Vec<Event>) -> (Vec<Event>, Result<Vec<Delivery>, PluginError>) {
        self.off_thread(events, |plugin, permit, events| plugin.consume_admitted(permit, events)).await
    }

    /// [`Self::on_failure`] on one of the plugin threads.
    pub async fn failure(self: &Arc<Self>, failure: Failure) -> Result<Decision, PluginError> {
        let (_, decision) = self
            .off_thread(vec![failure], |plugin, permit, failure| plugin.failure_admitted(permit, &failure[0]))
            .await;
        decision
    }

    fn produce_admitted(&self, permit: Permit, events: &[Event]) -> Result<Vec<Action>, PluginError> {
        self.call(
            permit,
            "produce",
            |p, store| p.call_on_produce(store, events),
            |actions| {
                self.check_count(actions.len(), events.len())
                    .and_then(|()| self.check_size(actions.iter().map(action_size).sum()))
            },
        )
    }

    fn consume_admitted(&self, permit: Permit, events: &[Event]) -> Result<Vec<Delivery>, PluginError> {
        self.call(
            permit,
            "consume",
            |p, store| p.call_on_consume(store, events),
            |decisions| self.check_count(decisions.len(), events.len()),
        )
    }

    fn failure_admitted(&self, permit: Permit, failure: &Failure) -> Result<Decision, PluginError> {
        self.call(permit, "failure", |p, store| p.call_on_failure(store, failure), |_| Ok(()))
    }

    /// Admission is decided here, on the caller's thread, so that a call the concurrency cap or
    /// the circuit breaker refuses is answered at once, without waiting for a plugin thread.
    async fn off_thread<T: Send + Sync + 'static, R: Send + 'static>(
        self: &Arc<Self>,
        input: Vec<T>,
        call: fn(&Self, Permit, &[T]) -> Result<R, PluginError>,
    ) -> (Vec<T>, Result<R, PluginError>) {
        let permit = match self.admit() {
            Ok(permit) => permit,
            Err(refused) => return (input, Err(refused)),
        };
        // Shared with the task so it comes back whatever happens to the task.
        let input = Arc::new(input);
        let (plugin, task_input) = (self.clone(), input.clone());
        let joined = self.threads.run(move || call(&plugin, permit, &task_input)).await;
        let result = joined.unwrap_or_else(|error| {
            Err(self
                .failed(PluginError::Trap { plugin: self.label(), message: format!("the call's task ended: {error}") }))
        });
        // The task is gone (finished, panicked or cancelled), so this is the last reference.
        (Arc::into_inner(input).unwrap_or_default(), result)
    }

    /// Calls of the host's plugins whose thread was lowered for using too much CPU.
    #[cfg(test)]
    pub(super) fn lowered_calls(&self) -> u64 {
        self.threads.lowered()
    }

    /// A claim on one of the plugin's call slots, or why there is none (the concurrency cap, the
    /// open circuit).
    fn admit(&self) -> Result<Permit, PluginError> {
        self.admission.admit().map_err(|refusal| {
            let plugin = self.label();
            self.failed(match refusal {
                Refusal::Busy { limit } => PluginError::Busy { plugin, limit },
                Refusal::Open { retry_after } => PluginError::CircuitOpen {
                    plugin,
                    retry_after_ms: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
                },
            })
        })
    }

    fn check_count(&self, got: usize, expected: usize) -> Result<(), PluginError> {
        if got == expected {
            Ok(())
        } else {
            Err(PluginError::BadOutput {
                plugin: self.label(),
                message: format!("{got} decisions for {expected} events"),
            })
        }
    }

    fn check_size(&self, bytes: usize) -> Result<(), PluginError> {
        let limit = self.identity.grants.max_output_bytes;
        if bytes <= limit {
            Ok(())
        } else {
            Err(PluginError::BadOutput {
                plugin: self.label(),
                message: format!("answered with {bytes} bytes, over its limit of {limit}"),
            })
        }
    }

    fn label(&self) -> String {
        format!("{}@{}", self.identity.name, self.identity.version)
    }

    /// Runs `f` on a pooled (or fresh) instance under the time limit, with the claim `permit` gave;
    /// a failed instance is dropped, a good one goes back to the pool. `verify` checks the
    /// answer; its refusal counts as a failed call.
    ///
    /// Runs on the caller's thread: a plugin thread for the gateway's calls (`off_thread`), the
    /// caller's own for `sluice plugin test`. When a plugin does I/O that WASI implements by
    /// blocking on tokio, that panics on a runtime worker: the batch is then run again on a fresh
    /// instance outside the runtime, and so are this plugin's later calls.
    fn call<R>(
        &self,
        permit: Permit,
        hook: &'static str,
        f: impl Fn(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
        verify: impl FnOnce(&R) -> Result<(), PluginError>,
    ) -> Result<R, PluginError> {
        let started = std::time::Instant::now();
        let result = self.call_timed(f).and_then(|answer| match verify(&answer) {
            Ok(()) => Ok(answer),
            Err(error) => Err(self.failed(error)),
        });
        permit.record(result.is_err());
        let (plugin, version) = (self.identity.name.clone(), self.identity.version.clone());
        let metrics = crate::telemetry::metrics::metrics();
        let labels = crate::telemetry::metrics::PluginLabels { plugin: plugin.clone(), version: version.clone() };
        metrics.plugin_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        metrics
            .plugin_calls
            .get_or_create(&crate::telemetry::metrics::PluginCallLabels { plugin, version, hook })
            .inc();
        result
    }

    fn call_timed<R>(
        &self,
        f: impl Fn(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        use std::sync::atomic::Ordering;
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        self.arm(&mut instance);
        let outcome = if self.blocking_io.load(Ordering::Relaxed) {
            off_runtime(|| f(&instance.bindings, &mut instance.store))
        } else {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&instance.bindings, &mut instance.store)))
            {
                Ok(outcome) => outcome,
                Err(panic) if on_multi_thread_runtime() => {
                    tracing::info!(
                        plugin = self.identity.name,
                        version = self.identity.version,
                        "plugin does blocking WASI I/O; its calls now leave the async runtime first"
                    );
                    self.blocking_io.store(true, Ordering::Relaxed);
                    drop(panic);
                    instance = self.instantiate()?;
                    self.arm(&mut instance);
                    off_runtime(|| f(&instance.bindings, &mut instance.store))
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        };
        match outcome {
            Ok(result) => {
                if instance.store.data().limits.near_limit() {
                    tracing::debug!(
                        plugin = self.identity.name,
                        version = self.identity.version,
                        memory_bytes = instance.store.data().limits.grown_bytes,
                        "instance retired near its memory limit; the next call gets a fresh one"
                    );
                    return Ok(result);
                }
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < POOL_SIZE {
                    idle.push(instance);
                }
                Ok(result)
            }
            Err(error) => {
                let failure = self.classify(&error, instance.store.data().limits.refused);
                // A trapped instance cannot be entered again.
                drop(instance);
                Err(self.failed(failure))
            }
        }
    }

    /// Counts and logs a failed call.
    fn failed(&self, failure: PluginError) -> PluginError {
        *self.identity.failures.lock().unwrap_or_else(PoisonError::into_inner).entry(failure.kind()).or_default() += 1;
        let labels = crate::telemetry::metrics::PluginFailureLabels {
            plugin: self.identity.name.clone(),
            version: self.identity.version.clone(),
            kind: failure.kind(),
        };
        crate::telemetry::metrics::metrics().plugin_failures.get_or_create(&labels).inc();
        tracing::warn!(
            plugin = self.identity.name,
            version = self.identity.version,
            kind = failure.kind(),
            error = %failure,
            "plugin call failed"
        );
        failure
    }

    /// Sets the call's time limit: its whole number of epoch ticks, plus one as the first may end
    /// at once (the epoch thread ticks on its own). The deadline is set one tick at a time, so
    /// that a long call's CPU use is looked at on every tick (see `deadline_passed`).
    fn arm(&self, instance: &mut Instance) {
        arm(&mut instance.store, self.identity.grants.timeout);
    }

    fn classify(&self, error: &wasmtime::Error, memory_refused: bool) -> PluginError {
        let plugin = self.label();
        let grants = &self.identity.grants;
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                PluginError::Timeout { plugin, limit_ms: u64::try_from(grants.timeout.as_millis()).unwrap_or(u64::MAX) }
            }
            _ if memory_refused => PluginError::Memory { plugin, limit_bytes: grants.memory_bytes },
            Some(trap) => PluginError::Trap { plugin, message: format!("{trap}") },
            None => PluginError::Trap { plugin, message: format!("{error:#}") },
        }
    }

    fn instantiate(&self) -> Result<Instance, PluginError> {
        let grants = &self.identity.grants;
        let wasi =
            wasi_context(grants).map_err(|message| PluginError::Instantiate { plugin: self.label(), message })?;
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: Limits { memory_bytes: grants.memory_bytes, refused: false, grown_bytes: 0 },
            plugin: self.identity.clone(),
            clock: CallClock::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let nice = self.threads.nice();
        store.epoch_deadline_callback(move |mut store| Ok(deadline_passed(&mut store.data_mut().clock, nice)));
        // Instantiation runs the component's start code: it gets the same time limit.
        arm(&mut store, grants.timeout);
        let bindings = off_runtime(|| self.pre.instantiate(&mut store)).map_err(|error| {
            let memory_refused = store.data().limits.refused;
            match self.classify(&error, memory_refused) {
                PluginError::Trap { plugin, message } => PluginError::Instantiate { plugin, message },
                other => other,
            }
        })?;
        Ok(Instance { store, bindings })
    }
}

fn arm(store: &mut Store<HostState>, timeout: Duration) {
    let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
    store.data_mut().clock =
        CallClock { ticks_left: u64::try_from(ticks).unwrap_or(u64::MAX), cpu_at_first_tick: None };
    store.set_epoch_deadline(1);
}

/// Called at every epoch tick while a call runs: stops it once its time limit has passed, and
/// lowers its thread's priority once it has used [`CPU_BEFORE_LOWERED`] since its first tick. CPU
/// time, not time: on a busy machine a quick call can take a while to finish without using the
/// CPU, and lowering it would make it wait longer still.
fn deadline_passed(clock: &mut CallClock, nice: u8) -> UpdateDeadline {
    if clock.ticks_left == 0 {
        return UpdateDeadline::Interrupt;
    }
    clock.ticks_left -= 1;
    let now = thread_cpu_time();
    match clock.cpu_at_first_tick {
        None => clock.cpu_at_first_tick = Some(now),
        Some(first) if now.saturating_sub(first) >= CPU_BEFORE_LOWERED => demote_current_thread(nice),
        Some(_) => {}
    }
    UpdateDeadline::Continue(1)
}

/// Runs a plugin call where WASI's synchronous host functions may block on a tokio runtime of
/// their own (they do for stdio, for instance): on a multi-threaded runtime's worker that needs
/// `block_in_place`, which also tells tokio to move other tasks off this thread meanwhile. It
/// costs: measured, a no-op plugin took 20% off batch throughput with it and 6% without, so it
/// is only used for plugins that turned out to do such I/O (see `LoadedPlugin::call`).
/// Callers must not be on a current-thread runtime.
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The linker every plugin is checked and instantiated against: WASI 0.2 (its capabilities
/// granted per plugin through the context) and Sluice's host interface.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
    Ok(linker)
}

fn wasi_context(grants: &Grants) -> Result<WasiCtx, String> {
    let mut builder = WasiCtxBuilder::new();
    for (key, value) in &grants.env {
        builder.env(key, value);
    }
    if grants.stdio {
        builder.inherit_stdout().inherit_stderr();
    }
    if grants.network {
        builder.inherit_network().allow_ip_name_lookup(true);
    }
    for (guest, host) in &grants.dirs {
        builder
            .preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| format!("cannot open {host} for the plugin: {e}"))?;
    }
    Ok(builder.build())
}

fn changes_size(changes: &bindings::Changes) -> usize {
    changes.value.as_ref().map_or(0, Vec::len)
        + changes.key.as_ref().map_or(0, Vec::len)
        + changes.headers.as_ref().map_or(0, |h| h.iter().map(|h| h.key.len() + h.value.len()).sum())
}

fn event_size(event: &Event) -> usize {
    event.topic.len()
        + event.value.len()
        + event.key.as_ref().map_or(0, Vec::len)
        + event.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()
}

fn action_size(action: &Action) -> usize {
    match action {
        Action::Accept => 0,
        Action::Modify(changes) => changes_size(changes),
        Action::Drop(reason) | Action::Reject(reason) | Action::DeadLetter(reason) => reason.len(),
        Action::Reroute(to) => to.topic.len() + to.changes.as_ref().map_or(0, changes_size),
        Action::FanOut(events) => events.iter().map(event_size).sum(),
    }
}
