#!/usr/bin/env bash
# Runs every fuzz target for a while, from its committed corpus, and fails on the first crash,
# timeout or out-of-memory. New inputs go to a scratch directory, not into the repository.
#
# usage: tests/fuzz/run.sh CARGO_FUZZ_BIN_DIR SECONDS_PER_TARGET [TARGET...]
# Environment: CARGO_TARGET_DIR (fuzz builds go to $CARGO_TARGET_DIR/fuzz), FUZZ_ARTIFACTS
# (where crashing inputs are written; default a scratch directory, printed on failure).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$1:$PATH"
seconds="$2"
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml)
fi
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}/fuzz"
scratch="$(mktemp -d)"
artifacts="${FUZZ_ARTIFACTS:-$scratch/artifacts}"
mkdir -p "$artifacts"
# --sanitizer none: the code under test forbids unsafe; what the fuzzers look for here are
# panics, aborts, hangs (-timeout) and unbounded memory (-rss_limit_mb), at full speed.
cargo fuzz build --sanitizer none --target-dir "$target_dir"
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "-- $target, ${seconds} s"
  if ! cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$artifacts/$target-" -print_final_stats=1 2>"$scratch/$target.log"; then
    tail -n 40 "$scratch/$target.log"
    echo "error: fuzz target $target failed; the input is in $artifacts (keep it in tests/fuzz/regressions/$target/)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$target.log" | tr '\n' ' '
  echo
done
rm -rf "$scratch"
