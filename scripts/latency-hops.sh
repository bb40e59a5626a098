#!/usr/bin/env bash
# Wall clock per hop of sequential memory-store jobs (issue 13): `jobcenter bench` with its
# server in a child process, one job at a time; one second of its sendto/recvfrom system
# calls recorded system wide with perf tracepoints, then split into time between the
# processes (delivery + wake-up) and time inside each (scripts/latency-hops.py).
# Needs perf and python3; run as root on an otherwise idle machine.
# Usage: scripts/latency-hops.sh [BINARY]   (default target/release/jobcenter)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-target/release/jobcenter}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
"$B" bench --embedded --server-process --store memory --clients 1 --in-flight 1 --workers 1 \
  --slots 1 --jobs 40000 --warmup 20 >"$dir/bench.txt" 2>&1 &
for _ in $(seq 50); do pgrep -f -- "--serve-only" >/dev/null && break; sleep 0.1; done
sleep 1 # past the raw pings and the warm-up
server=$(pgrep -f -- "--serve-only" | head -1)
ls "/proc/$server/task" >"$dir/server-tids"
perf record -q -o "$dir/perf.data" -e syscalls:sys_enter_sendto -e syscalls:sys_exit_recvfrom \
  -a -- sleep 1 2>/dev/null
perf script -i "$dir/perf.data" 2>/dev/null >"$dir/perf.txt"
python3 scripts/latency-hops.py "$dir/perf.txt" "$dir/server-tids"
kill $(jobs -p) 2>/dev/null || true
