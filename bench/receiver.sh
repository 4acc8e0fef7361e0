#!/bin/sh
# The receiver benchmark (run by bench/run.sh): wrk POSTs signed copies of the order.created
# sample, c=8, to one nginx worker, in turns on the same nginx and in the same run:
#   return 200       nginx answering at once (the ceiling)
#   thinkific.ngx    require("thinkific.ngx").serve(router): verify, decode, dispatch
#   octokit (node)   @octokit/webhooks' node middleware, when Node 20+ and the package are there
# Medians of BENCH_RECEIVER_ROUNDS (5) rounds of BENCH_RECEIVER_SECONDS (3) each; ratios against
# return 200 (target >= 0.35) and against octokit (target >= 2). Timing is never asserted.
# Needs: nginx with the Lua module (libnginx-mod-http-lua), wrk, build/luajit (make luajit).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NGINX=${NGINX:-/usr/sbin/nginx}
NODE=${NODE-node}
ROUNDS=${BENCH_RECEIVER_ROUNDS:-5}
SECONDS_EACH=${BENCH_RECEIVER_SECONDS:-3}
LUA=${LUA:-lua5.4}
SECRET=bench-secret
MODULES=/usr/lib/nginx/modules

skip() { echo "receiver bench skipped: $*"; exit 0; }
command -v wrk >/dev/null 2>&1 || skip "wrk is not installed (sh scripts/deps bench)"
[ -f "$MODULES/ngx_http_lua_module.so" ] || skip "nginx's Lua module is not installed"
[ -f build/luajit/thinkific/core.so ] || skip "build/luajit is missing (make luajit)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/thinkific-receiver.XXXXXX")
NGINX_PID= NODE_PID=
cleanup() {
  for pid in $NGINX_PID $NODE_PID; do kill "$pid" 2>/dev/null || true; done
  sleep 0.2
  for pid in $NGINX_PID $NODE_PID; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# The delivery: the sample's bytes, signed both ways (Thinkific's header and GitHub's).
cp spec/fixtures/payloads/order.created.json "$TMP/body.json"
BODY="$TMP/body.json" SECRET="$SECRET" "$LUA" -e '
  local t = require("thinkific")
  local body = assert(io.open(os.getenv("BODY"))):read("a")
  local sig = t.sign(body, os.getenv("SECRET"))
  io.write("X-Thinkific-Hmac-Sha256: ", sig, "\nX-Thinkific-Topic: order.created\n",
    "X-Thinkific-Subdomain: bench\nX-GitHub-Event: installation\n",
    "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\n",
    "X-Hub-Signature-256: sha256=", sig, "\n")' >"$TMP/headers.txt"

. bench/wrk.sh
port=$(free_port)
cat >"$TMP/bench_hooks.lua" <<LUA
local thinkific = require("thinkific")
local router = thinkific.router{ secret = "$SECRET", dedupe = 0 }
local handled = ngx.shared.bench
router:on("order.created", function() handled:incr("handled", 1, 0) end)
return router
LUA
cat >"$TMP/nginx.conf" <<CONF
load_module $MODULES/ndk_http_module.so;
load_module $MODULES/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
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
  lua_shared_dict bench 1m;
  keepalive_requests 1000000;
  client_body_buffer_size 16k;
  server {
    listen 127.0.0.1:$port;
    location = /ok { return 200 '{"status":"ok"}'; }
    location = /hooks {
      content_by_lua_block { require("thinkific.ngx").serve(require("bench_hooks")) }
    }
    location = /handled {
      content_by_lua_block { ngx.say(ngx.shared.bench:get("handled") or 0) }
    }
  }
}
CONF
"$NGINX" -p "$TMP/" -e "$TMP/error.log" -c "$TMP/nginx.conf" &
NGINX_PID=$!
wait_port "$port" || skip "nginx did not start: $(tail -n 3 "$TMP/error.log")"

NODE_PORT=
if [ -n "$NODE" ] && command -v "$NODE" >/dev/null 2>&1 \
    && [ -d bench/node_modules/@octokit/webhooks ]; then
  (cd bench && exec "$NODE" octokit_server.mjs "$SECRET") >"$TMP/node.port" 2>"$TMP/node.err" &
  NODE_PID=$!
  i=0
  while [ ! -s "$TMP/node.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  NODE_PORT=$(head -n 1 "$TMP/node.port")
fi

export BENCH_DELIVERY_DIR="$TMP"
: >"$TMP/ok"; : >"$TMP/lua"; : >"$TMP/node"; : >"$TMP/r_ok"; : >"$TMP/r_node"
r=1
while [ $r -le "$ROUNDS" ]; do
  ok=$(measure "return 200" "http://127.0.0.1:$port/ok" bench/receiver_request.lua)
  lua=$(measure "thinkific.ngx" "http://127.0.0.1:$port/hooks" bench/receiver_request.lua)
  echo "$ok" >>"$TMP/ok"; echo "$lua" >>"$TMP/lua"
  ratio_to "$lua" "$ok" "$TMP/r_ok"
  line="receiver round $r/$ROUNDS: return 200 $ok/s, thinkific.ngx $lua/s"
  if [ -n "$NODE_PORT" ]; then
    node=$(measure "octokit" "http://127.0.0.1:$NODE_PORT/hooks" bench/receiver_request.lua)
    echo "$node" >>"$TMP/node"
    ratio_to "$lua" "$node" "$TMP/r_node"
    line="$line, octokit $node/s"
  fi
  echo "$line" >&2
  r=$((r + 1))
done

handled=$("$LUA" -e "local http = require('socket.http'); io.write((http.request('http://127.0.0.1:$port/handled')))" | tr -d '\n')
printf '%-40s %10.0f  requests/s (wrk -t1 -c8, 1 nginx worker)\n' "nginx return 200" "$(median "$TMP/ok")"
printf '%-40s %10.0f  requests/s (%s deliveries handled in all)\n' "thinkific.ngx.serve(router)" "$(median "$TMP/lua")" "$handled"
if [ -n "$NODE_PORT" ]; then
  printf '%-40s %10.0f  requests/s (node %s)\n' "@octokit/webhooks node middleware" "$(median "$TMP/node")" "$("$NODE" -v)"
fi
echo "(ratios: medians of the per-round ratios)"
awk -v r="$(median "$TMP/r_ok")" 'BEGIN { printf "%-40s %10.2f  >= 0.35: target %s\n", "thinkific.ngx / return 200", r, (r >= 0.35 ? "met" : "missed") }'
if [ -n "$NODE_PORT" ]; then
  awk -v r="$(median "$TMP/r_node")" 'BEGIN { printf "%-40s %10.2f  >= 2.00: target %s\n", "thinkific.ngx / octokit (requests/s)", r, (r >= 2 ? "met" : "missed") }'
else
  echo "octokit comparison skipped: node 20+ or bench/node_modules/@octokit/webhooks missing"
fi
