//! The wasmtime engine shared by every plugin, with its limits set in one place.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; a call's time limit is a whole number of these.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The default of `plugin_host.nice`: the most Linux allows, so that a plugin call spinning
/// towards its time limit gets little CPU whenever the threads serving requests want it. Calls
/// that use less than a tick of CPU keep the gateway's priority (lowering every call made healthy
/// plugins' calls wait behind everything else on a busy machine, until their concurrency cap
/// refused calls); a lowered call is no slower while the machine has CPU to spare.
pub const DEFAULT_NICE: u8 = 19;

/// Engine-wide limits: the pool's capacity and the most memory any plugin may be given.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Plugin instances alive at once (pooled and in use), across all plugins.
    pub max_instances: u32,
    /// The most linear memory one instance may have; per-plugin limits are at most this.
    pub max_memory_bytes: usize,
    /// How much lower than the gateway's a plugin call's CPU priority becomes once it has used
    /// [`CPU_BEFORE_LOWERED`] (Linux nice increment, 0–19; 0 never lowers it).
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

/// The threads plugin calls run on, so that a plugin running up to its time limit holds none of
/// the threads that serve requests and deliveries. A call starts at the gateway's CPU priority;
/// once it has used [`CPU_BEFORE_LOWERED`] of CPU (see [`demote_current_thread`]) its thread's
/// priority is lowered (Linux nice), so plugins spinning on every core leave the CPU to the threads serving
/// requests, while quick calls are never the last to be scheduled. An unprivileged process cannot
/// raise a thread's priority again, so a lowered thread ends after its call; a new one starts on
/// demand. Threads also end after [`THREAD_KEEP_ALIVE`] idle, which gives what their allocator
/// cache holds back to the system. The pool lives while any loaded plugin does.
#[derive(Debug, Clone)]
pub struct PluginThreads(Arc<Pool>);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
struct Pool {
    nice: u8,
    /// Entered by every plugin thread: WASI's synchronous host functions (stdio) block on tokio.
    handle: tokio::runtime::Handle,
    /// Only taken on drop: a runtime dropped on an async thread must be shut down in the
    /// background.
    runtime: Option<tokio::runtime::Runtime>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Calls whose thread was lowered.
    lowered: Arc<AtomicU64>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job and not yet woken for one.
    idle: usize,
    /// Threads woken for a job that have not yet woken up.
    woken: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("jobs", &self.jobs.len())
            .field("idle", &self.idle)
            .field("woken", &self.woken)
            .finish()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A plugin call's thread panicked: the call has no answer.
#[derive(Debug, thiserror::Error)]
#[error("the plugin thread running the call panicked")]
pub struct ThreadLost;

thread_local! {
    /// On a plugin thread, its pool's count of lowered calls (only plugin threads are lowered).
    static PLUGIN_THREAD: std::cell::RefCell<Option<Arc<AtomicU64>>> = const { std::cell::RefCell::new(None) };
    /// Whether this thread's priority has been lowered.
    static DEMOTED: Cell<bool> = const { Cell::new(false) };
}

impl PluginThreads {
    fn new(nice: u8) -> std::io::Result<Self> {
        // The runtime gives the threads a tokio context; its one worker has nothing to do.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-plugin-io")
            .enable_all()
            .build()?;
        Ok(Self(Arc::new(Pool {
            nice,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            lowered: Arc::new(AtomicU64::new(0)),
        })))
    }

    /// How much lower a lowered plugin thread's priority is.
    pub fn nice(&self) -> u8 {
        self.0.nice
    }

    /// Calls whose thread was lowered so far.
    pub fn lowered(&self) -> u64 {
        self.0.lowered.load(Ordering::Relaxed)
    }

    /// Runs `f` on one of the plugin threads.
    pub async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, ThreadLost> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // `f` (and what it holds) is gone before the answer is sent, panic or not.
            if let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                let _ = answer.send(result);
            }
        });
        let start_one = {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.jobs.push_back(job);
            if queue.idle > 0 {
                queue.idle -= 1;
                queue.woken += 1;
                self.0.wake.notify_one();
                false
            } else {
                true
            }
        };
        if start_one {
            let pool = self.0.clone();
            let spawned = std::thread::Builder::new().name("sluice-plugin".into()).spawn(move || pool.work());
            if let Err(error) = spawned {
                // Out of threads: tokio's blocking pool takes the call instead.
                tracing::warn!(%error, "cannot start a plugin thread");
                let pool = self.0.clone();
                drop(self.0.handle.spawn_blocking(move || {
                    let job = pool.queue.lock().unwrap_or_else(PoisonError::into_inner).jobs.pop_front();
                    if let Some(job) = job {
                        job();
                    }
                }));
            }
        }
        answered.await.map_err(|_| ThreadLost)
    }
}

