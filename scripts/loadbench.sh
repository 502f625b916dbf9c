#!/usr/bin/env bash
# Load benchmark: builds the release binaries, then runs `daemonset-guard serve` and the baseline
# server (examples/baseline.rs: same TLS + HTTP + JSON stack, no policy) side by side on 127.0.0.1
# and prints throughput, latency, CPU per request, RSS and start-to-ready time, each against the
# baseline. Takes a few minutes with the defaults; flags go to the benchmark, see
#   scripts/loadbench.sh --help
# e.g. scripts/loadbench.sh --duration 5 --rounds 5 --concurrency 1,16,64 --protocols h2
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin daemonset-guard --example baseline --example loadbench
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/examples/loadbench" \
    --server-bin "$target/daemonset-guard" \
    --baseline-bin "$target/examples/baseline" \
    "$@"
