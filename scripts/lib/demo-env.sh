# shellcheck shell=bash
# The demo world, shared by scripts: sim-upstream on testdata/upstream, sim-cluster on the
# homelab fixture (testdata/clusters/homelab with testdata/sim-cluster/homelab-SIM.yaml), an
# upkeep.yaml pointing at both, a clean HOME, and a GitOps repository Flux reconciles.
#
# Source it from the repository root, then:
#
#   demo_env_init            # once: a temporary root, clean environment, cleanup on EXIT
#   demo_env_start NAME      # a fresh world under $DEMO_ROOT/NAME; exports the variables below
#                            # (DEMO_SIM_EXTRA="CONTROLLER KEY VALUE" lines add settings to the
#                            # simulated controllers, e.g. "upgrades failNodes [k3s-s3]")
#   demo_env_stop            # stops that world's simulators (demo_env_start calls it too)
#
# Exported by demo_env_start:
#   KUBECONFIG      the kubeconfig sim-cluster wrote
#   UPKEEP_CONFIG   an upkeep.yaml: the recorded upstreams, the cache, stateDir, gitops.dir,
#                   snapshot.ageRecipients (the identity is $AGE_IDENTITY), short timeouts
#   GITOPS          a git checkout of the homelab (clusters/homelab, infrastructure, apps),
#                   committed and pushed to $ORIGIN; Flux's GitRepository flux-system
#                   reconciles from $ORIGIN, so a commit pushed there is applied
#   ORIGIN          the bare repository behind $GITOPS
#   WORK            an empty scratch directory (the current directory of doc commands)
#   STATE_DIR       upkeep's state directory (runs, history.db, restore points)
#   AGE_IDENTITY    the age identity the restore points are encrypted to
#   AGE_RECIPIENT   its public key
#   UPSTREAM_GITHUB, UPSTREAM_HELM   sim-upstream's base URLs
#   UPKEEP_REPO     the repository root (for testdata paths)
#
# The binaries are taken from ${CARGO_TARGET_DIR:-target}/debug, put first on PATH.

DEMO_BIN=${DEMO_BIN:-${CARGO_TARGET_DIR:-target}/debug}
DEMO_PIDS=()

demo_env_init() {
  UPKEEP_REPO=$(pwd)
  DEMO_BIN=$(cd "$DEMO_BIN" && pwd)
  DEMO_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-docs.XXXXXX")
  export UPKEEP_REPO DEMO_ROOT
  export PATH="$DEMO_BIN:$PATH"
  # Nothing of the user's: configuration, tokens, caches, kubeconfig.
  export HOME="$DEMO_ROOT/home" NO_COLOR=1 USER=operator
  unset GITHUB_TOKEN UPKEEP_CONFIG UPKEEP_GITHUB_API UPKEEP_CHANNELS_URL UPKEEP_CACHE_DIR \
    UPKEEP_OFFLINE UPKEEP_GITOPS_DIR UPKEEP_GITHUB_TOKEN_FILE XDG_CONFIG_HOME XDG_CACHE_HOME \
    XDG_STATE_HOME KUBECONFIG UPKEEP_LOG UPKEEP_HTTP_TIMEOUT UPKEEP_CONNECT_TIMEOUT || true
  mkdir -p "$HOME"
  export GIT_AUTHOR_NAME=operator GIT_AUTHOR_EMAIL=operator@home.lan \
    GIT_COMMITTER_NAME=operator GIT_COMMITTER_EMAIL=operator@home.lan
  git config --global init.defaultBranch main
  git config --global user.name operator
  git config --global user.email operator@home.lan
  trap demo_env_cleanup EXIT
}

demo_env_stop() {
  local p
  for p in "${DEMO_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  DEMO_PIDS=()
}

demo_env_cleanup() {
  demo_env_stop
  [ -n "${DEMO_ROOT:-}" ] && rm -rf "$DEMO_ROOT"
}