impl Pool {
    /// A plugin thread: takes calls until it has been idle for a while or its priority was
    /// lowered.
    fn work(self: Arc<Self>) {
        let _context = self.handle.enter();
        PLUGIN_THREAD.with(|lowered| *lowered.borrow_mut() = Some(self.lowered.clone()));
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                drop(queue);
                job();
                // A lowered thread ends: every queued call has a thread started or woken for it.
                if DEMOTED.with(Cell::get) {
                    return;
                }
                queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            queue.idle += 1;
            let (guard, waited) =
                self.wake.wait_timeout(queue, THREAD_KEEP_ALIVE).unwrap_or_else(PoisonError::into_inner);
            queue = guard;
            if queue.woken > 0 {
                // Whoever queued a job took one thread off `idle` and woke one: this is it (or a
                // thread woken spuriously stands in for it, and the other counts itself off).
                queue.woken -= 1;
            } else {
                queue.idle -= 1;
                if waited.timed_out() && queue.jobs.is_empty() {
                    return;
                }
            }
        }
    }
}

/// The CPU a plugin call may use at the gateway's priority, counted from its first epoch tick,
/// before its thread is lowered.
pub const CPU_BEFORE_LOWERED: Duration = EPOCH_TICK;

/// The CPU time the calling thread has used (zero where it cannot be read).
pub fn thread_cpu_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Duration::ZERO
    }
}

/// Lowers the calling plugin thread's CPU priority by its pool's `nice` for the rest of its
/// life (the thread ends after its call). Called when a call has used its CPU at the gateway's
/// priority; does nothing on other threads (a plugin instantiated on a request's thread, say).
pub fn demote_current_thread(nice: u8) {
    if DEMOTED.with(Cell::get) {
        return;
    }
    let Some(lowered) = PLUGIN_THREAD.with(|lowered| lowered.borrow().clone()) else { return };
    DEMOTED.with(|flag| flag.set(true));
    lowered.fetch_add(1, Ordering::Relaxed);
    lower_priority(nice);
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
    use super::{PluginThreads, demote_current_thread};

    fn priority() -> i32 {
        rustix::process::getpriority_process(None).expect("getpriority")
    }

    #[tokio::test]
    async fn a_call_that_runs_long_continues_at_a_lower_cpu_priority_on_a_thread_that_then_ends() {
        let ours = priority();
        let threads = PluginThreads::new(5).unwrap();
        // A quick call keeps the gateway's priority.
        let quick = threads.run(priority).await.unwrap();
        assert_eq!(quick, ours);
        // One that ran past its first tick is lowered for the rest of the call.
        let (before, after, long_thread) = threads
            .run(|| {
                let before = priority();
                demote_current_thread(5);
                (before, priority(), std::thread::current().id())
            })
            .await
            .unwrap();
        assert_eq!((before, after), (ours, (ours + 5).min(19)), "the long call's priority before and after");
        // The lowered thread is not used again: the next call runs at the gateway's priority.
        let (next, next_thread) = threads.run(|| (priority(), std::thread::current().id())).await.unwrap();
        assert_eq!(next, ours);
        assert_ne!(next_thread, long_thread);
        // Threads serving requests are never lowered, even when a plugin runs long on one.
        demote_current_thread(5);
        assert_eq!(priority(), ours);
        let unchanged = PluginThreads::new(0).unwrap();
        assert_eq!(
            unchanged
                .run(|| {
                    demote_current_thread(0);
                    priority()
                })
                .await
                .unwrap(),
            ours
        );
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error_and_the_threads_go_on() {
        let threads = PluginThreads::new(5).unwrap();
        let lost = threads.run(|| -> u32 { panic!("a host function bug") }).await;
        assert!(lost.is_err());
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_at_once_each_get_a_thread() {
        let threads = PluginThreads::new(5).unwrap();
        // Four calls that each wait for all four to be running: they finish only if no call
        // waits behind another for a thread.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let calls = (0..4).map(|_| {
            let barrier = barrier.clone();
            let threads = threads.clone();
            tokio::spawn(async move { threads.run(move || barrier.wait().is_leader()).await.unwrap() })
        });
        let leaders = futures::future::join_all(calls).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
        assert_eq!(leaders, 1);
    }
}
