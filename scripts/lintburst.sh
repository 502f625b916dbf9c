#!/usr/bin/env bash
# Memory of `daemonset-guard serve` around a burst of large POST /lint bodies: RSS idle, peak
# (VmHWM) during the burst, right after it, and after a few idle seconds (what the allocator
# returned). Bodies are the shared DaemonSet corpus repeated to ~3 MB; N clients post at once and
# retry on 503 until each got its report. Everything stays on 127.0.0.1.
#   scripts/lintburst.sh [BINARY] [CLIENTS] [extra serve flags...]
# e.g. scripts/lintburst.sh target/release/daemonset-guard 16 --lint-concurrency 2 --lint-memory-bytes 314572800
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/release/daemonset-guard}"
clients="${2:-16}"
shift $(( $# >= 2 ? 2 : $# ))
work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# ~3 MB YAML stream of the corpus.
: > "$work/body.yaml"
while [ "$(stat -c %s "$work/body.yaml")" -lt 3000000 ]; do
    for f in ../shared/corpus/daemonsets/*.yaml; do printf -- '---\n' >> "$work/body.yaml"; cat "$f" >> "$work/body.yaml"; done
done

port=$(( 20000 + RANDOM % 20000 ))
TMPDIR="$work" "$bin" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
    --log-format json "$@" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    ca=$(ls "$work"/daemonset-guard-dev-ca-*.pem 2>/dev/null | head -1 || true)
    if [ -n "$ca" ] && curl -fsS --cacert "$ca" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$server/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
sleep 1
idle=$(rss VmRSS)

post() {
    for _ in $(seq 600); do
        # HTTP/1.1: a 503 answered before the body is read closes the connection, which curl
        # reports with the status; over HTTP/2 curl 7.x drops it for the stream reset after it.
        code=$(curl -s --http1.1 --cacert "$ca" -o /dev/null -w '%{http_code}' \
            -H 'content-type: application/yaml' --data-binary @"$work/body.yaml" \
            "https://127.0.0.1:$port/lint" 2>/dev/null || true)
        [ "$code" = 200 ] && return 0
        [ "$code" = 503 ] || [ "$code" = 000 ] || { echo "client $1: HTTP $code" >&2; return 1; }
        sleep 0.2
    done
    return 1
}
start=$(date +%s.%N)
pids=()
for i in $(seq "$clients"); do post "$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
peak=$(rss VmHWM)
after=$(rss VmRSS)
sleep 5
later=$(rss VmRSS)
printf '%s: %d x %s bytes linted in %.1f s; RSS idle %s MiB, peak %s MiB, right after %s MiB, 5 s later %s MiB\n' \
    "$(basename "$bin")" "$clients" "$(stat -c %s "$work/body.yaml")" "$(echo "$end - $start" | bc)" \
    "$(mib "$idle")" "$(mib "$peak")" "$(mib "$after")" "$(mib "$later")"
