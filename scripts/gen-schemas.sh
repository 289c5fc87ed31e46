#!/usr/bin/env bash
# Regenerates schemas/*.json from the contract and configuration types.
set -euo pipefail
cd "$(dirname "$0")/.."
UPKEEP_BLESS=1 cargo test -q -p upkeep-contract --test schemas committed_schemas_are_fresh
UPKEEP_BLESS=1 cargo test -q -p upkeep-config --test schema
echo "schemas/ regenerated; review with git diff schemas/"
