#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with cargo-fuzz (libFuzzer), MINUTES in all,
# shared between the targets:
#
#   scripts/fuzz.sh MINUTES [TARGET...]
#
# Targets (fuzz/fuzz_targets, each calling crates/upkeep-fuzz): document, gitops_manifest,
# helm_index, constraint, version, release_notes, chart_archive. New inputs that add
# coverage go to fuzz/corpus/TARGET (commit them); a crash is copied to
# fuzz/regressions/TARGET/, where `cargo test -p upkeep-fuzz` runs it from then on: fix the
# parser, keep the file. Exits 1 when a target crashed.
#
# cargo-fuzz wants a nightly compiler for its flags; on the stable one it runs with
# RUSTC_BOOTSTRAP=1 and without a sanitizer (Rust code is memory safe; panics, overflows in
# debug assertions and hangs are what we look for).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ] || { echo "usage: scripts/fuzz.sh MINUTES [TARGET...]" >&2; exit 2; }
minutes=$1; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(document gitops_manifest helm_index constraint version release_notes chart_archive)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
flags=(-s none --release --debug-assertions)
if ! rustc --version | grep -q nightly; then export RUSTC_BOOTSTRAP=1; fi
seconds=$(( minutes * 60 / ${#targets[@]} ))
[ "$seconds" -ge 10 ] || seconds=10
cargo fuzz build "${flags[@]}" --fuzz-dir fuzz
crashed=()
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/regressions/$t"
  echo "== fuzz $t for ${seconds}s" >&2
  set +e
  cargo fuzz run "${flags[@]}" --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len=1048576 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" 2>"fuzz/artifacts/$t.log"
  rc=$?
  set -e
  tail -n 2 "fuzz/artifacts/$t.log" >&2
  if [ "$rc" -ne 0 ]; then
    crashed+=("$t")
    for a in fuzz/artifacts/"$t"/*; do [ -f "$a" ] && cp "$a" "fuzz/regressions/$t/"; done
  fi
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${crashed[*]}: inputs copied to fuzz/regressions/ (cargo test -p upkeep-fuzz reproduces them)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
