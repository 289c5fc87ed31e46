#!/usr/bin/env bash
# The real-k3s end-to-end tests (tests/e2e/run.sh): they skip, saying so, unless
# UPKEEP_E2E_KUBECONFIG names a disposable k3s cluster with Flux installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec tests/e2e/run.sh
