#!/usr/bin/env bash
# The platform detectors as a pipeline, against the recorded upstream:
#
#   { detect-k3s ...; detect-flux ...; detect-longhorn ...; } | merge-report -o text
#
# Starts sim-upstream on testdata/upstream, runs the three detectors on the
# constructed cluster dumps in testdata/clusters (and on the real GitOps
# repository in ../shared/realdata when it is there), checks the report, then
# checks that a second run is answered with 304s from the ETag cache and that
# an unreachable upstream degrades the pipeline instead of breaking it.
# Exits non-zero on any failure. Needs the binaries built (cargo build --bins).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CARGO_TARGET_DIR:-target}/debug
for b in sim-upstream detect-k3s detect-flux detect-longhorn merge-report; do
  [ -x "$bin/$b" ] || { echo "detect-platform: $bin/$b is missing; run cargo build --bins first" >&2; exit 1; }
done

tmp=$(mktemp -d)
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A clean environment: no user config, token or cache.
export HOME="$tmp/home" NO_COLOR=1
unset GITHUB_TOKEN UPKEEP_CONFIG UPKEEP_GITHUB_API UPKEEP_CHANNELS_URL UPKEEP_CACHE_DIR \
  UPKEEP_OFFLINE UPKEEP_GITOPS_DIR UPKEEP_GITHUB_TOKEN_FILE XDG_CONFIG_HOME XDG_CACHE_HOME || true
mkdir -p "$HOME"

"$bin/sim-upstream" serve --fixture testdata/upstream --rate-limit 1000 >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do
  [ -s "$tmp/sim.out" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "sim-upstream exited:"; cat "$tmp/sim.err"; exit 1; }
  sleep 0.1
done
base=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["github"])' <"$tmp/sim.out")
[ -n "$base" ] || { echo "sim-upstream did not report its address"; exit 1; }

up=(--github-api "$base" --channels-url "$base/v1-release/channels" --cache-dir "$tmp/cache")
flux_input=(--cluster-dump testdata/clusters/flux-v2.5-stored-versions.json)
if [ -d ../shared/realdata/gitops/billimek__k8s-gitops ]; then
  flux_input=(--gitops ../shared/realdata/gitops/billimek__k8s-gitops)
fi

# Each detector's failure is recorded; the group's own exit status is only
# the last command's.
run() { "$@" || echo "$1 exited $?" >>"$tmp/failed"; }
detect_all() {
  run "$bin/detect-k3s" --cluster-dump testdata/clusters/k3s-mixed-etcd.json "${up[@]}"
  run "$bin/detect-flux" "${flux_input[@]}" "${up[@]}"
  run "$bin/detect-longhorn" --cluster-dump testdata/clusters/longhorn-v1.9-faulted.json "${up[@]}"
}

{ detect_all; } | "$bin/merge-report" -o text >"$tmp/report.txt"
if [ -s "$tmp/failed" ]; then cat "$tmp/failed"; exit 1; fi
cat "$tmp/report.txt"

expect() { grep -qF -- "$1" "$tmp/report.txt" || { echo "detect-platform: report lacks: $1"; exit 1; }; }
expect "3 components, 3 with updates"
expect "path: v1.29.2+k3s1 -> v1.29.11+k3s1 -> v1.30.8+k3s1"
expect "v1.35.4+k3s1 -> v1.36.2+k3s1"
expect "nodes run different k3s versions"
expect "path: v1.9.0 -> v1.9.2 -> v1.10.2 -> v1.11.3 -> v1.12.1"
expect "Longhorn volume pvc-7c1e-faulted is faulted"
expect "which Flux v2.8 removes"

# Second run: the same documents, every upstream request answered 304.
before=$(python3 -c 'import json,urllib.request,sys; print(len(json.load(urllib.request.urlopen(sys.argv[1]+"/_admin/requests"))))' "$base")
{ detect_all; } >"$tmp/second.jsonl"
if [ -s "$tmp/failed" ]; then cat "$tmp/failed"; exit 1; fi
python3 - "$base" "$before" <<'EOF'
import json, sys, urllib.request
log = json.load(urllib.request.urlopen(sys.argv[1] + "/_admin/requests"))
second = log[int(sys.argv[2]):]
assert second, "the second run sent no request"
bad = [r for r in second if r["status"] != 304]
assert not bad, f"second run not answered from the ETag cache: {bad}"
print(f"second run: {len(second)} requests, all 304 Not Modified")
EOF

# An unreachable upstream degrades: the document is still written (exit 3)
# and the report counts the error.
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
set +e
"$bin/detect-longhorn" --current v1.9.0 --github-api "http://127.0.0.1:$dead" --cache-dir "$tmp/cache-dead" \
  >"$tmp/degraded.jsonl" 2>"$tmp/degraded.err"
rc=$?
set -e
[ "$rc" = 3 ] || { echo "unreachable upstream: expected exit 3, got $rc"; cat "$tmp/degraded.err"; exit 1; }
"$bin/merge-report" -o text "$tmp/degraded.jsonl" >"$tmp/degraded.txt"
grep -q "1 with errors" "$tmp/degraded.txt" || { echo "degraded report lacks the error:"; cat "$tmp/degraded.txt"; exit 1; }
echo "detect-platform: ok"
