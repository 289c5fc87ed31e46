#!/usr/bin/env bash
# End to end on a real, disposable k3s cluster with Flux installed: scan, snapshot and
# verify, validate, a chart update through `upkeep run` (direct mode, maintenance freeze
# on), a broken update that rolls back, and a restore of a deleted object.
#
#   UPKEEP_E2E_KUBECONFIG=~/.kube/e2e.yaml tests/e2e/run.sh
#
# Skips (exit 0, says so) without UPKEEP_E2E_KUBECONFIG. Everything happens in the
# namespace upkeep-e2e, deleted at the end; the cluster must be one you can throw away.
# Needs the binaries built (cargo build --bins), kubectl, and the network for the podinfo
# chart repository. .github/workflows/e2e.yml creates such a cluster with k3d and runs this.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${UPKEEP_E2E_KUBECONFIG:-}" ]; then
  echo "SKIP: tests/e2e: UPKEEP_E2E_KUBECONFIG is not set (needs a disposable k3s cluster with Flux)" >&2
  exit 0
fi
bin=$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)
export PATH="$bin:$PATH" KUBECONFIG=$UPKEEP_E2E_KUBECONFIG NO_COLOR=1
ns=upkeep-e2e
work=$(mktemp -d)
export HOME=$work/home UPKEEP_CONFIG=$work/upkeep.yaml
mkdir -p "$HOME"
cleanup() {
  kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  upkeep maintenance off >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== e2e: %s\n' "$*" >&2; }
fail() { echo "e2e FAILED: $*" >&2; exit 1; }
# `expect CODE CMD...`: runs CMD, which must exit CODE.
expect() {
  local want=$1; shift
  set +e; "$@"; local got=$?; set -e
  [ "$got" = "$want" ] || fail "$* exited $got, expected $want"
}
hr_version() {
  kubectl -n "$ns" get helmrelease podinfo -o jsonpath='{.status.history[0].chartVersion}' 2>/dev/null || true
}
wait_version() {
  for _ in $(seq 1 120); do [ "$(hr_version)" = "$1" ] && return 0; sleep 5; done
  fail "podinfo never reached $1 (at $(hr_version))"
}

step "the cluster"
kubectl get nodes -o wide >&2
kubectl get crd helmreleases.helm.toolkit.fluxcd.io >/dev/null || fail "Flux is not installed (flux install)"

public=$(env -u UPKEEP_CONFIG snapshot keygen --out "$work/age.txt")
cat >"$UPKEEP_CONFIG" <<YAML
stateDir: $work/state
snapshot:
  ageRecipients: [$public]
run:
  validators: [flux, apps]
  # A version that does not exist leaves the HelmRelease failing on its artifact, never
  # Stalled: the step waits this long before it rolls back.
  stepTimeout: 3m
YAML

step "podinfo 6.5.0 through Flux"
kubectl apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $ns}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: podinfo, namespace: $ns}
spec: {interval: 1h, url: https://stefanprodan.github.io/podinfo}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: podinfo, namespace: $ns}
spec:
  interval: 10m
  chart:
    spec: {chart: podinfo, version: 6.5.0, sourceRef: {kind: HelmRepository, name: podinfo}}
  install: {remediation: {retries: 1}}
  upgrade: {remediation: {retries: 1, remediateLastFailure: true}}
  values: {replicaCount: 1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep-me, namespace: $ns}
data: {answer: "42"}
YAML
wait_version 6.5.0

step "scan"
# 3: some upstream did not answer (GitHub's anonymous rate limit, say); the report says which.
set +e; upkeep -o json scan --save "$work/report.json" >/dev/null; rc=$?; set -e
[ "$rc" = 0 ] || [ "$rc" = 3 ] || fail "scan exited $rc"
[ -s "$work/report.json" ] || fail "scan saved no report"
grep -q '"kind":"UpdateReport"' "$work/report.json" || fail "the saved report is not an UpdateReport"

step "snapshot, verified with its identity"
snapshot create -n "$ns" --age-recipient "$public" --out "$work/point.tar.zst" >"$work/manifest.json"
snapshot verify "$work/point.tar.zst" --age-identity "$work/age.txt" >&2

step "validators on the healthy cluster"
validate-flux -n "$ns" -o text >&2
validate-apps -n "$ns" -o text >&2

plan() {
  cat >"$work/$1" <<JSON
{"apiVersion":"upkeep.dev/v1alpha1","kind":"UpdatePlan","createdAt":"2026-12-04T00:00:00Z",
 "steps":[{"index":1,"component":{"kind":"chart","name":"podinfo","namespace":"$ns"},
  "from":"$2","to":"$3","update":"minor","reason":"e2e","reversibility":"revert"}]}
JSON
  echo "$work/$1"
}

step "a chart update: podinfo 6.5.0 -> 6.6.0 (direct mode, maintenance freeze on)"
expect 0 upkeep -o json run --yes --plan "$(plan p1.json 6.5.0 6.6.0)" >"$work/run1.json"
wait_version 6.6.0
grep -q '"status":"completed"' "$work/run1.json" || fail "run 1 did not complete: $(cat "$work/run1.json")"
[ -z "$(kubectl get validatingadmissionpolicybinding upkeep-maintenance-freeze --ignore-not-found -o name)" ] \
  || fail "the maintenance freeze was left on"

step "a broken update: podinfo 6.6.0 -> 0.0.1 (does not exist) is rolled back, exit 1"
expect 1 upkeep -o json run --yes --plan "$(plan p2.json 6.6.0 0.0.1)" >"$work/run2.json"
grep -q '"status":"rolled-back"' "$work/run2.json" || fail "run 2 was not rolled back: $(cat "$work/run2.json")"
wait_version 6.6.0
validate-flux -n "$ns" -o text >&2

step "restore: a deleted ConfigMap comes back from the restore point"
kubectl -n "$ns" delete configmap keep-me
restore "$work/point.tar.zst" --age-identity "$work/age.txt" --only ConfigMap >&2
[ "$(kubectl -n "$ns" get configmap keep-me -o jsonpath='{.data.answer}')" = 42 ] || fail "keep-me was not restored"

step "history"
upkeep history >&2
echo "e2e: all passed" >&2
