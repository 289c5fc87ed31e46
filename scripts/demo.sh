#!/usr/bin/env bash
# The main job, on the built-in demo world: no cluster and no network needed.
#
# Starts sim-cluster with the homelab fixture (3 k3s servers, Flux, Longhorn,
# ingress-nginx, cert-manager, apps; its simulated controllers running) and
# sim-upstream with the recorded GitHub releases, k3s channels and Helm
# repository, reads the cluster with the real kubectl, runs every detector
# and merges their documents into one report:
#
#   { detect-k3s; detect-flux; detect-longhorn; detect-charts; } | merge-report -o text
#
# then plans the updates (upkeep plan), shows the Git edits a run would make
# (upkeep run --dry-run) and takes and verifies a restore point.
#
# To run it on your own cluster instead, see "On your cluster" in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building the tools (cargo build --bins)" >&2
cargo build --bins --quiet
bin=${CARGO_TARGET_DIR:-target}/debug

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# The demo must not pick up the user's configuration, token or cache.
export HOME="$tmp/home" NO_COLOR=1
unset GITHUB_TOKEN UPKEEP_CONFIG UPKEEP_GITHUB_API UPKEEP_CHANNELS_URL UPKEEP_CACHE_DIR \
  UPKEEP_OFFLINE UPKEEP_GITOPS_DIR UPKEEP_GITHUB_TOKEN_FILE XDG_CONFIG_HOME XDG_CACHE_HOME KUBECONFIG || true
mkdir -p "$HOME"

# Starts a simulator in the background and waits for its one-line JSON ready message.
start() {
  local name=$1; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 1 300); do
    [ -s "$tmp/$name.out" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$name exited:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not become ready" >&2; exit 1
}
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }

start upstream "$bin/sim-upstream" serve --fixture testdata/upstream --rate-limit 5000
start cluster "$bin/sim-cluster" serve --fixture testdata/clusters/homelab \
  --config testdata/sim-cluster/homelab-SIM.yaml --kubeconfig-out "$tmp/kubeconfig"
github=$(field "$tmp/upstream.out" github)
helm=$(field "$tmp/upstream.out" helm)
export KUBECONFIG="$tmp/kubeconfig"

echo "== the demo cluster" >&2
kubectl get nodes >&2
kubectl get helmreleases.helm.toolkit.fluxcd.io -A >&2

# Upstreams: the recorded ones, through the shared cache.
cat >"$tmp/upkeep.yaml" <<EOF
apiVersion: upkeep.dev/v1alpha1
kind: Config
upstreams:
  github:
    url: $github
  k3sChannels:
    url: $github/v1-release/channels
  # The recorded world holds the Longhorn chart repository; the others
  # answer 404 there, and the report says so for each chart.
  helmMirrors:
    https://charts.longhorn.io: ${helm}longhorn
    https://kubernetes.github.io/ingress-nginx: ${helm}ingress-nginx
    https://charts.jetstack.io: ${helm}jetstack
    https://stefanprodan.github.io/podinfo: ${helm}podinfo
    https://bjw-s-labs.github.io/helm-charts: ${helm}bjw-s
http:
  retries: 1
cache:
  dir: $tmp/cache
EOF
export UPKEEP_CONFIG="$tmp/upkeep.yaml"

echo "== detecting updates" >&2
status=0
run() { "$@" || { rc=$?; echo "demo: $(basename "$1") exited $rc" >&2; [ "$rc" -eq 3 ] || status=$rc; }; }
{
  run "$bin/detect-k3s" --kubeconfig "$KUBECONFIG" --target latest
  run "$bin/detect-flux" --kubeconfig "$KUBECONFIG"
  run "$bin/detect-longhorn" --kubeconfig "$KUBECONFIG"
  # The fixture's manifests double as its GitOps checkout; the cluster says what is installed.
  run "$bin/detect-charts" --gitops testdata/clusters/homelab --kubeconfig "$KUBECONFIG"
} >"$tmp/updates.jsonl"
echo "== report" >&2
"$bin/merge-report" -o text "$tmp/updates.jsonl"
"$bin/merge-report" -o json "$tmp/updates.jsonl" >"$tmp/report.json"

echo "== the plan (upkeep plan: dependency order, one minor per hop, what is left out and why)" >&2
"$bin/upkeep" plan --report "$tmp/report.json" -o json >"$tmp/plan.json"
"$bin/upkeep" plan --report "$tmp/report.json"

echo "== what a run would change in Git (upkeep run --dry-run; the fixture doubles as the checkout)" >&2
"$bin/upkeep" run --dry-run --plan "$tmp/plan.json" --gitops testdata/clusters/homelab

echo "== a restore point before any update (snapshot create, then verify)" >&2
public="$("$bin/snapshot" keygen --out "$tmp/age-identity.txt")"
"$bin/snapshot" create --kubeconfig "$KUBECONFIG" --out "$tmp/restore-point.tar.zst" \
  --age-recipient "$public" >"$tmp/manifest.json"
python3 - "$tmp/manifest.json" "$tmp/restore-point.tar.zst" <<'PY' >&2
import json, os, sys
m = json.load(open(sys.argv[1]))
enc = sum(1 for f in m["files"] if f["encrypted"])
print(f"{m['name']}: {len(m['files'])} objects ({enc} age-encrypted), "
      f"{os.path.getsize(sys.argv[2]) // 1024} KiB; skipped: {'; '.join(m['skipped'])}")
PY
"$bin/snapshot" verify "$tmp/restore-point.tar.zst" --age-identity "$tmp/age-identity.txt" >&2
exit "$status"
