#!/usr/bin/env bash
# Sluice's whole test suite, from a fresh clone: installs what it needs, then runs
# formatting, lints, unit tests, the integration tests against a real Kafka 4.x
# broker and a real Apicurio registry that the test harness assembles from Maven
# Central and starts on free ports, and the deploy/ validators (deploy/check.sh).
# Safe to run again: every install step is skipped when already done.
#
# Environment:
#   CARGO_TARGET_DIR   build output (default: ~/.cache/sluice/target, outside the clone)
#   SLUICE_CACHE_DIR   Kafka jars, Apicurio, Python venv (default: ~/.cache/sluice)
#   CARGO_INCREMENTAL  0 unless set (incremental build state is ~2 GB a CI run never reuses)
#   SLUICE_SKIP_LINT=1 skip fmt and clippy (for quick local runs)
#   SLUICE_FUZZ_SECONDS each fuzz target's run (default 20; 0 skips the fuzzers, not the replay
#                      of their corpora, which cargo test does)
set -euo pipefail

cd "$(dirname "$0")/.."
export SLUICE_CACHE_DIR="${SLUICE_CACHE_DIR:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SLUICE_CACHE_DIR/target}"
# Incremental compilation speeds up rebuilds after small edits, and costs ~2 GB of the target
# directory that a one-off run never uses; set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
mkdir -p "$SLUICE_CACHE_DIR" "$CARGO_TARGET_DIR"

# The suite needs ~12 GB from scratch (the target directory ~8 GB, the fuzz targets' build, the
# plugin toolchains): say so up front rather than fail on a full disk halfway.
free_kb="$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')"
if [ "${free_kb:-0}" -lt $((12 * 1024 * 1024)) ]; then
  echo "warning: $((free_kb / 1024)) MB free under $CARGO_TARGET_DIR; a run from scratch needs ~12 GB" >&2
fi

step() { printf '\n== %s\n' "$*"; }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required ($2)" >&2; exit 1; }
}
need rustup "install Rust from https://rustup.rs"
need java "Java 17 runs the Kafka broker and Apicurio Registry"
need mvn "Maven assembles Kafka and Apicurio from Maven Central"
need python3 "Python 3 runs Confluent's reference deserializers in the tests, and Python plugins"
need node "Node.js (>= 20) runs the TypeScript/JavaScript plugin SDK's tests and builds"
need npm "npm installs the TypeScript/JavaScript plugin toolchain (componentize-qjs, esbuild, tsc)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "error: Node.js >= 20 is required (found $(node --version))" >&2; exit 1; }

step "Rust toolchain (rust-toolchain.toml) and the wasm32-wasip2 target"
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
# rustup may be configured not to install toolchains on first use; ask explicitly.
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi
rustup component add --toolchain "$toolchain" rustfmt clippy >/dev/null
rustup target add --toolchain "$toolchain" wasm32-wasip2 >/dev/null

if [ "${SLUICE_SKIP_LINT:-0}" != 1 ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  (cd plugins && cargo fmt --all -- --check)
  step "cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

# plugins/ is a workspace of its own; its target directory sits beside the main one.
step "plugin unit tests (native, through the SDK's test double)"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" cargo test --locked --manifest-path plugins/Cargo.toml

step "plugin SDKs for TypeScript/JavaScript and Python: their own tests, the types generated from the WIT"
node --test sdk/js/test/
python3 -m unittest discover -s sdk/python/tests
sdk/js/scripts/check-types.sh
# The TypeScript/JavaScript examples and fixtures are one npm workspace; the Python ones get a
# .venv each when the tests first build or test them (sluice plugin build/test).
(cd plugins && npm ci --no-audit --no-fund --loglevel=error)
# kafkajs and its registry client, the Node.js consumer the integration tests read Sluice's
# topics with (tests/node).
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

step "cargo test (unit, router and integration tests; the harness starts Kafka and Apicurio)"
cargo test --workspace --locked

fuzz_seconds="${SLUICE_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
  step "fuzz targets, ${fuzz_seconds} s each (tests/fuzz: pinned nightly, cargo-fuzz, libFuzzer)"
  fuzz_toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' tests/fuzz/rust-toolchain.toml)"
  if ! rustup run "$fuzz_toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$fuzz_toolchain" --profile minimal
  fi
  CARGO_FUZZ_VERSION=0.13.2
  cargo_fuzz="$SLUICE_CACHE_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION"
  if [ ! -x "$cargo_fuzz/bin/cargo-fuzz" ]; then
    cargo install --locked --root "$cargo_fuzz" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
  tests/fuzz/run.sh "$cargo_fuzz/bin" "$fuzz_seconds"
fi

step "deploy/ (compose, Kubernetes manifests) with their own validators"
deploy/check.sh
