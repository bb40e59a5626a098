#!/usr/bin/env bash
# Issue 9's side-by-side store benchmark: the `calladd` workflow against memory, SQLite,
# PostgreSQL with one node and PostgreSQL with three nodes, sequential and with 1,000 jobs
# in flight, every figure from `jobcenter bench` in one run. Needs PostgreSQL on
# 127.0.0.1:5432 (trust auth, user postgres); makes and drops its own databases.
# Usage: scripts/bench-stores.sh [JOBS_IN_FLIGHT_RUN] [JOBS_SEQUENTIAL]   (B=path/to/jobcenter)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release/jobcenter}
N=${1:-100000}
S=${2:-5000}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT
fresh_pg() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"; }
par="--clients 4 --in-flight 1000 --workers 4 --slots 250"
seq="--clients 1 --in-flight 1 --workers 1 --slots 1"
run() { # name, store, mode args, jobs
  echo "== $1 ($2)"
  "$B" bench --embedded --server-process --store "$2" $3 --jobs "$4" 2>&1 | grep -E "^(call|raw) |latency|cpu" | tail -3
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
run "memory, sequential" memory "$seq" "$S"
run "memory, 1000 in flight" memory "$par" "$N"
run "sqlite, sequential" "sqlite:$DIR/seq.db" "$seq" "$S"
run "sqlite, 1000 in flight" "sqlite:$DIR/par.db" "$par" "$N"
fresh_pg jc_bench_seq; run "postgres 1 node, sequential" "$PG/jc_bench_seq" "$seq" "$((S / 2))"
fresh_pg jc_bench_par; run "postgres 1 node, 1000 in flight" "$PG/jc_bench_par" "$par" "$((N / 4))"
# Three nodes: three `serve` processes on one database, one bench per node (each 1/3 of
# the load and of the workers); the total rate is the sum.
fresh_pg jc_bench_3
PORTS=()
for i in 0 1 2; do
  "$B" serve --listen 127.0.0.1:0 --load examples/jcl --insecure-dev-auth --store "$PG/jc_bench_3" 2>"$DIR/n$i.log" &
  for _ in $(seq 100); do grep -q "listening on" "$DIR/n$i.log" && break; sleep 0.1; done
  PORTS+=("$(grep -o 'listening on .*' "$DIR/n$i.log" | grep -o '[0-9]*$')")
done
echo "== postgres 3 nodes, 3 x 334 in flight (one bench per node)"
for i in 0 1 2; do
  "$B" bench --port "${PORTS[$i]}" --who b --token b --clients 2 --in-flight 334 --workers 2 --slots 167 \
    --jobs "$((N / 12))" >"$DIR/b$i.out" 2>&1 &
done
wait $(jobs -p | tail -3) || true
for i in 0 1 2; do grep -E "^call " "$DIR/b$i.out"; done
# All jobs over the slowest bench's time (a sum of the three rates overstates when one ends early).
awk '/^call /{n+=$2; for(i=1;i<=NF;i++) if($i=="in" && $(i+2)=="s:" && $(i+1)>t) t=$(i+1)} END {printf "total: %.0f jobs/s (%d jobs in %.3f s)\n", n/t, n, t}' "$DIR"/b*.out
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS jc_bench_seq WITH (FORCE)" -c "DROP DATABASE IF EXISTS jc_bench_par WITH (FORCE)" -c "DROP DATABASE IF EXISTS jc_bench_3 WITH (FORCE)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
