#!/usr/bin/env bash
# The status page in a real browser (issue 12): starts `jobcenter serve --http` on a SQLite
# store in a temporary directory, a worker (`jobcenter work`) and a `jobcenter call`, then
# loads the pages in headless Chromium (credentials in the URL's userinfo) and checks that
# the overview and the job page show the job just run, and that a visitor without a login
# gets 401. It also takes a screenshot of the overview; with UPDATE_SCREENSHOT=1 it writes
# it to docs/images/status-page.png (README, "Operating it").
#
# Needs: chromium (Debian's `apt-get install chromium`; CHROMIUM=/path to use another
# Chrome) and the `jobcenter` binary (JOBCENTER=/path, else it is built with cargo).
# Fails, with a message saying why, when chromium is missing or cannot run: never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "web-browser-test: FAIL: $*" >&2
  exit 1
}

# --- the browser -------------------------------------------------------------------------
CHROMIUM=${CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then
      CHROMIUM=$(command -v "$c")
      break
    fi
  done
fi
[ -n "$CHROMIUM" ] || fail "no chromium found: install it (apt-get install -y chromium) or set CHROMIUM=/path/to/chrome"

# --- the binary --------------------------------------------------------------------------
if [ -z "${JOBCENTER:-}" ]; then
  cargo build --quiet -p jobcenter-cli
  JOBCENTER="${CARGO_TARGET_DIR:-target}/debug/jobcenter"
fi
[ -x "$JOBCENTER" ] || fail "no jobcenter binary at $JOBCENTER"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Headless Chromium with a profile of its own; --no-sandbox because CI runs as root.
chrome() {
  timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --no-default-browser-check --disable-extensions \
    --user-data-dir="$tmp/chrome" "$@" 2>>"$tmp/chrome.log"
}

if ! chrome --dump-dom 'data:text/html,<p>chromium%20works</p>' >"$tmp/probe.html" ||
  ! grep -q 'chromium works' "$tmp/probe.html"; then
  tail -n 20 "$tmp/chrome.log" >&2 || true
  fail "$CHROMIUM cannot run headless (its messages, if any, are above)"
fi

# --- the server, a worker, a job ---------------------------------------------------------
# apimeister's password is "meister"; theCustomer/wantsThings and theEmployee/doesThings
# are the protocol's test vectors (docs/PROTOCOL.md §11.2).
cat >"$tmp/passwd" <<'EOF'
theCustomer:$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB
theEmployee:$5$OHFG1Ol7VMz647y$gmqS.M6i0hTtcKu9935yBn8Ck7yOdonV68hkz7mjnS/
apimeister:$5$webtestsalt$5y/F2w.5Ht3wQOKEQP2UVBPA99mmdl3HgiQyr0oP1z.
EOF

"$JOBCENTER" serve --store "sqlite:$tmp/jc.db" --load examples/jcl --passwd "$tmp/passwd" \
  --listen 127.0.0.1:0 --http 127.0.0.1:0 --log-format json >"$tmp/serve.log" 2>&1 &
pids+=($!)

# The bound ports, from the start-up log lines.
api="" http=""
for _ in $(seq 1 100); do
  api=$(grep '"message":"listening"' "$tmp/serve.log" | head -n1 | sed -E 's/.*"addr":"([^"]+)".*/\1/') || true
  http=$(grep '"message":"http listening' "$tmp/serve.log" | head -n1 | sed -E 's/.*"addr":"([^"]+)".*/\1/') || true
  [ -n "$api" ] && [ -n "$http" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$api" ] || [ -z "$http" ]; then
  cat "$tmp/serve.log" >&2
  fail "jobcenter serve did not start (its log is above)"
fi
echo "web-browser-test: server on $api, status page on http://$http/"

# The worker adds with the shell: stdin is the task's inargs, {"counter":N,"step":M}.
cat >"$tmp/add.sh" <<'EOF'
read -r j
c=$(printf '%s' "$j" | sed -E 's/.*"counter":(-?[0-9]+).*/\1/')
s=$(printf '%s' "$j" | sed -E 's/.*"step":(-?[0-9]+).*/\1/')
printf '{"counter":%d}\n' "$((c + s))"
EOF
JOBCENTER_WHO=theEmployee JOBCENTER_TOKEN=doesThings \
  "$JOBCENTER" work --address "$api" --workername browser-test-worker --slots 2 \
  --action "add=sh $tmp/add.sh" >"$tmp/work.log" 2>&1 &
pids+=($!)

export JOBCENTER_WHO=theCustomer JOBCENTER_TOKEN=wantsThings
out=""
for _ in $(seq 1 50); do
  # The worker may not have announced yet: the job then waits for it.
  if out=$("$JOBCENTER" call --address "$api" calladd '{"input":12}' 2>"$tmp/call.err"); then
    break
  fi
  sleep 0.2
done
job=$(sed -nE 's/.*job ([0-9]+) created.*/\1/p' "$tmp/call.err" | head -n1)
[ "$out" = '{"output":15}' ] && [ -n "$job" ] ||
  fail "jobcenter call calladd gave '$out' (stderr: $(cat "$tmp/call.err"))"
echo "web-browser-test: job $job ran: $out"

# --- the pages in the browser ------------------------------------------------------------
base="http://apimeister:meister@$http"

page() { # page NAME PATH: the DOM after loading PATH as the admin
  chrome --dump-dom "$base$2" >"$tmp/$1.html" || fail "chromium could not load $2"
}

page overview /
for want in '<h1>Overview</h1>' 'browser-test-worker' '<td>theEmployee</td>' \
  '<b>1</b>jobs created</div>' '<b>1</b>finished</div>' '<a class="card" href="/jobs?state=finished"><b>1</b>finished</a>' 'last minute'; do
  grep -qF "$want" "$tmp/overview.html" ||
    fail "the overview does not show '$want' (DOM: $tmp/overview.html)"
done
# The throughput table counted the jobs.
grep -qE '<tr><td>last minute</td><td class="n">1</td><td class="n">1</td>' "$tmp/overview.html" ||
  fail "the overview's throughput does not count the job (created and finished)"

page job "/job/$job"
for want in "<h1>Job $job <span class=\"muted\">calladd</span></h1>" 'finished' '"output": 15'; do
  grep -qF "$want" "$tmp/job.html" || fail "the job page does not show '$want'"
done

page search "/jobs?id=$job"
grep -qF "<h1>Job $job <span class=\"muted\">calladd</span></h1>" "$tmp/search.html" || fail "the search by id does not lead to the job"

# Without a login, or with a wrong password, the browser shows no page (headless Chromium
# cannot ask for credentials, so the navigation ends on the 401 with an empty document).
for who in "" "apimeister:wrong@"; do
  chrome --dump-dom "http://$who$http/" >"$tmp/anon.html" ||
    fail "chromium could not load the page as '${who:-anonymous}'"
  if grep -q 'Overview' "$tmp/anon.html"; then
    fail "a visitor without a valid login ('${who:-anonymous}') saw the overview"
  fi
done
# ... and the status line is 401 (asked without a browser, over bash's /dev/tcp).
host=${http%:*} port=${http##*:}
exec 3<>"/dev/tcp/$host/$port"
printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$http" >&3
status=$(head -n1 <&3 | tr -d '\r')
exec 3<&-
[[ "$status" == "HTTP/1.1 401 "* ]] || fail "anonymous GET / answered '$status', not 401"

# --- more jobs: a failure, a job tree, a task nobody serves (and a fuller screenshot) -----
cat >"$tmp/div.sh" <<'EOF'
read -r j
a=$(printf '%s' "$j" | sed -E 's/.*"dividend":(-?[0-9]+).*/\1/')
b=$(printf '%s' "$j" | sed -E 's/.*"divisor":(-?[0-9]+).*/\1/')
[ "$b" -ne 0 ] || { echo "division by zero" >&2; exit 1; }
printf '{"quotient":%d}\n' "$((a / b))"
EOF
JOBCENTER_WHO=theEmployee JOBCENTER_TOKEN=doesThings \
  "$JOBCENTER" work --address "$api" --workername divider --action "div=sh $tmp/div.sh" \
  >"$tmp/work-div.log" 2>&1 &
pids+=($!)
for i in $(seq 1 24); do echo "{\"input\":$i}"; done >"$tmp/batch.jsonl"
"$JOBCENTER" call --address "$api" --batch "$tmp/batch.jsonl" --wfname calladd >/dev/null 2>&1 ||
  fail "a batch of calladd jobs failed"
# Dividing by zero fails the job (exit 1). The div worker may not have announced yet: the
# job then waits for it (call waits too).
rc=0
"$JOBCENTER" call --address "$api" divide '{"dividend":1,"divisor":0}' >/dev/null 2>"$tmp/div.err" || rc=$?
[ "$rc" = 1 ] || fail "divide by zero did not fail as a job (exit $rc: $(cat "$tmp/div.err"))"
failed=$(sed -nE 's/.*job ([0-9]+) created.*/\1/p' "$tmp/div.err" | head -n1)
# Nobody serves `square`: squareadd runs its child calladd, then waits.
rc=0
"$JOBCENTER" call --address "$api" --job-timeout 1 squareadd '{"input":2}' >/dev/null 2>"$tmp/sq.err" || rc=$?
[ "$rc" = 4 ] || fail "squareadd should still run after 1 s (exit $rc: $(cat "$tmp/sq.err"))"
waiting=$(sed -nE 's/.*job ([0-9]+) created.*/\1/p' "$tmp/sq.err" | head -n1)

page overview2 /
for want in "<a href=\"/job/$failed\">" 'division by zero' '<tr><td>square</td><td class="n">1</td></tr>' \
  'divider'; do
  grep -qF "$want" "$tmp/overview2.html" || fail "the overview does not show '$want'"
done
page tree "/job/$waiting"
for want in '<h2>Job tree</h2>' 'calladd' '<h2>Current task</h2>' '<h2>Input arguments</h2>'; do
  grep -qF "$want" "$tmp/tree.html" || fail "the page of job $waiting does not show '$want'"
done
page list "/jobs?workflow=calladd&state=finished"
[ "$(grep -o 'href="/job/' "$tmp/list.html" | wc -l)" -ge 25 ] ||
  fail "the list of finished calladd jobs is short"

# --- the screenshot ----------------------------------------------------------------------
shot="$tmp/status-page.png"
chrome --screenshot="$shot" --window-size=1000,1000 --hide-scrollbars "$base/" >/dev/null ||
  fail "chromium could not take the screenshot"
[ -s "$shot" ] && head -c 8 "$shot" | grep -q PNG || fail "the screenshot is not a PNG"
if [ "${UPDATE_SCREENSHOT:-0}" = 1 ]; then
  mkdir -p docs/images
  cp "$shot" docs/images/status-page.png
  echo "web-browser-test: wrote docs/images/status-page.png ($(wc -c <"$shot") bytes)"
fi

echo "web-browser-test: ok (overview, job page, tree, search, list, 401 without a login, screenshot)"
