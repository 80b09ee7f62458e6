//! The real-services test harness: an Apache Kafka broker, an Apicurio
//! schema registry and a Python venv with Confluent's client, each assembled
//! once into a shared cache and started on free ports for a test process.
//!
//! Integration tests use [`Kafka::shared`] and [`Apicurio::shared`] (one
//! instance per test binary, started on first use) or [`Kafka::start`] for a
//! broker of their own, typically a fault test that kills it:
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_tests::{Kafka, consume_all, unique_name};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let kafka = Kafka::shared();
//! let topic = unique_name("orders");
//! kafka.create_topic(&topic, 3, &[("retention.ms", "3600000")]).await?;
//! // ... drive the gateway ...
//! let records = consume_all(&kafka.bootstrap_servers(), &topic, 10, Duration::from_secs(30)).await?;
//! assert_eq!(records.len(), 10);
//! # Ok(())
//! # }
//! ```
//!
//! Everything that waits is `async` (tokio); only the `shared()` accessors
//! block, so that they can hand out a `&'static` from anywhere.
//!
//! Environment:
//! - `SLUICE_CACHE_DIR`: where the Kafka jars, Apicurio and the venv are
//!   kept (default `$HOME/.cache/sluice`).
//! - `SLUICE_TEST_KAFKA`: bootstrap servers of an already running broker
//!   that [`Kafka::shared`] uses instead of starting one.
//! - `SLUICE_TEST_APICURIO`: Confluent-compatible base URL of a running
//!   registry that [`Apicurio::shared`] uses instead of starting one.
//! - `SLUICE_TEST_KEEP_DIRS`: keep the scratch directories (data and logs)
//!   of the services under `$TMPDIR/sluice-tests/` after the tests.

mod apicurio;
pub mod avrogen;
pub mod bench;
mod cache;
mod gateway;
mod kafka;
mod plugins;
mod process;
mod python;
pub mod receiver;
mod shared;

pub use apicurio::Apicurio;
pub use cache::cache_dir;
pub use gateway::{GatewayProcess, debug_binary};
pub use kafka::{Isolation, Kafka, SASL_USERS, consume_all, read_to_end};
pub use plugins::{plugin_component, plugin_wasm};
pub use python::python;

/// The shell commands in README.md's fenced block after `<!-- readme-test: NAME -->`, so tests
/// run the README's examples as written.
///
/// # Panics
/// If the README or the block is missing: the test's premise.
pub fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let marker = format!("<!-- readme-test: {name} -->");
    let after = &readme[readme.find(&marker).expect("marker in README") + marker.len()..];
    let body = &after[after.find("```sh\n").expect("a sh block") + 6..];
    body[..body.find("```").expect("block end")].to_owned()
}

/// How long an integration test may run before [`deadline`] fails it.
pub const TEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Fails the test binary if the calling test is still running [`TEST_DEADLINE`] from now: a hung
/// broker, a lost wake-up or a deadlock must fail CI with the test's name, not stall it. Every
/// integration test starts with `let _deadline = sluice_tests::deadline();` (a test in
/// `tests/tests/harness.rs` checks that each one does). The deadline ends when the guard drops.
#[must_use = "the deadline is over as soon as the guard is dropped"]
pub fn deadline() -> Deadline {
    deadline_of(TEST_DEADLINE)
}

/// [`deadline`] with a limit of its own, for tests that run long on purpose.
#[must_use = "the deadline is over as soon as the guard is dropped"]
pub fn deadline_of(limit: std::time::Duration) -> Deadline {
    use std::sync::{Arc, Condvar, Mutex};
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let watched = done.clone();
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    std::thread::spawn(move || {
        let (lock, ended) = &*watched;
        let finished = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (finished, _) = ended
            .wait_timeout_while(finished, limit, |finished| !*finished)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*finished {
            eprintln!("\nsluice-tests: '{test}' passed its deadline of {} s; failing the test run", limit.as_secs());
            std::process::exit(101);
        }
    });
    Deadline { done }
}

/// Ends a test's deadline when dropped.
#[derive(Debug)]
pub struct Deadline {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let (lock, ended) = &*self.done;
        *lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        ended.notify_all();
    }
}

/// A name no other test has used, for topics and subjects on a shared
/// broker or registry: `<prefix>-<32 hex digits>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
