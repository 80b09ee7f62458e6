#!/usr/bin/env bash
# Regenerates wit/ (the contract's TypeScript types) from ../../wit with jco and fails if the
# committed files differ. `--write` updates them instead. jco 1.9.1: later versions fail here
# reading WIT paths through their WASI shim.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
npx --yes @bytecodealliance/jco@1.9.1 guest-types wit -n plugin -o "$out" >/dev/null
if [ "${1:-}" = --write ]; then
  rm -rf sdk/js/wit && cp -r "$out" sdk/js/wit
elif ! diff -r "$out" sdk/js/wit; then
  echo "sdk/js/wit is out of date with wit/: run sdk/js/scripts/check-types.sh --write" >&2
  exit 1
fi
