#!/bin/sh
# The claim stores under wrk (run by bench/run.sh): one nginx host with 2 workers, the same
# receiver twice, in turns in the same run:
#   /hooks/dict   router{ dedupe = thinkific.ngx.store("claims") }      (a lua_shared_dict)
#   /hooks/redis  router{ dedupe = thinkific.ngx.redis_store{ ... } }   (a private redis-server
#                                                                        on loopback, appendonly yes)
# wrk -t1 -c8 POSTs BENCH_CLAIM_IDS (1000) signed copies of the order.created sample, each with
# an event id of its own, in turn; keep is 1 ms, so every request is a new claim (add, the
# handler, set done): two Redis round trips per delivery. Medians of BENCH_RECEIVER_ROUNDS (5)
# rounds of BENCH_RECEIVER_SECONDS (3) each, the order of the two alternating per round; the
# ratio redis / dict (median of the per-round ratios; target >= 0.6). Timing is never asserted.
# Needs: nginx with the Lua module, wrk, build/luajit (make luajit), redis-server and
# lua-nginx-redis (sh scripts/deps bench).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NGINX=${NGINX:-/usr/sbin/nginx}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
ROUNDS=${BENCH_RECEIVER_ROUNDS:-5}
SECONDS_EACH=${BENCH_RECEIVER_SECONDS:-3}
IDS=${BENCH_CLAIM_IDS:-1000}
LUA=${LUA:-lua5.4}
SECRET=bench-secret
MODULES=/usr/lib/nginx/modules

