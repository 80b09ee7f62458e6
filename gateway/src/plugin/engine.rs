//! The wasmtime engine shared by every plugin, with its limits set in one place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; a call's time limit is a whole number of these.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The default of `plugin_host.nice`: the most Linux allows, so that a plugin spinning until its
/// time limit gets little CPU whenever the threads serving requests want it. Calls that finish
/// are no slower when the machine has CPU to spare; the scheduler only decides who waits when it
/// has not.
pub const DEFAULT_NICE: u8 = 19;

/// Engine-wide limits: the pool's capacity and the most memory any plugin may be given.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Plugin instances alive at once (pooled and in use), across all plugins.
    pub max_instances: u32,
    /// The most linear memory one instance may have; per-plugin limits are at most this.
    pub max_memory_bytes: usize,
    /// How much lower than the gateway's the plugin threads' CPU priority is (Linux nice
    /// increment, 0–19; 0 keeps them equal).
    pub nice: u8,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self { max_instances: 256, max_memory_bytes: 256 << 20, nice: DEFAULT_NICE }
    }
}

/// The engine, the threads plugin calls run on and the thread that advances the epoch (stopped
/// on drop).
#[derive(Debug)]
pub struct PluginEngine {
    pub engine: Engine,
    pub threads: PluginThreads,
    stop: Arc<AtomicBool>,
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    pub fn new(limits: EngineLimits) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Component-model async is not used; without it calls cost about half (measured:
            // 0.7 → 0.27 µs for an empty call).
            .concurrency_support(false);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust component is a few core instances (the module plus wit-component's shims),
        // one memory and a couple of tables.
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 8)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances * 4)
            .total_stacks(limits.max_instances)
            .max_core_instances_per_component(32)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(limits.max_memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker, stopped) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sluice-plugin-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
        let threads = PluginThreads::new(limits.nice)
            .map_err(|e| wasmtime::format_err!("cannot start the plugin threads: {e}"))?;
        Ok(Self { engine, threads, stop })
    }
}

/// How long a plugin thread with nothing to do waits for another call before it ends.
const THREAD_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The threads plugin calls run on: a blocking pool of their own, so that a plugin running up to
/// its time limit holds none of the threads that serve requests and deliveries, at a lower CPU
/// priority (on Linux), so that plugins keeping every core busy do not slow those threads down.
/// The pool lives while any loaded plugin does.
#[derive(Debug, Clone)]
pub struct PluginThreads(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    handle: tokio::runtime::Handle,
    /// Only taken on drop: a runtime dropped on an async thread must be shut down in the
    /// background.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PluginThreads {
    fn new(nice: u8) -> std::io::Result<Self> {
        // The runtime is here for its blocking pool (threads started on demand, kept a while
        // idle); its one worker thread has nothing to do. Timers and I/O are enabled because
        // WASI's blocking calls (stdio) run on tokio.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-plugin")
            // What a thread frees stays in its allocator cache (mimalloc's per-thread heap) while
            // it lives; after a burst of calls — a flood of memory-hungry ones, say — idle threads
            // end soon, so that memory goes back to the system within seconds (tokio's default
            // keeps them 10 s).
            .thread_keep_alive(THREAD_KEEP_ALIVE)
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self(Arc::new(Pool { handle: runtime.handle().clone(), runtime: Some(runtime) })))
    }

    /// Runs `f` on one of the plugin threads.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, tokio::task::JoinError> {
        self.0.handle.spawn_blocking(f).await
    }
}

/// Raises the calling thread's nice value by `nice`: on Linux it is a property of each thread
/// (`setpriority(PRIO_PROCESS, 0, …)` changes the calling thread only).
#[cfg(target_os = "linux")]
fn lower_priority(nice: u8) {
    if nice == 0 {
        return;
    }
    let raised = rustix::process::getpriority_process(None).map(|current| (current + i32::from(nice)).min(19));
    if let Err(error) = raised.and_then(|value| rustix::process::setpriority_process(None, value)) {
        tracing::warn!(%error, "cannot lower a plugin thread's CPU priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: u8) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::PluginThreads;

    #[tokio::test]
    async fn plugin_calls_run_at_a_lower_cpu_priority() {
        let ours = rustix::process::getpriority_process(None).unwrap();
        let threads = PluginThreads::new(5).unwrap();
        let theirs = threads.run(|| rustix::process::getpriority_process(None).unwrap()).await.unwrap();
        assert_eq!(theirs, (ours + 5).min(19), "the plugin thread's nice value");
        let unchanged = PluginThreads::new(0).unwrap();
        assert_eq!(unchanged.run(|| rustix::process::getpriority_process(None).unwrap()).await.unwrap(), ours);
        // The threads serving requests keep theirs.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), ours);
    }
}
