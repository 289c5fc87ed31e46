#!/usr/bin/env bash
# Benchmarks for detect-charts. Prints figures; asserts nothing.
#
#   1. The N=200 Renovate fixture (../shared/peers/renovate/make-fixture.sh 200):
#      detect-charts cold (empty cache) and warm (every index answered 304)
#      against Renovate's cold run on the same fixture, with the ratio.
#   2. The real 3.8 MiB grafana index (../shared/realdata/helm/index):
#      detect-charts cold against `helm search repo -l` on the same index.
#   3. A generated ~50 MB index (the grafana entries repeated under new
#      names): detect-charts' peak RSS against the index's size.
#
# Each figure is the median of $RUNS runs (default 5), wall time and peak RSS
# from /usr/bin/time. Needs helm ($HELM, default /tmp/peers/layer/helm/helm;
# ../shared/peers/renovate/setup.sh installs it). Renovate is run when it is
# installed (/tmp/renovate-peer); SETUP_RENOVATE=1 installs it first (~3 min).
#
# Env: RUNS, HELM, DETECT_CHARTS (a built binary; default: cargo build --release),
#      CARGO_TARGET_DIR, SETUP_RENOVATE, SKIP_RENOVATE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="$ROOT/../shared"
PEERS="$SHARED/peers/renovate"
REAL="$SHARED/realdata"
RUNS="${RUNS:-5}"
HELM="${HELM:-/tmp/peers/layer/helm/helm}"
WORK="$(mktemp -d /tmp/bench-charts.XXXXXX)"
SERVER_PIDS=()
cleanup() {
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -x "$PEERS/stop-server.sh" ] && "$PEERS/stop-server.sh" 200 >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${DETECT_CHARTS:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  (cd "$ROOT" && cargo build --release -q -p detect-charts)
  DETECT_CHARTS="$CARGO_TARGET_DIR/release/detect-charts"
fi
[ -x "$HELM" ] || { echo "helm not found at $HELM (run $PEERS/setup.sh or set HELM)" >&2; exit 2; }
export XDG_CONFIG_HOME="$WORK/no-config"   # no user upkeep.yaml
unset UPKEEP_CONFIG UPKEEP_OFFLINE UPKEEP_CACHE_DIR

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# bench LABEL PREP CMD...: runs PREP (a shell snippet, untimed) then CMD,
# $RUNS times; sets WALL (s) and RSS (MiB) to the medians and prints them.
bench() {
  local label="$1" prep="$2"; shift 2
  local walls="" rsss="" i
  for i in $(seq "$RUNS"); do
    eval "$prep"
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || true
    walls+="$(cut -d' ' -f1 "$WORK/time" | tail -1)"$'\n'
    rsss+="$(tail -1 "$WORK/time" | cut -d' ' -f2)"$'\n'
  done
  WALL="$(printf '%s' "$walls" | median)"
  RSS="$(printf '%s' "$rsss" | median | awk '{printf "%.1f", $1/1024}')"
  printf '  %-44s wall %7.3f s   peak RSS %7.1f MiB   (%s runs)\n' "$label" "$WALL" "$RSS" "$RUNS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# serve DIR → sets URL
serve() {
  local port; port="$(free_port)"
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$1" >"$WORK/http-$port.log" 2>&1 &
  SERVER_PIDS+=("$!")
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done
  URL="http://127.0.0.1:$port"
}

# one_release_checkout DIR REPO_URL CHART VERSION
one_release_checkout() {
  mkdir -p "$1"
  cat >"$1/release.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: bench
  namespace: flux-system
spec:
  url: $2
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: $3
  namespace: bench
spec:
  chart:
    spec:
      chart: $3
      version: "$4"
      sourceRef:
        kind: HelmRepository
        name: bench
        namespace: flux-system
YAML
}

echo "detect-charts: $DETECT_CHARTS"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. N=200 fixture --------------------------------------------------------
echo
echo "1. N=200 Renovate fixture"
HELM="$HELM" "$PEERS/make-fixture.sh" 200 >"$WORK/fixture.log" 2>&1 || { cat "$WORK/fixture.log" >&2; exit 3; }
C200="$WORK/cache-200"
bench "detect-charts, cold (empty cache)" 'rm -rf "$C200"' \
  "$DETECT_CHARTS" --gitops /tmp/gitops-200 --cache-dir "$C200" --kubernetes-version v1.29.5
DC_WALL="$WALL"; DC_RSS="$RSS"
echo "     documents: $(wc -l <"$WORK/out"), with candidates: $(grep -c '"candidates":\[{' "$WORK/out" || true)"
"$DETECT_CHARTS" --gitops /tmp/gitops-200 --cache-dir "$C200" >/dev/null 2>&1 || true
bench "detect-charts, warm (index answered 304)" ':' \
  "$DETECT_CHARTS" --gitops /tmp/gitops-200 --cache-dir "$C200" --kubernetes-version v1.29.5
if [ "${SKIP_RENOVATE:-0}" != 1 ]; then
  if [ ! -f /tmp/renovate-peer/node_modules/renovate/dist/renovate.js ] && [ "${SETUP_RENOVATE:-0}" = 1 ]; then
    "$PEERS/setup.sh" >"$WORK/setup.log" 2>&1
  fi
  if [ -f /tmp/renovate-peer/node_modules/renovate/dist/renovate.js ]; then
    rw=""; rr=""
    for _ in $(seq "$RUNS"); do
      "$PEERS/run-renovate.sh" 200 >"$WORK/renovate.log" 2>&1 || true
      rw+="$(python3 -c 'import json; print(json.load(open("/tmp/renovate-200.json"))["wall_s"])')"$'\n'
      rr+="$(python3 -c 'import json; print(json.load(open("/tmp/renovate-200.json"))["max_rss_kb"])')"$'\n'
    done
    R_WALL="$(printf '%s' "$rw" | median)"
    R_RSS="$(printf '%s' "$rr" | median | awk '{printf "%.1f", $1/1024}')"
    printf '  %-44s wall %7.3f s   peak RSS %7.1f MiB   (%s runs)\n' "Renovate 39, cold" "$R_WALL" "$R_RSS" "$RUNS"
    echo "  => detect-charts is $(ratio "$R_WALL" "$DC_WALL")x faster than Renovate, with $(ratio "$R_RSS" "$DC_RSS")x less peak RSS"
  else
    echo "  Renovate is not installed: run $PEERS/setup.sh (or SETUP_RENOVATE=1) for the comparison"
  fi
fi
"$PEERS/stop-server.sh" 200 >/dev/null 2>&1 || true

# --- 2. grafana, real 3.8 MiB index --------------------------------------------
echo
GRAFANA="$REAL/helm/index/grafana-helm-charts__gh-pages__index.yaml"
echo "2. real grafana index ($(du -h "$GRAFANA" | cut -f1), $(grep -c '^  - ' "$GRAFANA") versions)"
mkdir -p "$WORK/grafana-repo"
cp "$GRAFANA" "$WORK/grafana-repo/index.yaml"
serve "$WORK/grafana-repo"
one_release_checkout "$WORK/gitops-grafana" "https://grafana.github.io/helm-charts" loki "6.0.0"
mkdir -p "$XDG_CONFIG_HOME/upkeep"
printf 'upstreams:\n  helmMirrors:\n    https://grafana.github.io/helm-charts: %s\nhttp:\n  maxBodySize: 200MiB\n' "$URL" \
  >"$XDG_CONFIG_HOME/upkeep/upkeep.yaml"
CG="$WORK/cache-grafana"
bench "detect-charts, cold (fetch + parse)" 'rm -rf "$CG"' \
  "$DETECT_CHARTS" --gitops "$WORK/gitops-grafana" --cache-dir "$CG"
DC_WALL="$WALL"; DC_RSS="$RSS"
echo "     loki candidates: $(grep -o '"version":"[^"]*","published' "$WORK/out" | wc -l)"
export HELM_CONFIG_HOME="$WORK/helm/config" HELM_CACHE_HOME="$WORK/helm/cache" HELM_DATA_HOME="$WORK/helm/data"
"$HELM" repo add grafana "$URL/" >/dev/null
bench "helm search repo -l (index from helm's cache)" ':' "$HELM" search repo -l
echo "     helm listed $(($(wc -l <"$WORK/out") - 1)) chart versions"
echo "  => detect-charts is $(ratio "$WALL" "$DC_WALL")x faster than helm, with $(ratio "$RSS" "$DC_RSS")x less peak RSS"

# --- 3. generated ~50 MB index -------------------------------------------------
echo
mkdir -p "$WORK/big-repo"
python3 - "$GRAFANA" "$WORK/big-repo/index.yaml" <<'PY'
import sys
src, dst = sys.argv[1], sys.argv[2]
lines = open(src).read().split("\n")
start = lines.index("entries:") + 1
end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" "))
body, copy = lines[start:end], 0
with open(dst, "w") as out:
    out.write("apiVersion: v1\nentries:\n")
    written = 0
    while written < 50 * 1000 * 1000:
        for l in body:
            # chart keys are the only lines indented by exactly two spaces
            if copy and l.startswith("  ") and not l.startswith("   ") and l.endswith(":") and not l.startswith("  -"):
                l = l[:-1] + f"-copy{copy}:"
            out.write(l + "\n")
            written += len(l) + 1
        copy += 1
    out.write('generated: "2026-01-01T00:00:00Z"\n')
PY
BIG="$WORK/big-repo/index.yaml"
SIZE_MB="$(du -m "$BIG" | cut -f1)"
echo "3. generated index: ${SIZE_MB} MiB, $(grep -c '^  - ' "$BIG") versions"
serve "$WORK/big-repo"
one_release_checkout "$WORK/gitops-big" "https://big.example/charts" loki "6.0.0"
printf 'upstreams:\n  helmMirrors:\n    https://big.example/charts: %s\nhttp:\n  maxBodySize: 200MiB\n  timeout: 120s\n' "$URL" \
  >"$XDG_CONFIG_HOME/upkeep/upkeep.yaml"
CB="$WORK/cache-big"
bench "detect-charts, cold (fetch + parse)" 'rm -rf "$CB"' \
  "$DETECT_CHARTS" --gitops "$WORK/gitops-big" --cache-dir "$CB"
echo "  => peak RSS is $(ratio "$RSS" "$SIZE_MB")x the index size"