# Starts a simulator in the background and waits for its one-line JSON ready message.
_demo_env_serve() {
  local dir=$1 name=$2; shift 2
  "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  DEMO_PIDS+=($!)
  local _
  for _ in $(seq 1 300); do
    [ -s "$dir/$name.out" ] && return 0
    kill -0 "${DEMO_PIDS[-1]}" 2>/dev/null || { echo "$name exited:" >&2; cat "$dir/$name.err" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not become ready" >&2
  return 1
}

_demo_env_field() {
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"
}

# A fresh world under $DEMO_ROOT/$1.
demo_env_start() {
  demo_env_stop
  local dir="$DEMO_ROOT/$1"
  local fx="$UPKEEP_REPO/testdata/clusters/homelab"
  mkdir -p "$dir/work" "$dir/state"
  WORK="$dir/work" STATE_DIR="$dir/state" GITOPS="$dir/home-ops" ORIGIN="$dir/origin.git"
  export WORK STATE_DIR GITOPS ORIGIN

  # The recorded upstream world, plus a podinfo chart repository (constructed: the
  # catalogue versions of homelab-SIM.yaml and 6.9.0, which the simulated Flux fails to
  # install), so that a chart update and its rollback can be shown.
  local up="$dir/upstream-fixture"
  mkdir -p "$up/helm/podinfo"
  ln -s "$UPKEEP_REPO/testdata/upstream/github" "$up/github"
  ln -s "$UPKEEP_REPO/testdata/upstream/channels" "$up/channels"
  ln -s "$UPKEEP_REPO/testdata/upstream/helm/longhorn" "$up/helm/longhorn"
  python3 - "$up/helm/podinfo/index.yaml" <<'PY'
import hashlib, sys
rows = [("6.9.0", "2025-06-11T09:00:00Z"), ("6.8.0", "2025-03-04T09:00:00Z"),
        ("6.7.1", "2024-10-08T09:00:00Z"), ("6.7.0", "2024-07-02T09:00:00Z")]
out = ["apiVersion: v1", "entries:", "  podinfo:"]
for v, t in rows:
    out += [f"  - apiVersion: v2", f"    appVersion: {v}", f"    created: \"{t}\"",
            "    description: Podinfo Helm chart for Kubernetes",
            f"    digest: {hashlib.sha256(v.encode()).hexdigest()}",
            "    kubeVersion: '>=1.23.0-0'", "    name: podinfo", "    type: application",
            "    urls:", f"    - https://stefanprodan.github.io/podinfo/podinfo-{v}.tgz",
            f"    version: {v}"]
out.append('generated: "2025-06-11T09:00:00Z"')
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
  # homelab-SIM.yaml, with Longhorn 1.9.2 and 1.10.2 in the chart catalogue, and podinfo 6.9.0 as a
  # broken release.
  python3 - "$UPKEEP_REPO/testdata/sim-cluster/homelab-SIM.yaml" "$dir/SIM.yaml" <<'PY'
import os, sys
text = open(sys.argv[1]).read()
for anchor, extra in [
    ("          - {version: 6.8.0, appVersion: 6.8.0}\n",
     "          - {version: 6.9.0, appVersion: 6.9.0, broken: true}\n"),
    ("          - {version: 1.9.0, appVersion: v1.9.0}\n",
     "          - {version: 1.9.2, appVersion: v1.9.2}\n          - {version: 1.10.2, appVersion: v1.10.2}\n"),
]:
    assert anchor in text, f"homelab-SIM.yaml changed: {anchor.strip()} is not in its catalogue"
    text = text.replace(anchor, anchor + extra)
# DEMO_SIM_EXTRA: "CONTROLLER KEY VALUE" lines, added to that controller's section.
for line in os.environ.get("DEMO_SIM_EXTRA", "").splitlines():
    if not line.strip():
        continue
    section, key, value = line.split(None, 2)
    head = f"  {section}:\n"
    assert head in text, f"DEMO_SIM_EXTRA: no controllers.{section} in homelab-SIM.yaml"
    text = text.replace(head, f"{head}    {key}: {value}\n", 1)
open(sys.argv[2], "w").write(text)
PY
  _demo_env_serve "$dir" upstream "$DEMO_BIN/sim-upstream" serve \
    --fixture "$up" --rate-limit 5000 || return 1
  _demo_env_serve "$dir" cluster "$DEMO_BIN/sim-cluster" serve --fixture "$fx" \
    --config "$dir/SIM.yaml" --kubeconfig-out "$dir/kubeconfig" || return 1
  UPSTREAM_GITHUB=$(_demo_env_field "$dir/upstream.out" github)
  UPSTREAM_HELM=$(_demo_env_field "$dir/upstream.out" helm)
  export UPSTREAM_GITHUB UPSTREAM_HELM KUBECONFIG="$dir/kubeconfig"

  # The GitOps repository: the fixture laid out the way its Kustomizations read it
  # (flux-system: ./clusters/homelab, infrastructure: ./infrastructure, apps: ./apps).
  mkdir -p "$GITOPS/clusters/homelab" "$GITOPS/infrastructure" "$GITOPS/apps"
  # clusters/homelab holds the HelmRepositories of flux.yaml (not the controllers, nor the
  # GitRepository, which points at $ORIGIN here).
  python3 - "$fx/10-flux-system/flux.yaml" >"$GITOPS/clusters/homelab/helm-repositories.yaml" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---\n")
print("\n---\n".join(d.strip("\n") for d in docs if "\nkind: HelmRepository\n" in "\n" + d + "\n"))
PY
  cp "$fx"/20-infrastructure/*.yaml "$GITOPS/infrastructure/"
  cp "$fx"/30-apps/*.yaml "$GITOPS/apps/"
  git init -q --bare "$ORIGIN"
  git -C "$GITOPS" init -q
  git -C "$GITOPS" add -A
  git -C "$GITOPS" commit -q -m "the homelab"
  git -C "$GITOPS" remote add origin "$ORIGIN"
  git -C "$GITOPS" push -q origin main
  # Flux's source now reads that repository.
  kubectl -n flux-system patch gitrepositories.source.toolkit.fluxcd.io flux-system --type merge \
    -p "{\"spec\":{\"url\":\"file://$ORIGIN\"}}" >/dev/null

  # Settled: Flux has fetched $ORIGIN and applied it, every check passes, and the
  # simulated system-upgrade-controller has finished the pass that Flux's re-apply of the
  # Plans starts (it cordons each node in turn, at the version it already runs).
  local _i
  for _i in $(seq 1 150); do
    if "$DEMO_BIN/validate-flux" -q >/dev/null 2>&1 && [[ "${DEMO_SIM_EXTRA:-}" == *failNodes* ]]; then
      # A failing node never completes that pass: give it the time the others take.
      sleep 5
      break
    fi
    if "$DEMO_BIN/validate-flux" -q >/dev/null 2>&1 &&
      kubectl get plans.upgrade.cattle.io -A -o json | python3 -c '
import json, sys
plans = json.load(sys.stdin)["items"]
done = all(any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in p.get("status", {}).get("conditions", [])) for p in plans)
sys.exit(0 if plans and done else 1)' &&
      [ -z "$(kubectl get nodes -o jsonpath='{.items[*].spec.unschedulable}')" ]; then
      break
    fi
    [ "$_i" -lt 150 ] || { echo "the demo world did not settle (Flux checks, Plans, cordoned nodes)" >&2; return 1; }
    sleep 0.2
  done

  AGE_IDENTITY="$dir/age-identity.txt"
  AGE_RECIPIENT=$("$DEMO_BIN/snapshot" keygen --out "$AGE_IDENTITY")
  export AGE_IDENTITY AGE_RECIPIENT
  UPKEEP_CONFIG="$dir/upkeep.yaml"
  export UPKEEP_CONFIG
  cat >"$UPKEEP_CONFIG" <<YAML
apiVersion: upkeep.dev/v1alpha1
kind: Config
upstreams:
  github:
    url: $UPSTREAM_GITHUB
  k3sChannels:
    url: $UPSTREAM_GITHUB/v1-release/channels
  # The recorded world holds the Longhorn chart repository; the others answer 404.
  helmMirrors:
    https://charts.longhorn.io: ${UPSTREAM_HELM}longhorn
    https://kubernetes.github.io/ingress-nginx: ${UPSTREAM_HELM}ingress-nginx
    https://charts.jetstack.io: ${UPSTREAM_HELM}jetstack
    https://stefanprodan.github.io/podinfo: ${UPSTREAM_HELM}podinfo
    https://bjw-s-labs.github.io/helm-charts: ${UPSTREAM_HELM}bjw-s
http:
  retries: 0
  timeout: 10s
cache:
  dir: $dir/cache
stateDir: $STATE_DIR
gitops:
  dir: $GITOPS
snapshot:
  ageRecipients: [$AGE_RECIPIENT]
run:
  validators: [flux, apps]
  stepTimeout: 60s
YAML
}
