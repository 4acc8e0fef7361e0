#!/bin/sh
# The benchmark behind `make bench` (not part of the tests).
#
# Starts one private nginx on 127.0.0.1 (a free port chosen now) that serves the canned
# webhook for GET /api/v2/webhooks/<anything>, compiles the plain C libcurl baseline, then runs
#   bench/client_bench.lua  C loop vs client:get_webhook vs LuaSocket, requests/s
#   bench/decode_bench.lua  thinkific.decode vs cjson.decode, us per decode
#   bench/router_bench.lua  router:handle vs cjson.decode (us per event), and events/s against
#                           @octokit/webhooks' verifyAndReceive (bench/octokit_bench.mjs) when
#                           Node 20+ is there
#   bench/events_memory.lua what one get_events call of 10,000 ids holds beyond its results
#   bench/quests_bench.lua  thinkific.quests (the example's 7 rules, SQLite) vs the example's
#                           former in-memory handlers, events/s; rules from a sandboxed file vs
#                           a table
#   bench/receiver.sh       wrk against thinkific.ngx.serve in nginx, nginx's return 200 and
#                           octokit's node middleware (needs make luajit and nginx's Lua module)
#   bench/claim_stores.sh   wrk against the receiver with thinkific.ngx.redis_store (a private
#                           redis-server) and with thinkific.ngx.store, 2 nginx workers
#   bench/inbox_bench.lua   wrk against thinkific listen: --inbox on SQLite and PostgreSQL (with
#                           and without group commit) against the in-memory router, and how fast
#                           --workers 2 drain a sustained load (starts its own PostgreSQL);
#                           the disk's sync time, which bounds it, before and after
#   bench/rate_limit_bench.lua  a bulk get_events job against a sandbox that enforces a rate
#                           limit: its time over the ideal the limit allows, and its 429s
# in interleaved rounds and prints the medians, the ratios and whether each target is met.
# Timing is never asserted: the exit status is non-zero only when something fails to run. The
# Node comparison is optional: without node, or when npm cannot install the version pinned in
# bench/package.json into bench/node_modules (a benchmark-only dependency, never the library's),
# a line says it was skipped and why.
#
# Environment: LUA (default lua5.4), NGINX (default /usr/sbin/nginx), CC (default cc),
# NODE (node; empty: no Node comparison), NPM (npm), BENCH_ROUNDS (7), and per round:
# BENCH_REQUESTS (8000) for each keep-alive client, BENCH_SOCKET_REQUESTS (1000) for
# LuaSocket, BENCH_DECODES (40000) for each decoder, BENCH_EVENTS (20000) for each receiver,
# BENCH_EVENT_IDS (2000) ids per get_events call and BENCH_EVENT_CALLS (3) such calls for
# each of the two parallel clients, BENCH_EVENT_CONCURRENCY (8), BENCH_MEMORY_IDS (10000) ids
# for bench/events_memory.lua, BENCH_QUESTS_EVENTS (2000) events per quests bench and round,
# BENCH_SECONDS (2: the most one measurement may take in a round), and for the rate limit
# BENCH_RATE_LIMIT (120 requests per window), BENCH_RATE_WINDOW (2 s; the contract's is 60),
# BENCH_RATE_IDS (1200), BENCH_RATE_PROCESSES (2), BENCH_RATE_LATENCY_MS (10: each event's
# answer that much late in a second pass, for the network),
# BENCH_PIN (1; 0: no pinning), BENCH_CPU (the CPU to pin to; default the first allowed),
# BENCH_ANY_CPU (0; 1: also measure the client unpinned).
set -eu

LUA=${LUA:-lua5.4}
NGINX=${NGINX:-/usr/sbin/nginx}
CC=${CC:-cc}
ROUNDS=${BENCH_ROUNDS:-7}
REQUESTS=${BENCH_REQUESTS:-8000}
SOCKET_REQUESTS=${BENCH_SOCKET_REQUESTS:-1000}
DECODES=${BENCH_DECODES:-40000}
EVENTS=${BENCH_EVENTS:-20000}
NODE=${NODE-node}
NPM=${NPM:-npm}
SECONDS_CAP=${BENCH_SECONDS:-2}
EVENT_IDS=${BENCH_EVENT_IDS:-2000}
EVENT_CALLS=${BENCH_EVENT_CALLS:-3}
EVENT_CONCURRENCY=${BENCH_EVENT_CONCURRENCY:-8}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Run from the tree when called directly rather than through `make bench`.
: "${LUA_PATH_5_4:=$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;}"
: "${LUA_CPATH_5_4:=$ROOT/build/5.4/?.so;;}"
export LUA_PATH_5_4 LUA_CPATH_5_4

if [ ! -f build/5.4/thinkific/core.so ]; then
  echo "bench: build/5.4/thinkific/core.so is missing: run make first" >&2
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/thinkific-bench.XXXXXX")
NGINX_PID=
cleanup() {
  if [ -n "$NGINX_PID" ]; then
    kill "$NGINX_PID" 2>/dev/null || true
    i=0
    while kill -0 "$NGINX_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$NGINX_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The C baselines.
# shellcheck disable=SC2046
$CC -std=c99 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libcurl) \
  bench/curl_loop.c -o "$TMP/curl_loop" $(pkg-config --libs libcurl)
