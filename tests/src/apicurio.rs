//! An Apicurio Registry for tests: a Confluent-compatible schema registry
//! that is not ours, assembled from Maven Central into the cache.
//!
//! 3.0.9 because it runs on Java 17; 3.3 needs Java 21. Storage is Apicurio's
//! default in-memory database, so every start is empty.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tempfile::TempDir;

use crate::process::{self, POLL_INTERVAL, Process};
use crate::{cache, shared};

const APICURIO_VERSION: &str = "3.0.9";

/// Generous for 2 cores and parallel test binaries; a start takes ~6 s.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a SIGTERMed registry may take for a clean shutdown.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Bounds each readiness request; a starting server may accept and stall.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// An Apicurio Registry for tests.
///
/// Started by [`Apicurio::start`] or [`Apicurio::shared`]. A registry the
/// harness started runs in a scratch directory with its log at
/// [`Apicurio::log_path`]; dropping the `Apicurio` kills it, and it also
/// gets SIGKILL if the test process dies without running destructors.
#[derive(Debug)]
pub struct Apicurio {
    ccompat_url: String,
    /// `None` for a registry the harness did not start
    /// (`SLUICE_TEST_APICURIO`).
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    /// `None` after `stop` or `kill`. Declared before `dir` so that the
    /// process dies before its directory is removed.
    process: Option<Process>,
    dir: TempDir,
}

impl Apicurio {
    /// Starts a registry of its own on free ports and returns once its
    /// Confluent-compatible API answers. The first start on a machine also
    /// assembles Apicurio into the cache.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn example() -> anyhow::Result<()> {
    /// let registry = sluice_tests::Apicurio::start().await?;
    /// let subjects = reqwest::get(format!("{}/subjects", registry.ccompat_url())).await?;
    /// assert_eq!(subjects.text().await?, "[]");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> anyhow::Result<Self> {
        let home = tokio::task::spawn_blocking(assemble).await??;
        process::retry_if_port_taken("Apicurio Registry", async || Self::start_in(&home).await).await
    }

    async fn start_in(home: &Path) -> anyhow::Result<Self> {
        let started = Instant::now();
        let dir = process::scratch_dir("apicurio")?;
        let [port, management_port] = process::free_ports()?;
        let mut cmd = Command::new("java");
        // Its working directory is the scratch directory, not the cache,
        // so that parallel registries leave nothing in each other's way.
        cmd.current_dir(dir.path())
            .arg("-Xmx512m")
            .arg("-Dquarkus.http.host=127.0.0.1")
            .arg(format!("-Dquarkus.http.port={port}"))
            .arg(format!("-Dquarkus.management.port={management_port}"))
            .arg("-jar")
            .arg(home.join(format!("apicurio-registry-app-{APICURIO_VERSION}-runner.jar")));
        let log = dir.path().join("apicurio.log");
        let mut process = Process::spawn("Apicurio Registry", cmd, &log)?;

        let ccompat_url = format!("http://127.0.0.1:{port}/apis/ccompat/v7");
        let client = probe_client()?;
        // A fresh registry has no subjects; anything else on this port is
        // not ours.
        process
            .wait_ready(START_TIMEOUT, POLL_INTERVAL, async || {
                Ok(subjects(&client, &ccompat_url).await.as_deref() == Some("[]"))
            })
            .await?;
        eprintln!("sluice-tests: Apicurio at {ccompat_url} ready in {:.1?}, log {}", started.elapsed(), log.display());
        Ok(Self { ccompat_url, server: Some(Server { process: Some(process), dir }) })
    }

    /// The registry of this test process, started on first use; or the one
    /// at `$SLUICE_TEST_APICURIO` (its ccompat base URL) if that is set.
    ///
    /// Blocks on first use. Give each test its own subjects (see
    /// [`unique_name`](crate::unique_name)), since tests run in parallel.
    ///
    /// # Panics
    /// If the registry can't be started or reached: a precondition of the
    /// test.
    #[track_caller]
    pub fn shared() -> &'static Apicurio {
        static SHARED: OnceLock<Result<Apicurio, String>> = OnceLock::new();
        shared::get_or_start(&SHARED, "Apicurio Registry", || async {
            match std::env::var("SLUICE_TEST_APICURIO") {
                Ok(url) if !url.trim().is_empty() => Apicurio::external(url).await,
                _ => Apicurio::start().await,
            }
        })
    }

    /// A registry started by someone else, once it answers.
    async fn external(url: String) -> anyhow::Result<Self> {
        let ccompat_url = url.trim_end_matches('/').to_owned();
        if subjects(&probe_client()?, &ccompat_url).await.is_none() {
            bail!("SLUICE_TEST_APICURIO={url}: GET {ccompat_url}/subjects does not answer 200");
        }
        Ok(Self { ccompat_url, server: None })
    }

    /// The base URL of the Confluent-compatible API, without a trailing
    /// slash: `http://127.0.0.1:<port>/apis/ccompat/v7`.
    pub fn ccompat_url(&self) -> String {
        self.ccompat_url.clone()
    }

    /// Where the registry's stdout and stderr go; `None` for an external one.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.server.as_ref().map(|server| server.dir.path().join("apicurio.log"))
    }

    /// Shuts the registry down cleanly: SIGTERM, then SIGKILL if it takes
    /// longer than 30 s.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.own_server("stop")?.process.take() {
            process.terminate(STOP_GRACE).await?;
        }
        Ok(())
    }

    /// Kills the registry with SIGKILL, as a crash would.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.own_server("kill")?.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    fn own_server(&mut self, action: &str) -> anyhow::Result<&mut Server> {
        self.server.as_mut().ok_or_else(|| {
            anyhow!(
                "can't {action} the registry at {}: the harness did not start it (SLUICE_TEST_APICURIO)",
                self.ccompat_url
            )
        })
    }
}

fn probe_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(PROBE_TIMEOUT).build()?)
}

/// The body of `GET <ccompat>/subjects` if it answers 200, else `None`
/// (not listening yet, still starting, or not a registry).
async fn subjects(client: &reqwest::Client, ccompat_url: &str) -> Option<String> {
    let response = client.get(format!("{ccompat_url}/subjects")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok().map(|body| body.trim().to_owned())
}

/// Downloads and unpacks Apicurio into the cache once; returns its directory.
fn assemble() -> anyhow::Result<PathBuf> {
    let artifact = format!("io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all");
    cache::ensure(&format!("apicurio-{APICURIO_VERSION}"), &artifact, |home| {
        let mut mvn = Command::new("mvn");
        // No pom: dependency:copy fetches one artifact by its coordinates.
        mvn.current_dir(home)
            .args(["-B", "-q", "dependency:copy"])
            .arg(format!("-Dartifact={artifact}"))
            .arg(format!("-DoutputDirectory={}", home.display()));
        process::run("mvn dependency:copy (Apicurio)", mvn)?;
        let tarball = home.join(format!("apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"));
        unpack(&tarball, home)?;
        // Maven's local repository keeps a copy; this one only takes space.
        std::fs::remove_file(&tarball).with_context(|| format!("removing {}", tarball.display()))
    })
}

fn unpack(tarball: &Path, into: &Path) -> anyhow::Result<()> {
    let mut tar = Command::new("tar");
    tar.arg("xzf").arg(tarball).arg("-C").arg(into);
    process::run("tar (unpacking Apicurio)", tar)
}
