//! Child processes of the harness: forked so that they die with the test
//! process, logged to a file, watched for readiness, signalled to stop; plus
//! the free ports and scratch directories they run with.

use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Once, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

/// How many lines of a service's log an error quotes.
const TAIL_LINES: usize = 40;

/// How often readiness and exit are re-checked. Polling, not a fixed sleep:
/// a service is used as soon as it proves ready.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it gets SIGKILL when the test process dies, even by
/// SIGKILL itself, when no destructor runs.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
/// not the process. Tokio's blocking threads and the threads that start the
/// shared services come and go, so every child is forked by one thread that
/// lives as long as the process.
fn spawn(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        // The loop never ends: the static sender is never dropped.
        std::thread::Builder::new()
            .name("sluice-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in incoming {
                    die_with_this_thread(&mut cmd);
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("the OS refused to start the harness's spawner thread");
        requests
    });
    let gone = || io::Error::other("the harness's spawner thread is gone");
    let (reply, spawned) = mpsc::channel();
    spawner.send((cmd, reply)).map_err(|_| gone())?;
    spawned.recv().map_err(|_| gone())?
}

/// Makes the child of `cmd` receive SIGKILL when the forking thread exits.
#[allow(unsafe_code)]
fn die_with_this_thread(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before exec, where only
    // async-signal-safe functions may be called; it calls just the prctl and
    // getppid system calls and allocates nothing, not even for its errors.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If the parent died before prctl took effect, nobody will
            // send the signal: give up rather than run orphaned.
            if u32::try_from(libc::getppid()) != Ok(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Asks `child` to shut down cleanly. std only offers SIGKILL.
#[allow(unsafe_code)]
fn sigterm(child: &Child) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions. The caller has not
    // reaped `child`, so its pid cannot have been reused by another process.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `cmd` to completion (blocking); on failure the error quotes the end
/// of its output.
pub(crate) fn run(what: &str, mut cmd: Command) -> anyhow::Result<()> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let output = spawn(cmd).and_then(Child::wait_with_output).with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        bail!(
            "{what} failed ({}); last {TAIL_LINES} lines of its output:\n{}",
            output.status,
            last_lines(&text, TAIL_LINES)
        );
    }
    Ok(())
}

/// A long-running service: its child process and the file that collects
/// its stdout and stderr. Dropping it kills the process.
#[derive(Debug)]
pub(crate) struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        let child = spawn(cmd).with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child, log: log.to_owned() })
    }

    /// Polls `probe` every `poll` until it answers true; fails, quoting the
    /// log, if the process exits first or `timeout` passes.
    pub(crate) async fn wait_ready(
        &mut self,
        timeout: Duration,
        poll: Duration,
        mut probe: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if probe().await? {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(format_args!("exited ({status}) before it was ready")));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format_args!("was not ready after {timeout:?}")));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The operating system's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Asks for a clean shutdown with SIGTERM, and kills the process if it
    /// has not exited after `grace`.
    pub(crate) async fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        sigterm(&self.child).with_context(|| format!("sending SIGTERM to {}", self.name))?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        eprintln!("sluice-tests: {} ignored SIGTERM for {grace:?}; killing it", self.name);
        self.kill()
    }

    /// SIGKILL, and reaps the process.
    pub(crate) fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.child.kill().with_context(|| format!("killing {}", self.name))?;
        Ok(self.child.wait()?)
    }

    /// An error saying that this service `problem`, with the tail of its log.
    pub(crate) fn failure(&self, problem: impl Display) -> anyhow::Error {
        let text = fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        anyhow!(
            "{} {problem}; last {TAIL_LINES} lines of {}:\n{}",
            self.name,
            self.log.display(),
            last_lines(&text, TAIL_LINES)
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Nothing useful to do about a failure here: the pdeathsig remains.
        let _ = self.kill();
    }
}

/// Watches a growing log file for a line, reading only what was appended.
#[derive(Debug)]
pub(crate) struct LogWatcher {
    file: File,
    buf: Vec<u8>,
    /// Everything before this in `buf` has been searched.
    scanned: usize,
}

