#!/usr/bin/env bash
# Retention soak of issue 9: JOBS jobs (default 1,000,000) through `jobcenter serve` on a
# SQLite store with --archive-retention 60, sampling the server's RSS and the store's size on
# disk every INTERVAL seconds. Prints CSV lines: seconds,rss_kib,db_bytes,wal_bytes.
# Loopback only; the server accepts any who/token (--insecure-dev-auth) and is stopped at
# the end. Usage: scripts/soak-retention.sh [JOBS] [INTERVAL]   (B=path/to/jobcenter)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release/jobcenter}
JOBS=${1:-1000000}
INTERVAL=${2:-10}
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$B" serve --listen "127.0.0.1:$PORT" --load examples/jcl --store "sqlite:$DIR/soak.db" \
  --archive-retention 60 --insecure-dev-auth 2>"$DIR/serve.log" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$DIR/serve.log" && break; sleep 0.1; done
"$B" bench --address 127.0.0.1 --port "$PORT" --who soak --token soak \
  --clients 4 --in-flight 1000 --workers 4 --slots 250 --jobs "$JOBS" \
  --server-pid "$SERVE" >"$DIR/bench.out" 2>&1 &
BENCH=$!
START=$(date +%s)
echo "seconds,rss_kib,db_bytes,wal_bytes"
while kill -0 $BENCH 2>/dev/null; do
  NOW=$(( $(date +%s) - START ))
  RSS=$(awk '/VmRSS/ {print $2}' /proc/$SERVE/status)
  DB=$(stat -c %s "$DIR/soak.db" 2>/dev/null || echo 0)
  WAL=$(stat -c %s "$DIR/soak.db-wal" 2>/dev/null || echo 0)
  echo "$NOW,$RSS,$DB,$WAL"
  sleep "$INTERVAL"
done
wait $BENCH || { echo "bench failed:"; cat "$DIR/bench.out"; exit 1; }
tail -4 "$DIR/bench.out"