skip() { echo "claim store bench skipped: $*"; exit 0; }
command -v wrk >/dev/null 2>&1 || skip "wrk is not installed (sh scripts/deps bench)"
command -v "$REDIS_SERVER" >/dev/null 2>&1 || skip "redis-server is not installed (sh scripts/deps bench)"
[ -f /usr/share/lua/5.1/nginx/redis.lua ] || skip "lua-nginx-redis is not installed (sh scripts/deps bench)"
[ -f "$MODULES/ngx_http_lua_module.so" ] || skip "nginx's Lua module is not installed"
[ -f build/luajit/thinkific/core.so ] || skip "build/luajit is missing (make luajit)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/thinkific-claims.XXXXXX")
NGINX_PID= REDIS_PID=
cleanup() {
  for pid in $NGINX_PID $REDIS_PID; do kill "$pid" 2>/dev/null || true; done
  i=0
  while [ $i -lt 50 ]; do
    alive=
    for pid in $NGINX_PID $REDIS_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || break
    sleep 0.1
    i=$((i + 1))
  done
  for pid in $NGINX_PID $REDIS_PID; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
. bench/wrk.sh

# The deliveries: the sample's bytes with event ids of their own, signed, as a Lua file for
# bench/claims_request.lua.
IDS="$IDS" SECRET="$SECRET" "$LUA" -e '
  local t = require("thinkific")
  local f = assert(io.open("spec/fixtures/payloads/order.created.json", "rb"))
  local sample = f:read("a")
  f:close()
  local out = { "return {" }
  for i = 1, tonumber(os.getenv("IDS")) do
    local body = sample:gsub("\"id\": \"20180126172320940835610\"",
      ("\"id\": \"3%022d\""):format(i), 1)
    out[#out + 1] = ("{ %q, %q },"):format(t.sign(body, os.getenv("SECRET")), body)
  end
  out[#out + 1] = "}"
  io.write(table.concat(out, "\n"), "\n")' >"$TMP/deliveries.lua"

# Redis as the docs advise for claims: its own directory, loopback, the append-only file.
redis_port=$(free_port)
cat >"$TMP/redis.conf" <<CONF
bind 127.0.0.1
port $redis_port
daemonize no
dir $TMP
appendonly yes
save ""
logfile $TMP/redis.log
CONF
"$REDIS_SERVER" "$TMP/redis.conf" &
REDIS_PID=$!
wait_port "$redis_port" || skip "redis-server did not start: $(tail -n 3 "$TMP/redis.log")"

port=$(free_port)
cat >"$TMP/bench_claims.lua" <<LUA
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")
local handled = ngx.shared.bench
-- keep = 1 ms: by the time wrk comes round to an id again, it is new again.
local function router(name, store)
  local r = thinkific.router{ secret = "$SECRET", dedupe = store, keep = 0.001 }
  r:on("order.created", function() handled:incr(name, 1, 0) end)
  return r
end
return {
  dict = router("dict", tngx.store("claims")),
  redis = router("redis", tngx.redis_store{ host = "127.0.0.1", port = $redis_port }),
}
LUA
# As root, nginx would switch its workers to nobody, who cannot read the 0700 temp directory.
user=
[ "$(id -u)" != 0 ] || user="user root;"
cat >"$TMP/nginx.conf" <<CONF
$user
load_module $MODULES/ndk_http_module.so;
load_module $MODULES/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/body;
  proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fastcgi;
  uwsgi_temp_path $TMP/uwsgi;
  scgi_temp_path $TMP/scgi;
  lua_package_path "$TMP/?.lua;$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;";
  lua_package_cpath "$ROOT/build/luajit/?.so;;";
  lua_shared_dict claims 16m;
  lua_shared_dict bench 1m;
  keepalive_requests 1000000;
  client_body_buffer_size 16k;
  server {
    listen 127.0.0.1:$port reuseport;
    location = /hooks/dict {
      content_by_lua_block { require("thinkific.ngx").serve(require("bench_claims").dict) }
    }
    location = /hooks/redis {
      content_by_lua_block { require("thinkific.ngx").serve(require("bench_claims").redis) }
    }
    location = /handled {
      content_by_lua_block {
        local d = ngx.shared.bench
        ngx.say(d:get("dict") or 0, " ", d:get("redis") or 0)
      }
    }
  }
}
CONF
"$NGINX" -p "$TMP/" -e "$TMP/error.log" -c "$TMP/nginx.conf" &
NGINX_PID=$!
wait_port "$port" || skip "nginx did not start: $(tail -n 3 "$TMP/error.log")"

export BENCH_DELIVERY_DIR="$TMP"
: >"$TMP/dict"; : >"$TMP/redis"; : >"$TMP/ratio"
r=1
while [ $r -le "$ROUNDS" ]; do
  if [ $((r % 2)) = 1 ]; then
    dict=$(measure "shared-dict store" "http://127.0.0.1:$port/hooks/dict" bench/claims_request.lua)
    redis=$(measure "Redis store" "http://127.0.0.1:$port/hooks/redis" bench/claims_request.lua)
  else
    redis=$(measure "Redis store" "http://127.0.0.1:$port/hooks/redis" bench/claims_request.lua)
    dict=$(measure "shared-dict store" "http://127.0.0.1:$port/hooks/dict" bench/claims_request.lua)
  fi
  echo "$dict" >>"$TMP/dict"; echo "$redis" >>"$TMP/redis"
  ratio_to "$redis" "$dict" "$TMP/ratio"
  echo "claim store round $r/$ROUNDS: shared dict $dict/s, Redis $redis/s" >&2
  r=$((r + 1))
done

handled=$("$LUA" -e "local http = require('socket.http'); io.write((http.request('http://127.0.0.1:$port/handled')))")
handled_dict=${handled% *}
handled_redis=$(echo "${handled#* }" | tr -d '\n')
if grep -q '\[error\]\|\[crit\]\|\[alert\]\|\[emerg\]' "$TMP/error.log"; then
  echo "claim store bench: nginx logged errors:" >&2
  grep '\[error\]\|\[crit\]\|\[alert\]\|\[emerg\]' "$TMP/error.log" | tail -n 5 >&2
fi
printf '%-40s %10.0f  requests/s (wrk -t1 -c8, 2 nginx workers; %s handled)\n' \
  "receiver, thinkific.ngx.store" "$(median "$TMP/dict")" "$handled_dict"
printf '%-40s %10.0f  requests/s (%s, appendonly; %s handled)\n' \
  "receiver, thinkific.ngx.redis_store" "$(median "$TMP/redis")" \
  "$("$REDIS_SERVER" --version | cut -d' ' -f1-3)" "$handled_redis"
echo "(each request a new claim: add, the handler, set done; ratio: median of the per-round ratios)"
awk -v r="$(median "$TMP/ratio")" 'BEGIN { printf "%-40s %10.2f  >= 0.60: target %s\n", "redis_store / store (requests/s)", r, (r >= 0.6 ? "met" : "missed") }'