impl LogWatcher {
    /// Watches `path` from its current end, so that an earlier run's line
    /// in the same file is not taken for this run's.
    pub(crate) fn from_end(path: &Path) -> anyhow::Result<Self> {
        let mut file = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self { file, buf: Vec::new(), scanned: 0 })
    }

    /// Whether `needle` has been written since the watch started.
    pub(crate) fn seen(&mut self, needle: &str) -> anyhow::Result<bool> {
        let needle = needle.as_bytes();
        self.file.read_to_end(&mut self.buf)?;
        let found = self.buf[self.scanned..].windows(needle.len()).any(|window| window == needle);
        // Keep an overlap, in case the needle was cut by the last write.
        self.scanned = self.buf.len().saturating_sub(needle.len());
        Ok(found)
    }
}

/// Runs `start`, which binds ports [`free_ports`] found, again (three times in all) when it
/// failed because another process took one of them before the service bound it: the broker, a
/// gateway or a test's own listener starting at the same moment (it happened to Apicurio's
/// port in a full run). Any other failure is returned at once.
pub(crate) async fn retry_if_port_taken<T>(
    what: &str,
    mut start: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    const ATTEMPTS: usize = 3;
    for attempt in 1.. {
        match start().await {
            Err(error) if attempt < ATTEMPTS && port_taken(&error) => {
                eprintln!("sluice-tests: {what} lost a port to another process (attempt {attempt}); starting again");
            }
            result => return result,
        }
    }
    unreachable!("the loop returns by its last attempt")
}

/// Whether a service's start failed on a port in use (the messages of Java's `BindException`,
/// Quarkus and the OS, as they appear in the service log quoted in the error).
fn port_taken(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    ["Address already in use", "seems to be in use by another process", "BindException"]
        .iter()
        .any(|marker| text.contains(marker))
}

/// `N` distinct free TCP ports on 127.0.0.1. All are held open until
/// all are found, so they differ; another process may still take one before
/// the service binds it: start services through [`retry_if_port_taken`].
pub(crate) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<io::Result<Vec<_>>>()
        .context("finding a free port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// A fresh scratch directory for one service instance, under
/// `$TMPDIR/sluice-tests/`, removed when dropped unless
/// `$SLUICE_TEST_KEEP_DIRS` is set (to read the logs of a failed test).
///
/// A shared service lives in a static and is never dropped, so its
/// directory outlives the test process; the name carries the pid so that a
/// later run can remove directories whose process is gone.
pub(crate) fn scratch_dir(kind: &str) -> anyhow::Result<tempfile::TempDir> {
    let root = std::env::temp_dir().join("sluice-tests");
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| sweep_dead(&root));
    let keep = std::env::var_os("SLUICE_TEST_KEEP_DIRS").is_some_and(|v| !v.is_empty());
    // "kept" takes the pid's place in the name, so no sweep removes it.
    let prefix =
        if keep { format!("{kind}-kept-{}-", std::process::id()) } else { format!("{kind}-{}-", std::process::id()) };
    tempfile::Builder::new()
        .prefix(&prefix)
        .disable_cleanup(keep)
        .tempdir_in(&root)
        .with_context(|| format!("creating a scratch directory in {}", root.display()))
}

/// Removes scratch directories left by test processes that no longer run.
fn sweep_dead(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.split('-').nth(1));
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            // Best effort: another process may be sweeping the same one.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_start_that_lost_its_port_runs_again_and_other_failures_do_not() {
        let mut calls = 0;
        let started = retry_if_port_taken("a service", async || {
            calls += 1;
            if calls == 1 {
                anyhow::bail!("exited before it was ready; log: Port 40565 seems to be in use by another process.")
            }
            Ok(calls)
        })
        .await;
        assert_eq!(started.ok(), Some(2));

        let mut calls = 0;
        let failed: anyhow::Result<()> = retry_if_port_taken("a service", async || {
            calls += 1;
            anyhow::bail!("java.net.BindException: Address already in use")
        })
        .await;
        assert!(failed.is_err());
        assert_eq!(calls, 3, "three attempts in all");

        let mut calls = 0;
        let failed: anyhow::Result<()> = retry_if_port_taken("a service", async || {
            calls += 1;
            anyhow::bail!("the jar is missing")
        })
        .await;
        assert!(failed.is_err());
        assert_eq!(calls, 1, "other failures are not retried");
    }
}
