//! The on-disk cache of assembled tools (Kafka jars, Apicurio, the Python
//! venv): built once, guarded by a file lock, marked complete last.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

/// Written after a build succeeded, holding the recipe it followed. A
/// directory without it is the leftover of an interrupted build, and one
/// with another recipe is out of date; either is rebuilt from scratch.
const COMPLETE_MARKER: &str = ".sluice-complete";

/// `$SLUICE_CACHE_DIR`, or `$HOME/.cache/sluice`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    let home = std::env::var_os("HOME").context("neither SLUICE_CACHE_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("sluice"))
}

/// Returns `<cache>/<name>`, first filling it with `build` unless an earlier
/// run completed it with the same `recipe` (whatever determines the result:
/// a pom, a list of packages). Blocking: it may download for minutes, or
/// wait for another test process that is doing so.
pub(crate) fn ensure(
    name: &str,
    recipe: &str,
    build: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let cache = cache_dir()?;
    let dir = cache.join(name);
    let marker = dir.join(COMPLETE_MARKER);
    let complete = || fs::read_to_string(&marker).is_ok_and(|done| done == recipe);
    // The marker is written last, so seeing it means the build is whole and
    // nobody will touch the directory again: no lock needed.
    if complete() {
        return Ok(dir);
    }

    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock_path = cache.join(format!("{name}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    // Test binaries run in parallel; the first one builds, the others wait.
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
    if complete() {
        return Ok(dir);
    }

    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing the incomplete or outdated {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    eprintln!("sluice-tests: assembling {} (once per cache)", dir.display());
    build(&dir).with_context(|| format!("assembling {}", dir.display()))?;
    fs::write(&marker, recipe).with_context(|| format!("writing {}", marker.display()))?;
    eprintln!("sluice-tests: assembled {} in {:.1?}", dir.display(), started.elapsed());
    Ok(dir)
}
