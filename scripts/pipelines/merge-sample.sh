#!/usr/bin/env bash
# The README's pipeline example, checked: merging a saved ComponentUpdates
# stream gives a text report, and --fail-on security exits 1 on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CARGO_TARGET_DIR:-target}/debug
out=$("$bin/merge-report" -o text testdata/reports/sample-updates.jsonl)
grep -q '^8 components, 6 with updates' <<<"$out" || { echo "unexpected summary:"; echo "$out"; exit 1; }
# Two saved streams, one from stdin: duplicates merged.
n=$("$bin/merge-report" - testdata/reports/sample-updates.jsonl < testdata/reports/duplicates.jsonl \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["components"])')
[ "$n" = 8 ] || { echo "expected 8 merged components, got $n"; exit 1; }
set +e
"$bin/merge-report" --fail-on security testdata/reports/sample-updates.jsonl >/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || { echo "--fail-on security should exit 1, got $rc"; exit 1; }
echo "merge-sample: ok"