# shellcheck disable=SC2046
$CC -std=c99 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libcurl) \
  bench/curl_multi_loop.c -o "$TMP/curl_multi_loop" $(pkg-config --libs libcurl)

# The Node side: @octokit/webhooks at the version bench/package.json pins, installed with npm
# into bench/node_modules when it is not there yet. Sets OCTOKIT_NODE (the node to run) or
# OCTOKIT_SKIPPED (why not). npm's own messages go to $TMP/npm.log, never to the table.
OCTOKIT_NODE=
OCTOKIT_SKIPPED=
octokit_setup() {
  if [ -z "$NODE" ]; then OCTOKIT_SKIPPED="NODE is empty"; return; fi
  if ! command -v "$NODE" >/dev/null 2>&1; then
    OCTOKIT_SKIPPED="$NODE not found (Node.js 20 or later is needed)"
    return
  fi
  major=$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null) || major=0
  case $major in '' | *[!0-9]*) major=0 ;; esac
  if [ "$major" -lt 20 ]; then
    version=$("$NODE" --version 2>/dev/null) || version=unknown
    OCTOKIT_SKIPPED="$NODE is $version: @octokit/webhooks needs Node.js 20 or later"
    return
  fi
  wanted=$("$NODE" -p 'require("./bench/package.json").dependencies["@octokit/webhooks"]') || {
    OCTOKIT_SKIPPED="bench/package.json does not name @octokit/webhooks"
    return
  }
  have=$("$NODE" -p 'require("./bench/node_modules/@octokit/webhooks/package.json").version' \
    2>/dev/null) || have=none
  if [ "$have" != "$wanted" ]; then
    if ! command -v "$NPM" >/dev/null 2>&1; then
      OCTOKIT_SKIPPED="@octokit/webhooks $wanted is not in bench/node_modules and $NPM was not found"
      return
    fi
    echo "bench: installing @octokit/webhooks $wanted into bench/node_modules with $NPM" >&2
    limit=
    if command -v timeout >/dev/null 2>&1; then limit="timeout 300"; fi
    if ! (cd bench && $limit "$NPM" install --no-audit --no-fund --loglevel=error \
          --fetch-timeout=30000 --fetch-retries=1) >"$TMP/npm.log" 2>&1; then
      why=$(grep -m 2 '^npm \(ERR!\|error\)' "$TMP/npm.log" | sed 's/^npm \(ERR!\|error\) *//' |
        tr '\n' ' ' | sed 's/ *$//')
      OCTOKIT_SKIPPED="npm install in bench/ failed (no network?): ${why:-$(tail -n 1 "$TMP/npm.log")}"
      return
    fi
  fi
  OCTOKIT_NODE=$NODE
}
octokit_setup

# A port that was free a moment ago: bind port 0, read it back, let go. Another process may
# take it in between, so nginx is started up to five times.
free_port() {
  "$LUA" -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, port = s:getsockname(); s:close(); print(port)'
}

# True when 127.0.0.1:$1 accepts a connection now.
listening() {
  "$LUA" - "$1" <<'EOF'
local c = require("socket").tcp()
c:settimeout(0.2)
local ok = c:connect("127.0.0.1", tonumber(arg[1]))
c:close()
os.exit(ok and 0 or 1)
EOF
}

