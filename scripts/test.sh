#!/usr/bin/env bash
# The whole test suite: installs the external tools the chart tests need (helm 3/4 and
# kubernetes-validate, into .tools/), runs every test of the workspace (unit, integration, chart,
# soak, benches in test mode), then a short bounded run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh
export PATH="$PWD/.tools/bin:$PATH"

cargo test --workspace --all-targets

bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
