-- luacheck: globals wrk setup request tid
-- wrk script for bench/inbox_bench.lua: POSTs the order.created sample ($BENCH_BODY), each
-- request with an event id of its own (23 digits: $BENCH_RUN, the thread's number, a counter),
-- signed with $BENCH_SECRET by thinkific.core (the LuaJIT build: wrk's Lua is LuaJIT, and
-- $BENCH_LUAJIT_CPATH points at build/luajit). Unique ids make every delivery a new event.
package.cpath = os.getenv("BENCH_LUAJIT_CPATH") .. ";" .. package.cpath
local core = require("thinkific.core")

local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local template = f:read("*a")
f:close()
local before, after = template:match('^(.-"id": ")%d+(".*)$')
assert(before, "no event id in " .. os.getenv("BENCH_BODY"))
local secret = os.getenv("BENCH_SECRET")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter, prefix, width = 0, nil, nil
function request()
  if not prefix then
    prefix = os.getenv("BENCH_RUN") .. tid
    width = 23 - #prefix
  end
  counter = counter + 1
  local body = before .. prefix .. string.format("%0" .. width .. "d", counter) .. after
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json",
    ["X-Thinkific-Topic"] = "order.created", ["X-Thinkific-Subdomain"] = "bench",
    ["X-Thinkific-Hmac-Sha256"] = core.sign(body, secret) }, body)
end