# True once nginx (pid $1) listens on port $2; false as soon as it exits, or after about 5 s.
wait_listening() {
  i=0
  while [ $i -lt 50 ] && kill -0 "$1" 2>/dev/null; do
    if listening "$2"; then return 0; fi
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

mkdir -p "$TMP/www"
cp spec/fixtures/api-examples/webhook_create_201.json "$TMP/www/webhook.json"
cp spec/fixtures/payloads/order.created.json "$TMP/www/event.json"
PORT=
attempt=0
while [ $attempt -lt 5 ]; do
  attempt=$((attempt + 1))
  port=$(free_port)
  sed -e "s|@PREFIX@|$TMP|g" -e "s|@PORT@|$port|g" bench/nginx.conf.in >"$TMP/nginx.conf"
  "$NGINX" -p "$TMP/" -e "$TMP/error.log" -c "$TMP/nginx.conf" &
  NGINX_PID=$!
  if wait_listening "$NGINX_PID" "$port"; then
    PORT=$port
    break
  fi
  kill "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
done
if [ -z "$PORT" ]; then
  echo "bench: nginx ($NGINX) did not start" >&2
  if [ -f "$TMP/error.log" ]; then cat "$TMP/error.log" >&2; fi
  exit 1
fi
BASE_URL="http://127.0.0.1:$PORT/api/v2"

# Client throughput with the client (and its C baseline) and nginx pinned to one CPU: what
# each side costs, steady. Left to the scheduler on this 2-CPU VM, the pair lands on one CPU
# or on two at random, and a wake-up across CPUs costs far more than either side's work, so
# the same loop swings between about 2000 and 13000 requests/s. BENCH_ANY_CPU=1 adds that
# pass as well; BENCH_PIN=0 runs it alone. Pinning needs taskset and two CPUs or more.
CPUS=
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  CPUS=$(taskset -pc $$ | sed 's/.*: *//')
  PIN_CPU=${BENCH_CPU:-$(echo "$CPUS" | sed 's/[-,].*//')}
fi

echo "lua-thinkific bench: $("$LUA" -v 2>&1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/.*: //')" \
  "on 127.0.0.1:$PORT (1 worker), $(nproc) CPUs; medians of $ROUNDS rounds, each taking turns" \
  "in short bursts"
if [ -n "$CPUS" ]; then
  echo "[1 CPU]: the clients and nginx pinned to CPU $PIN_CPU (pass BENCH_ANY_CPU=1 to add" \
    "[any CPU]: placed by the scheduler)"
fi
echo "(progress on stderr)" >&2

client_bench() { # $1: the label of the CPU placement; the command prefix follows
  mode=$1
  shift
  "$@" "$LUA" bench/client_bench.lua "$BASE_URL" "$TMP/curl_loop" "$ROUNDS" "$REQUESTS" \
    "$SECONDS_CAP" "$SOCKET_REQUESTS" "$mode" >>"$TMP/client.out"
  "$@" "$LUA" bench/events_bench.lua "$BASE_URL" "$TMP/curl_multi_loop" "$ROUNDS" "$EVENT_IDS" \
    "$EVENT_CALLS" "$SECONDS_CAP" "$mode" "$EVENT_CONCURRENCY" >>"$TMP/client.out"
}
: >"$TMP/client.out"
if [ -n "$CPUS" ]; then
  taskset -pc "$PIN_CPU" "$NGINX_PID" >/dev/null
  client_bench "1 CPU" taskset -c "$PIN_CPU"
  taskset -pc "$CPUS" "$NGINX_PID" >/dev/null
  if [ "${BENCH_ANY_CPU:-0}" = 1 ]; then client_bench "any CPU" env; fi
else
  client_bench "" env
fi
"$LUA" bench/decode_bench.lua spec/fixtures/payloads/order.created.json "$ROUNDS" "$DECODES" \
  "$SECONDS_CAP" >"$TMP/decode.out"
# SIGPIPE ignored: a node that dies gives router_bench.lua a write error, not a dead bench.
(
  trap '' PIPE
  exec "$LUA" bench/router_bench.lua spec/fixtures/payloads/order.created.json "$ROUNDS" "$EVENTS" \
    "$SECONDS_CAP" "$OCTOKIT_NODE" "$TMP/octokit.fifo"
) >"$TMP/router.out"
if [ -n "$OCTOKIT_SKIPPED" ]; then
  echo "note node comparison skipped: $OCTOKIT_SKIPPED" >>"$TMP/router.out"
fi
"$LUA" bench/quests_bench.lua "$TMP" "$ROUNDS" "${BENCH_QUESTS_EVENTS:-2000}" "$SECONDS_CAP" \
  >"$TMP/quests.out"

if grep -q '\[error\]\|\[crit\]\|\[alert\]\|\[emerg\]' "$TMP/error.log"; then
  echo "bench: nginx logged errors:" >&2
  cat "$TMP/error.log" >&2
fi

echo
printf '%-38s %10s %10s %10s  %s\n' "measurement" "median" "min" "max" "unit"
cat "$TMP/client.out" "$TMP/decode.out" "$TMP/router.out" "$TMP/quests.out" | sed -n 's/^row //p'
echo
printf '%-38s %8s %10s  %-9s  %s\n' "ratio" "median" "of medians" "rounds" "target"
cat "$TMP/client.out" "$TMP/decode.out" "$TMP/router.out" "$TMP/quests.out" | sed -n 's/^ratio //p'
echo "(median: of the per-round ratios, the verdict's figure; of medians: the ratio of the" \
  "rows' medians; rounds: the lowest and highest per-round ratio)"
sed -n 's/^note //p' "$TMP/router.out" "$TMP/quests.out"

# What one big get_events call holds beyond its results.
echo
"$LUA" bench/events_memory.lua "$BASE_URL" "${BENCH_MEMORY_IDS:-10000}" "$EVENT_CONCURRENCY"

# The receivers under wrk: thinkific.ngx against nginx's return 200 (and octokit's middleware).
echo
sh bench/receiver.sh

# The claim stores under wrk: Redis (several hosts) against the shared dict (one host).
echo
sh bench/claim_stores.sh
# The durable inbox under wrk: thinkific listen --inbox against the in-memory router; draining.
echo
"$LUA" bench/inbox_bench.lua

# A bulk job under the rate limit: its time over the ideal, and the 429s.
echo
"$LUA" bench/rate_limit_bench.lua "${BENCH_RATE_LIMIT:-120}" "${BENCH_RATE_WINDOW:-2}" \
  "${BENCH_RATE_IDS:-1200}" "${BENCH_RATE_PROCESSES:-2}" "${BENCH_RATE_LATENCY_MS:-10}"
