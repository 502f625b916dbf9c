#!/usr/bin/env bash
# Short, bounded fuzzing of the cargo-fuzz targets: `scripts/fuzz.sh [SECONDS] [TARGET...]`
# (default 60 s per target, every target). Seeds: the hand-made ones under fuzz/seeds/<target>/
# plus the shared real-world material (../shared/fixtures/admission, ../shared/corpus/daemonsets),
# copied at run time into the gitignored fuzz/corpus/<target>/, where libFuzzer also keeps what it
# finds, so later runs start from there. Exits non-zero when a target crashes, leaks, runs out of
# memory or times out; the reproducer is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1

shared=../shared
work=fuzz/corpus
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi

for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"$target"/* "$corpus/" 2>/dev/null || true
  case "$target" in
    admission_review)
      if [ -d "$shared/fixtures/admission" ]; then cp -n "$shared"/fixtures/admission/*.json "$corpus/"; fi ;;
    manifest_lint)
      # The target reads its first byte as the output format/operation selector.
      if [ -d "$shared/corpus/daemonsets" ]; then
        for f in "$shared"/corpus/daemonsets/*.yaml; do
          dest="$corpus/shared-$(basename "$f")"
          [ -e "$dest" ] || { printf '\0'; cat "$f"; } >"$dest"
        done
      fi ;;
  esac
  rm -rf fuzz/artifacts/"$target"
  echo "== fuzz $target for ${secs}s"
  log="$(mktemp)"
  # -timeout: one input taking more than 10 s is a denial of service worth a report.
  RUST_BACKTRACE=1 cargo fuzz run "$target" "$corpus" -- -max_total_time="$secs" -max_len=262144 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || true
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE|SUMMARY|==[0-9]+== *ERROR|thread .* panicked)' "$log" || true
  # libFuzzer exits non-zero on a crash, but so does a build failure: check both explicitly.
  if ! grep -q 'DONE' "$log"; then
    if ls fuzz/artifacts/"$target"/* >/dev/null 2>&1; then
      echo "fuzz target $target found a failure:"; grep -A30 -E 'panicked|ERROR: ' "$log" | head -60
      ls fuzz/artifacts/"$target"
    else
      echo "fuzz target $target did not run:"; tail -40 "$log"
    fi
    rm -f "$log"; exit 1
  fi
  rm -f "$log"
done
