#!/usr/bin/env bash
# Bounded fuzz smoke run (docs/fuzzing.md): build every cargo-fuzz target and run each one
# for a few seconds over its committed corpus. Fails on any crash, hang (10 s per input)
# or out-of-memory. New inputs go to a temporary directory, so the checkout stays clean.
#
#   FUZZ_SMOKE_SECS  seconds per target (default 12; 5 targets ≈ 60 s)
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-fuzz passes nightly -Z flags; the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SMOKE_SECS:-12}"
# Same flags as the long runs: release, debug assertions and overflow checks, no sanitizer.
flags=(-O -a -s none)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cargo fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  dict=()
  case "$target" in
    jcl) dict=(-dict=fuzz/dict/jcl.dict) ;;
    jsonrpc | rpc_peer | netstring) dict=(-dict=fuzz/dict/jsonrpc.dict) ;;
  esac
  mkdir -p "$scratch/$target"
  echo "== fuzz $target (${secs}s)"
  # The first corpus directory receives new inputs; the committed one is only read.
  log="$scratch/$target.log"
  if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units)' "$log" || true
done
echo "fuzz smoke: all targets ran clean"
