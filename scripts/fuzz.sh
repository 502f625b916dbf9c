#!/usr/bin/env bash
# Short, bounded fuzzing of every cargo-fuzz target: `scripts/fuzz.sh SECONDS` (default 60 per target).
# Seeds come from the checked-in corpus under fuzz/seeds/ plus the shared real-world material
# (../shared/fixtures/admission, ../shared/corpus/daemonsets), which is read in place at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1

shared=../shared
work=fuzz/corpus
for target in $(cargo fuzz list); do
  mkdir -p "$work/$target"
  cp -n fuzz/seeds/"$target"/* "$work/$target/" 2>/dev/null || true
  case "$target" in
    admission_review) [ -d "$shared/fixtures/admission" ] && cp -n "$shared"/fixtures/admission/*.json "$work/$target/" ;;
    manifest_lint) [ -d "$shared/corpus/daemonsets" ] && cp -n "$shared"/corpus/daemonsets/*.yaml "$work/$target/" ;;
  esac
  echo "== fuzz $target for ${secs}s"
  cargo fuzz run "$target" "$work/$target" -- -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(stat::|#[0-9]+ *DONE|==[0-9]+==|SUMMARY|Done)' || true
  # libFuzzer exits non-zero on a crash; grep above would hide that, so check for artifacts.
  if ls fuzz/artifacts/"$target"/crash-* fuzz/artifacts/"$target"/oom-* fuzz/artifacts/"$target"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $target found a failure:"; ls fuzz/artifacts/"$target"; exit 1
  fi
done
