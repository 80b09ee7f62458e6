//! The `sluice` binary as a child process, for tests that must kill it, stop it or run two of
//! them: what a replica in production goes through, which a gateway inside the test process
//! cannot show.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process::{Process, free_ports, retry_if_port_taken, scratch_dir};

/// How long a gateway may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `/readyz` is asked while starting: often enough that
/// [`GatewayProcess::ready_after`] is the start-up time to within a few milliseconds (a local
/// request costs microseconds).
const READY_POLL: Duration = Duration::from_millis(5);
/// How long a clean shutdown may take before the process is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The debug `sluice` binary, built now if it is not up to date (a no-op when it is).
pub fn debug_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--locked", "-p", "sluice", "--bin", "sluice", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .status()
        .context("running cargo build for the sluice binary")?;
    anyhow::ensure!(status.success(), "cargo build of the sluice binary failed ({status})");
    // Tests run from `target/debug/deps/`; binaries are one level up.
    let exe = std::env::current_exe()?;
    let binary = exe
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("sluice"))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("no sluice binary beside or above {}", exe.display()))?;
    Ok(binary)
}

/// A `sluice serve` process on a free loopback port. Dropping it kills the process.
#[derive(Debug)]
pub struct GatewayProcess {
    name: &'static str,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    base: String,
    process: Option<Process>,
    ready_after: Duration,
    /// Extra environment variables for the process.
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Starts `binary serve` with `config` (TOML without an `[http]` section: the listener is
    /// chosen here) and waits until it is ready.
    pub async fn start(name: &'static str, binary: impl AsRef<Path>, config: &str) -> anyhow::Result<Self> {
        Self::start_with_env(name, binary, config, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables (kept across restarts).
    pub async fn start_with_env(
        name: &'static str,
        binary: impl AsRef<Path>,
        config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binary = binary.as_ref();
        retry_if_port_taken("a sluice gateway", async || Self::start_once(name, binary, config, env).await).await
    }

    async fn start_once(name: &'static str, binary: &Path, config: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = scratch_dir("sluice")?;
        let [port] = free_ports::<1>()?;
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, format!("[http]\nlisten = \"127.0.0.1:{port}\"\n\n{config}"))
            .with_context(|| format!("writing {}", path.display()))?;
        let mut gateway = Self {
            name,
            binary: binary.to_owned(),
            config: path,
            log: dir.path().join("sluice.log"),
            base: format!("http://127.0.0.1:{port}"),
            process: None,
            ready_after: Duration::ZERO,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            _dir: dir,
        };
        gateway.restart().await?;
        Ok(gateway)
    }

    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where its output goes (appended across restarts).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Starts it again with the same config and port (after [`kill`](Self::kill) or
    /// [`stop`](Self::stop)), and waits until it is ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.process.is_none(), "{} is still running", self.name);
        let mut command = Command::new(&self.binary);
        command.args(["serve", "--config"]).arg(&self.config);
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if std::env::var_os("SLUICE_LOG").is_none() {
            command.env("SLUICE_LOG", "info,sluice=debug");
        }
        let (http, url) = (reqwest::Client::new(), format!("{}/readyz", self.base));
        let started = Instant::now();
        let mut process = Process::spawn(self.name, command, &self.log)?;
        process
            .wait_ready(READY_TIMEOUT, READY_POLL, async || {
                Ok(http.get(&url).send().await.is_ok_and(|r| r.status().is_success()))
            })
            .await?;
        self.ready_after = started.elapsed();
        self.process = Some(process);
        Ok(())
    }

    /// How long its last start took, from spawning the process to its first successful `/readyz`.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The running process's id (for reading its memory use from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::id)
    }

    /// SIGKILL: no shutdown code runs, as when a node dies.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// SIGTERM, and waits for a clean exit (killing it after a grace period).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            let status = process.terminate(STOP_GRACE).await?;
            anyhow::ensure!(status.success(), "{} exited with {status} on SIGTERM", self.name);
        }
        Ok(())
    }

    /// An error that quotes the end of its log.
    pub fn failure(&self, problem: impl std::fmt::Display) -> anyhow::Error {
        match &self.process {
            Some(process) => process.failure(problem),
            None => anyhow::anyhow!("{} {problem} (not running; log at {})", self.name, self.log.display()),
        }
    }
}
