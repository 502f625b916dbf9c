#!/usr/bin/env bash
# Lint benchmark: generates two inputs (not checked in) and runs `daemonset-guard lint` over them
# in text, JSON and SARIF, printing wall time, CPU time (user + system) and peak RSS, one thread
# beside all of them, and the speedup (single-thread wall time / parallel wall time) with the
# parallel run's CPU time over the single thread's (above 1.00: what running in parallel costs):
#   tree    N DaemonSet files (5,000 by default) made from ../shared/corpus/daemonsets/*.yaml
#           with varied names;
#   stream  one YAML stream of 20,000 documents (~9.8 MB) like `helm template` of a monorepo:
#           Deployments, ConfigMaps, Services and 2% DaemonSets.
# Usage: scripts/lintbench.sh [--bin PATH] [--scale K] [--rounds R] [--dir DIR]
#   --bin     the binary to measure (default: builds and uses the release binary)
#   --scale   multiplies both inputs (10: 50,000 files and 200,000 documents)
#   --rounds  runs per figure; the best wall time (and its CPU and RSS) is printed
# A binary without `--jobs` (before parallel lint) is measured single-threaded with taskset only.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="" scale=1 rounds=3 dir="${TMPDIR:-/tmp}/lintbench"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --scale) scale="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        *) sed -n '2,13p' "$0"; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    cargo build --release --bin daemonset-guard
    bin="${CARGO_TARGET_DIR:-target}/release/daemonset-guard"
fi
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
corpus=../shared/corpus/daemonsets
files=$((5000 * scale)) docs=$((20000 * scale))

# Inputs, regenerated only when the scale changes.
tree="$dir/tree-$scale" stream="$dir/stream-$scale.yaml"
if [ ! -d "$tree" ] || [ ! -f "$stream" ]; then
    rm -rf "$tree" "$stream"
    mkdir -p "$tree"
    # One awk reads the corpus once; every DaemonSet gets its own metadata.name.
    awk -v n="$files" -v out="$tree" -v docs="$docs" -v stream="$stream" '
        FNR == 1 { f++ } { text[f] = text[f] $0 "\n" }
        function renamed(t, suffix,   s) {
            s = t; sub(/\n  name: [^\n]*/, "&-" suffix, s); return s
        }
        END {
            for (i = 0; i < n; i++) {
                d = sprintf("%s/%02d", out, i % 100)
                if (i < 100) system("mkdir -p " d)
                p = sprintf("%s/ds-%05d.yaml", d, i)
                printf "%s", renamed(text[i % f + 1], i) > p
                close(p)
            }
            for (i = 0; i < docs; i++) {
                app = sprintf("app-%05d", int(i / 4))
                printf "---\n# Source: monorepo/charts/%s/templates/%d.yaml\n", app, i % 50 > stream
                if (i % 50 == 49) { printf "%s", renamed(text[int(i / 50) % f + 1], i) > stream; continue }
                k = i % 3
                if (k == 0) {
                    printf "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  namespace: team-%d\n  labels:\n    app.kubernetes.io/name: %s\n    app.kubernetes.io/managed-by: Helm\n    helm.sh/chart: %s-1.2.3\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: %s\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: %s\n    spec:\n      containers:\n        - name: app\n          image: \"registry.example.com/%s:1.%d.0\"\n          ports:\n            - containerPort: 8080\n          resources:\n            requests: {cpu: 100m, memory: 128Mi}\n", app, i % 20, app, app, app, app, app, i % 9 > stream
                } else if (k == 1) {
                    printf "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-config\n  namespace: team-%d\n  labels:\n    app.kubernetes.io/name: %s\n    app.kubernetes.io/managed-by: Helm\ndata:\n  LOG_LEVEL: info\n  FEATURE_FLAGS: \"a,b,c\"\n", app, i % 20, app > stream
                } else {
                    printf "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: team-%d\n  labels:\n    app.kubernetes.io/name: %s\n    app.kubernetes.io/managed-by: Helm\nspec:\n  selector:\n    app.kubernetes.io/name: %s\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n", app, i % 20, app, app > stream
                }
            }
        }' "$corpus"/*.yaml
fi
echo "inputs: $tree ($(find "$tree" -name '*.yaml' | wc -l) files, $(du -sh --apparent-size "$tree" | cut -f1)); $stream ($docs documents, $(du -h --apparent-size "$stream" | cut -f1))"

jobs_flag=0
"$bin" lint --help | grep -q -- '--jobs' && jobs_flag=1

# Prints "wall user system rss-KiB" of the best of $rounds runs of: $@ (stdout discarded).
measure() {
    local best="" line
    for _ in $(seq "$rounds"); do
        line=$(/usr/bin/time -f '%e %U %S %M' "$@" 2>&1 >/dev/null | tail -1)
        if [ -z "$best" ] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x); split(b, y); exit !(x[1] < y[1]) }'; then
            best="$line"
        fi
    done
    echo "$best"
}

# Prints one line: the two measurements, the speedup and the CPU ratio.
row() {
    awk -v i="$1" -v f="$2" -v a="$3" -v b="$4" 'BEGIN {
        split(a, x); split(b, y)
        printf "%-8s %-6s %5.2f s %5.2f s %4.0f MiB   %5.2f s %5.2f s %4.0f MiB   %5.2fx   %5.2f\n",
            i, f, x[1], x[2] + x[3], x[4] / 1024, y[1], y[2] + y[3], y[4] / 1024,
            (y[1] > 0 ? x[1] / y[1] : 0), (x[2] + x[3] > 0 ? (y[2] + y[3]) / (x[2] + x[3]) : 0) }'
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-6s %-28s %-28s %-8s %s\n' "" "" "1 thread (taskset -c 0)" "parallel ($(nproc) cores)" speedup "cpu"
printf '%-8s %-6s %-28s %-28s %-8s %s\n' input format "wall    cpu     peak RSS" "wall    cpu     peak RSS" "(wall)" "ratio"
for input in tree stream; do
    path="$tree"; [ "$input" = stream ] && path="$stream"
    for format in text json sarif; do
        if [ "$jobs_flag" = 1 ]; then
            one=$(measure taskset -c 0 "$bin" lint --jobs 1 --format "$format" "$path")
            all=$(measure "$bin" lint --format "$format" "$path")
        else
            one=$(measure taskset -c 0 "$bin" lint --format "$format" "$path")
            all=$(measure "$bin" lint --format "$format" "$path")
        fi
        row "$input" "$format" "$one" "$all"
    done
done
# From stdin, as in `helm template . | daemonset-guard lint`.
one=$(measure sh -c "taskset -c 0 \"\$0\" lint --format json < \"\$1\"" "$bin" "$stream")
all=$(measure sh -c "\"\$0\" lint --format json < \"\$1\"" "$bin" "$stream")
row stdin json "$one" "$all"
