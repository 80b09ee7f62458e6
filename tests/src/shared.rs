//! One instance of a service per test process: started on first use, on a
//! thread and runtime of its own, so that it is tied to no single test.

use std::sync::OnceLock;

use anyhow::anyhow;
use tokio::runtime::{Handle, RuntimeFlavor};

/// The service in `cell`, started by `start` if this is the first call.
///
/// A failed start is remembered, so that every test reports it at once
/// instead of each waiting for its own timeout.
///
/// # Panics
/// If the service could not start; it is a precondition of the test.
#[track_caller]
pub(crate) fn get_or_start<T, F>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    start: impl FnOnce() -> F + Send + 'static,
) -> &'static T
where
    T: Send + Sync + 'static,
    F: Future<Output = anyhow::Result<T>>,
{
    let result = match cell.get() {
        Some(result) => result,
        None => {
            let init = || cell.get_or_init(|| start_detached(start).map_err(|e| format!("{e:#}")));
            // Waiting blocks this thread; a multi-thread runtime can move
            // its other tasks elsewhere meanwhile if told so. A
            // current-thread runtime has nowhere to move them (and
            // `block_in_place` panics there).
            match Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(init),
                _ => init(),
            }
        }
    };
    match result {
        Ok(service) => service,
        Err(error) => panic!("the shared {what} could not start: {error}"),
    }
}

/// Runs `start` to completion on a new thread with a runtime of its own.
fn start_detached<T, F>(start: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>>,
{
    std::thread::Builder::new()
        .name("sluice-start".into())
        .spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(start()))?
        .join()
        .map_err(|_| anyhow!("the thread starting it panicked"))?
}
