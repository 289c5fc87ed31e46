#!/usr/bin/env bash
# Installs what the tests need, builds once, and runs every test.
# This is what CI runs (.ci/run calls it and nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
export PATH="$(pwd)/.tools/bin:$PATH"

echo "== format"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
# The binaries are built first so that CLI tests and pipeline scripts find
# every tool under target/debug, whichever package's tests run first.
cargo build --workspace --bins --locked

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doc tests
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== pipelines"
for s in scripts/pipelines/*.sh; do
  [ -e "$s" ] || continue
  echo "-- $s"
  bash "$s"
done
echo "== all tests passed"
