#!/bin/sh
# The benchmark behind `make bench` (not part of the tests).
#
# Starts one private nginx on 127.0.0.1 (a free port chosen now) that serves the canned
# webhook for GET /api/v2/webhooks/<anything>, compiles the plain C libcurl baseline, then runs
#   bench/client_bench.lua  C loop vs client:get_webhook vs LuaSocket, requests/s
#   bench/decode_bench.lua  thinkific.decode vs cjson.decode, us per decode
# in interleaved rounds and prints the medians, the ratios and whether each target is met.
# Timing is never asserted: the exit status is non-zero only when something fails to run.
#
# Environment: LUA (default lua5.4), NGINX (default /usr/sbin/nginx), CC (default cc),
# BENCH_ROUNDS (5), BENCH_REQUESTS (20000), BENCH_SOCKET_REQUESTS (2000),
# BENCH_DECODES (200000), BENCH_SECONDS (2: the cap on any one measurement),
# BENCH_PIN (1; 0: no [1 CPU] pass), BENCH_CPU (the CPU for that pass; default the first allowed).
set -eu

LUA=${LUA:-lua5.4}
NGINX=${NGINX:-/usr/sbin/nginx}
CC=${CC:-cc}
ROUNDS=${BENCH_ROUNDS:-5}
REQUESTS=${BENCH_REQUESTS:-20000}
SOCKET_REQUESTS=${BENCH_SOCKET_REQUESTS:-2000}
DECODES=${BENCH_DECODES:-200000}
SECONDS_CAP=${BENCH_SECONDS:-2}

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

# The C baseline.
# shellcheck disable=SC2046
$CC -std=c99 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libcurl) \
  bench/curl_loop.c -o "$TMP/curl_loop" $(pkg-config --libs libcurl)

# A port that was free a moment ago: bind port 0, read it back, let go. Another process may
# take it in between, so nginx is started up to five times.
free_port() {
  "$LUA" -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, port = s:getsockname(); s:close(); print(port)'
}

# True once 127.0.0.1:$1 accepts connections (at most about 5 s).
wait_listening() {
  "$LUA" - "$1" <<'EOF'
local socket = require("socket")
local deadline = socket.gettime() + 5
repeat
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", tonumber(arg[1]))
  c:close()
  if ok then os.exit(0) end
  socket.sleep(0.05)
until socket.gettime() > deadline
os.exit(1)
EOF
}

mkdir -p "$TMP/www"
cp spec/fixtures/api-examples/webhook_create_201.json "$TMP/www/webhook.json"
PORT=
attempt=0
while [ $attempt -lt 5 ]; do
  attempt=$((attempt + 1))
  port=$(free_port)
  sed -e "s|@PREFIX@|$TMP|g" -e "s|@PORT@|$port|g" bench/nginx.conf.in >"$TMP/nginx.conf"
  "$NGINX" -p "$TMP/" -e "$TMP/error.log" -c "$TMP/nginx.conf" &
  NGINX_PID=$!
  if wait_listening "$port" && kill -0 "$NGINX_PID" 2>/dev/null; then
    PORT=$port
    break
  fi
  kill "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
done
if [ -z "$PORT" ]; then
  echo "bench: nginx did not start; its error log:" >&2
  cat "$TMP/error.log" >&2 || true
  exit 1
fi
BASE_URL="http://127.0.0.1:$PORT/api/v2"

# Client throughput twice: with the client and nginx pinned to one CPU (what each side costs
# in CPU, steady) and with the scheduler free to place them (on a VM, wake-ups across CPUs add
# latency that dilutes the differences and varies from run to run). Pinning needs taskset and
# two CPUs or more; BENCH_PIN=0 skips it.
CPUS=
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  CPUS=$(taskset -pc $$ | sed 's/.*: *//')
  PIN_CPU=${BENCH_CPU:-$(echo "$CPUS" | sed 's/[-,].*//')}
fi

echo "lua-thinkific bench: $("$LUA" -v 2>&1 | cut -d' ' -f1-2), $("$NGINX" -v 2>&1 | sed 's/.*: //')" \
  "on 127.0.0.1:$PORT (1 worker), $(nproc) CPUs, $ROUNDS interleaved rounds, medians"
if [ -n "$CPUS" ]; then
  echo "[1 CPU]: client and nginx pinned to CPU $PIN_CPU; [any CPU]: placed by the scheduler"
fi
echo "(progress on stderr)" >&2

client_bench() { # $1: the label of the CPU placement; the command prefix follows
  mode=$1
  shift
  "$@" "$LUA" bench/client_bench.lua "$BASE_URL" "$TMP/curl_loop" "$ROUNDS" "$REQUESTS" \
    "$SECONDS_CAP" "$SOCKET_REQUESTS" "$mode" >>"$TMP/client.out"
}
: >"$TMP/client.out"
if [ -n "$CPUS" ]; then
  taskset -pc "$PIN_CPU" "$NGINX_PID" >/dev/null
  client_bench "1 CPU" taskset -c "$PIN_CPU"
  taskset -pc "$CPUS" "$NGINX_PID" >/dev/null
  client_bench "any CPU" env
else
  client_bench "" env
fi
"$LUA" bench/decode_bench.lua spec/fixtures/payloads/order.created.json "$ROUNDS" "$DECODES" \
  "$SECONDS_CAP" >"$TMP/decode.out"

if grep -q '\[error\]\|\[crit\]\|\[alert\]\|\[emerg\]' "$TMP/error.log"; then
  echo "bench: nginx logged errors:" >&2
  cat "$TMP/error.log" >&2
fi

echo
printf '%-38s %10s %10s %10s  %s\n' "measurement" "median" "min" "max" "unit"
cat "$TMP/client.out" "$TMP/decode.out" | sed -n 's/^row //p'
echo
printf '%-38s %8s\n' "ratio (of the medians)" "value"
cat "$TMP/client.out" "$TMP/decode.out" | sed -n 's/^ratio //p'
