#!/usr/bin/env bash
# Chaos soak of issue 10: JOBS jobs (default 1,000,000) through `jobcenter serve` (a child
# process, so its memory is measured apart) with clients that drop at random with jobs
# outstanding and workers that disconnect (half of the time with tasks in hand) and
# reconnect; `jobcenter bench --soak` then checks 0 lost jobs, 0 results delivered twice to
# one client, 0 tasks done twice after a worker answered, and samples the server's RSS.
# Finished jobs are archived 60 s after they finish and their results forgotten 60 s later
# (--archive-retention 60), so the server's memory can level off once the first ~120 s of
# jobs are through (a memory store holds those jobs in RAM; SQLite holds them on disk). Loopback only; the server accepts any who/token
# (--insecure-dev-auth) and is stopped at the end. The bench logs errors only (expected
# warnings of workers closed with tasks in hand are hidden; set RUST_LOG to see them).
#
# Usage: scripts/soak-chaos.sh [JOBS] [STORE] [EXTRA BENCH OPTIONS...]
#   STORE: memory (default) or sqlite (a fresh file in a temporary folder)
#   B=path/to/jobcenter (default target/release/jobcenter); WORKER_CHURN, CLIENT_CHURN
#   (mean seconds a connection lives, default 5), SAMPLE (RSS interval, default 5) and
#   KEEP_LOG=FILE (keep the server's log there; its level is SERVE_LOG, default info)
# Exit status: that of the bench (0: every check passed).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release/jobcenter}
JOBS=${1:-1000000}
STORE=${2:-memory}
shift $(( $# > 2 ? 2 : $# ))
DIR=$(mktemp -d)
case "$STORE" in
  memory) SPEC=memory ;;
  sqlite) SPEC="sqlite:$DIR/soak.db" ;;
  *) echo "unknown store $STORE (memory or sqlite)" >&2; exit 2 ;;
esac
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=${SERVE_LOG:-info} "$B" serve --listen "127.0.0.1:$PORT" --load examples/jcl --store "$SPEC" \
  --archive-retention 60 --insecure-dev-auth 2>"$DIR/serve.log" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true; if [ -n "${KEEP_LOG:-}" ]; then cp "$DIR/serve.log" "$KEEP_LOG"; fi; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$DIR/serve.log" && break; sleep 0.1; done
echo "commit $(git rev-parse --short HEAD), store $STORE, $JOBS jobs, server pid $SERVE"
set +e
RUST_LOG=${RUST_LOG:-error} "$B" bench --address 127.0.0.1 --port "$PORT" --who soak --token soak --soak \
  --clients 8 --in-flight 1000 --workers 4 --slots 100 --jobs "$JOBS" \
  --worker-churn "${WORKER_CHURN:-5}" --client-churn "${CLIENT_CHURN:-5}" \
  --sample "${SAMPLE:-5}" --server-pid "$SERVE" "$@"
CODE=$?
set -e
if ! kill -0 $SERVE 2>/dev/null; then
  echo "the server died:"; tail -20 "$DIR/serve.log"; exit 1
fi
echo "server log: $(grep -c ERROR "$DIR/serve.log" || true) error line(s), $(grep -c WARN "$DIR/serve.log" || true) warning line(s)"
grep -m5 ERROR "$DIR/serve.log" || true
# The kinds of warnings (message text without time, ids and fields), most frequent first.
sed -e 's/\x1b\[[0-9;]*m//g' "$DIR/serve.log" | grep ' WARN ' | sed -E 's/^[^ ]+ +WARN +//; s/ [a-z_]+=[^ ]+//g' \
  | sort | uniq -c | sort -rn | head -5 || true
exit $CODE
