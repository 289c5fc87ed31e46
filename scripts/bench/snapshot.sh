#!/usr/bin/env bash
# Benchmark for `snapshot create`. Prints figures; asserts nothing.
#
# The homelab fixture (testdata/clusters/homelab) grown to N objects
# (scripts/fixtures/bulk-objects.py, default N=10000) is served by sim-cluster;
# then, side by side on the same server:
#   - `snapshot create --out DIR.tar.zst` (every listable kind, streamed, with
#     Secrets age-encrypted), and
#   - the same export done by hand: `kubectl api-resources --verbs=list` then
#     `kubectl get <kind> -A -o json > file` for every kind.
# Each figure is the median of $RUNS runs (default 3): wall time, peak RSS
# (for the kubectl loop: the largest single kubectl), and the ratio.
#
# Env: N, RUNS, CARGO_TARGET_DIR, SNAPSHOT and SIM_CLUSTER (built binaries;
# default: cargo build --release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
N="${N:-10000}"
RUNS="${RUNS:-3}"
WORK="$(mktemp -d /tmp/bench-snapshot.XXXXXX)"
SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${SNAPSHOT:-}" ] || [ -z "${SIM_CLUSTER:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  (cd "$ROOT" && cargo build --release -q -p snapshot -p sim-cluster-bin)
  SNAPSHOT="$CARGO_TARGET_DIR/release/snapshot"
  SIM_CLUSTER="$CARGO_TARGET_DIR/release/sim-cluster"
fi
export XDG_CONFIG_HOME="$WORK/no-config" HOME="$WORK/home"
mkdir -p "$HOME"
unset UPKEEP_CONFIG KUBECONFIG

cp -r "$ROOT/testdata/clusters/homelab" "$WORK/fixture"
python3 "$ROOT/scripts/fixtures/bulk-objects.py" "$N" "$WORK/fixture/95-bulk.yaml"
"$SIM_CLUSTER" serve --fixture "$WORK/fixture" --kubeconfig-out "$WORK/kubeconfig" >"$WORK/ready" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || { echo "sim-cluster did not start: $(cat "$WORK/sim.log")" >&2; exit 3; }
KC="$WORK/kubeconfig"
# A throwaway age key: the bench encrypts Secrets as a real run does.
RECIPIENT="$("$SNAPSHOT" keygen --out "$WORK/age-key.txt")"

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

objects="$(KUBECONFIG="$KC" kubectl get --raw /api/v1/configmaps | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')"
echo "fixture: homelab + $N generated objects ($objects ConfigMaps); $RUNS runs each"

walls=""; rsss=""; files=0
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/out.tar.zst"
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$SNAPSHOT" create --kubeconfig "$KC" \
    --out "$WORK/out.tar.zst" --age-recipient "$RECIPIENT" >"$WORK/manifest.json" 2>"$WORK/err" \
    || { echo "snapshot failed: $(cat "$WORK/err")" >&2; exit 3; }
  walls+="$(cut -d' ' -f1 "$WORK/time")"$'\n'
  rsss+="$(cut -d' ' -f2 "$WORK/time")"$'\n'
  files="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["files"]))' "$WORK/manifest.json")"
done
S_WALL="$(printf '%s' "$walls" | median)"
S_RSS="$(printf '%s' "$rsss" | median | awk '{printf "%.1f", $1/1024}')"
S_SIZE="$(du -k "$WORK/out.tar.zst" | cut -f1)"

walls=""; rsss=""
for i in $(seq "$RUNS"); do
  rm -rf "$WORK/kubectl"; mkdir "$WORK/kubectl"
  start="$(date +%s.%N)"; max=0
  for kind in $(KUBECONFIG="$KC" kubectl api-resources --verbs=list -o name); do
    /usr/bin/time -f "%M" -o "$WORK/ktime" env KUBECONFIG="$KC" kubectl get "$kind" -A -o json >"$WORK/kubectl/$kind.json" 2>/dev/null || true
    m="$(tail -1 "$WORK/ktime")"; [ "$m" -gt "$max" ] && max="$m"
  done
  end="$(date +%s.%N)"
  walls+="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"$'\n'
  rsss+="$max"$'\n'
done
K_WALL="$(printf '%s' "$walls" | median)"
K_RSS="$(printf '%s' "$rsss" | median | awk '{printf "%.1f", $1/1024}')"
K_SIZE="$(du -sk "$WORK/kubectl" | cut -f1)"

printf '\n%-44s %10s %14s %12s\n' "export of every listable kind" "wall (s)" "peak RSS (MiB)" "on disk (KiB)"
printf '%-44s %10s %14s %12s\n' "snapshot create ($files files, .tar.zst)" "$S_WALL" "$S_RSS" "$S_SIZE"
printf '%-44s %10s %14s %12s\n' "kubectl get <kind> -A -o json loop" "$K_WALL" "$K_RSS" "$K_SIZE"
awk -v s="$S_WALL" -v k="$K_WALL" 'BEGIN { if (s > 0) printf "\nsnapshot is %.1fx faster than the kubectl loop (target: faster; peak RSS target: < 100 MiB)\n", k / s }'
