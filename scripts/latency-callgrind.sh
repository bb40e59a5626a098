#!/usr/bin/env bash
# Instructions per sequential job (issue 13), counted by callgrind, so the figure does not
# depend on the machine's speed or load: `jobcenter bench` with its server in a child process
# (memory store, 1 client, 1 job in flight, 1 worker with 1 slot) is run twice under
# callgrind, with SMALL and LARGE jobs; the difference of the instruction counts divided by
# LARGE - SMALL cancels start-up and shutdown. Prints the server's and the bench process's
# (client + worker) instructions per job.
#
# Usage: scripts/latency-callgrind.sh [BINARY] [--check BASELINE_FILE]
#   BINARY defaults to target/profiling/jobcenter
#   (build: cargo build --profile profiling -p jobcenter-cli).
#   --check compares with BASELINE_FILE (lines `server N` and `bench N`) and fails when
#   either is more than TOLERANCE (default 1.05, i.e. 5 %; repeated runs agree within
#   0.3 %) above it.
#   STORE=sqlite measures the same with the SQLite store (a fresh file per run; the lines
#   are then `sqlite-server N` and `sqlite-bench N`): the SQL, JSON and sub-journal work a
#   durable job adds, which wall-clock runs hide behind the fsyncs.
# Updating the baseline: run it without --check and write its lines into
# scripts/latency-baseline.txt (see BENCHMARKS.md, "Latency").
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/profiling/jobcenter}
CHECK=${3:-}
[ "${2:-}" = "--check" ] || CHECK=""
SMALL=${SMALL:-200}
LARGE=${LARGE:-1200}
TOLERANCE=${TOLERANCE:-1.05}
STORE=${STORE:-memory}
case "$STORE" in
memory) PREFIX="" ;;
sqlite) PREFIX="sqlite-" ;;
*) echo "STORE must be memory or sqlite" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# total Ir of the server (the --serve-only child) and of the bench process for N jobs
run() {
    local n=$1 out="$dir/$1"
    mkdir -p "$out"
    local store=memory
    [ "$STORE" = sqlite ] && store="sqlite:$out/store.db"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.%p" \
        "$BIN" bench --embedded --server-process --store "$store" --clients 1 --in-flight 1 \
        --workers 1 --slots 1 --jobs "$n" --warmup 20 >"$out/log" 2>&1
    local server=0 bench=0 f ir
    for f in "$out"/cg.*; do
        ir=$(awk '/^summary:/ {print $2}' "$f")
        if grep -q -- '--serve-only' <(grep '^cmd:' "$f"); then server=$ir; else bench=$ir; fi
    done
    echo "$server $bench"
}
read -r s1 b1 < <(run "$SMALL")
read -r s2 b2 < <(run "$LARGE")
jobs=$((LARGE - SMALL))
server=$(( (s2 - s1) / jobs ))
bench=$(( (b2 - b1) / jobs ))
echo "${PREFIX}server $server"
echo "${PREFIX}bench $bench"
if [ -n "$CHECK" ]; then
    fail=0
    for side in server bench; do
        base=$(awk -v s="$PREFIX$side" '$1 == s {print $2}' "$CHECK")
        if [ -z "$base" ]; then
            echo "FAIL: no line $PREFIX$side in $CHECK" >&2
            fail=1
            continue
        fi
        now=${!side}
        if awk -v n="$now" -v b="$base" -v t="$TOLERANCE" 'BEGIN {exit !(n > b * t)}'; then
            echo "FAIL: $PREFIX$side $now instructions per job, baseline $base (tolerance $TOLERANCE)" >&2
            fail=1
        fi
    done
    exit $fail
fi
