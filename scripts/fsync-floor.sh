#!/usr/bin/env bash
# The floor of a durable sequential job on this machine's disk (issue 9, "SQLite ≥ 2,000 jobs/s
# sequential"): the same bench against
#   A  the memory store (inline, as shipped),
#   B  the memory store run like a durable store (every call through the store thread),
#   C  B plus a real fdatasync per sync, after writing FRAMES WAL-sized frames (24 + 4,096
#      bytes each, as SQLite does) to a file on the same disk: two per job, as the promise
#      needs (the create_job answer and the job_done) and no SQL at all,
#   D  SQLite, sync=full (the default),
#   E  SQLite, sync=normal (no fsync),
# ROUNDS times in turn, JOBS sequential jobs each. B and C come from a build of HEAD with
# scripts/fsync-floor.patch applied (in a temporary worktree, never committed); A, D and E
# from BINARY. See BENCHMARKS.md, "SQLite sequential: the floor of two fsyncs".
# Usage: scripts/fsync-floor.sh [BINARY]   (default target/release/jobcenter)
#   env: JOBS (3000), ROUNDS (3), FRAMES (4), FLOOR_TARGET (the patched build's target dir,
#   kept between runs; default target/fsync-floor)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/jobcenter}
JOBS=${JOBS:-3000}
ROUNDS=${ROUNDS:-3}
FRAMES=${FRAMES:-4}
FLOOR_TARGET=$(realpath -m "${FLOOR_TARGET:-target/fsync-floor}")
[ -x "$BIN" ] || { echo "$BIN: no such binary (cargo build --release)" >&2; exit 2; }
dir=$(mktemp -d -p "$PWD" .fsync-floor.XXXXXX)
tree="$dir/tree"
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

git worktree add -q --detach "$tree" HEAD
git -C "$tree" apply "$PWD/scripts/fsync-floor.patch"
echo "building the patched server (target dir $FLOOR_TARGET)..."
(cd "$tree" && CARGO_TARGET_DIR="$FLOOR_TARGET" cargo build --release -q -p jobcenter-cli)
PATCHED="$FLOOR_TARGET/release/jobcenter"

run() { # label, binary, store, env assignments...
    local label=$1 bin=$2 store=$3
    shift 3
    rm -f "$dir"/store.db* "$dir/fsync.bin"
    local out
    out=$(env "$@" "$bin" bench --embedded --server-process --store "$store" --clients 1 \
        --in-flight 1 --workers 1 --slots 1 --jobs "$JOBS" 2>&1 | grep -A2 '^call')
    printf '%s | %s | %s | %s\n' "$label" \
        "$(echo "$out" | head -1 | grep -o '[0-9]* /s')" \
        "$(echo "$out" | grep -o 'p50 [0-9.]*' | head -1)" \
        "$(echo "$out" | grep -o 'server process: [0-9.]* us' | sed 's/server process: //')"
}

echo "variant | jobs/s | latency | server CPU per job"
for _ in $(seq "$ROUNDS"); do
    run "A memory, inline            " "$BIN" memory
    run "B memory, store thread      " "$PATCHED" memory FLOOR_DURABLE=1
    run "C B + fdatasync, $FRAMES frames   " "$PATCHED" memory FLOOR_DURABLE=1 \
        FLOOR_FSYNC="$dir/fsync.bin" FLOOR_FRAMES="$FRAMES"
    run "D sqlite, sync=full         " "$BIN" "sqlite:$dir/store.db"
    run "E sqlite, sync=normal       " "$BIN" "sqlite:$dir/store.db?sync=normal"
done
