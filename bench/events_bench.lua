-- Parallel event fetches against the benchmark's nginx (started by bench/run.sh).
--
--   lua5.4 bench/events_bench.lua BASE_URL CURL_MULTI_LOOP [ROUNDS] [IDS] [CALLS] [SECONDS] [MODE] [CONCURRENCY]
--
-- Two clients fetch IDS events (ids 1..IDS, GET BASE_URL/events/<id>, a canned event) with
-- CONCURRENCY transfers in flight: the plain C curl_multi loop (CURL_MULTI_LOOP, a separate
-- process that times itself and takes its orders through a pipe) and
-- client:get_events(ids, {concurrency = CONCURRENCY}). Each round gives each client CALLS
-- batches of IDS, one batch a turn, taking turns so both see the same moments of a noisy
-- machine; a round ends early once either has spent SECONDS in it. Every result of get_events
-- is checked to be a table (never false), outside the timing. Prints "row ..." lines (median,
-- min, max of the rounds' events/s) and a "ratio ..." line, as client_bench.lua does.
local thinkific = require("thinkific")
local socket = require("socket")
local BENCH_DIR = arg[0]:match("^(.*)/[^/]*$") or "."
local stats = dofile(BENCH_DIR .. "/stats.lua")
local turns = dofile(BENCH_DIR .. "/turns.lua")
local c_loop = dofile(BENCH_DIR .. "/c_loop.lua")

local USAGE = "usage: events_bench.lua BASE_URL CURL_MULTI_LOOP [ROUNDS] [IDS] [CALLS] [SECONDS] "
  .. "[MODE] [CONCURRENCY]"
local base_url = assert(arg[1], USAGE)
local curl_multi_loop = assert(arg[2], USAGE)
local rounds = math.tointeger(tonumber(arg[3] or 7)) or 7
local n_ids = math.tointeger(tonumber(arg[4] or 2000)) or 2000
local calls = math.tointeger(tonumber(arg[5] or 3)) or 3
local max_seconds = tonumber(arg[6] or 2) or 2
local mode = (arg[7] or "") ~= "" and (" [" .. arg[7] .. "]") or ""
local concurrency = math.tointeger(tonumber(arg[8] or 8)) or 8
assert(rounds >= 1 and n_ids >= 1 and calls >= 1 and concurrency >= 1 and concurrency <= 64, USAGE)

local API_KEY = "bench-key"
local prefix = base_url .. "/events/"

local ok_core, core = pcall(require, "thinkific.core")
local now = ok_core and core.now or socket.gettime

local client = assert(thinkific.new{ api_key = API_KEY, base_url = base_url })

local ids = {}
for i = 1, n_ids do ids[i] = i end
local opts = { concurrency = concurrency }

local headers, header_names = c_loop.library_headers(client, "/events", "1", API_KEY,
  thinkific._VERSION)
local c_multi = c_loop.start(curl_multi_loop, { prefix, tostring(concurrency) }, headers,
  header_names)
local function batch_curl_multi_loop() return c_multi.batch(n_ids) end

-- Every result must be an event table; checked after the clock stops.
local function check_events(results, errs)
  if type(results) ~= "table" or #results ~= n_ids then
    error("get_events: expected " .. n_ids .. " results, got " .. tostring(results and #results))
  end
  for i = 1, n_ids do
    local ev = results[i]
    if type(ev) ~= "table" then
      local err = errs and errs[i]
      error(string.format("get_events: result %d is %s (%s)", i, tostring(ev),
        type(err) == "table" and tostring(err.message or err.kind) or tostring(err)))
    end
    if ev.action == nil then error("get_events: result " .. i .. " is not an event") end
  end
end

local function batch_get_events()
  local start = now()
  local results, errs = client:get_events(ids, opts)
  local seconds = now() - start
  check_events(results, errs)
  return n_ids, seconds
end

-- A burst is one batch of n_ids; a round is `calls` of them each.
local benches = {
  { key = "curl_multi_loop", label = "C curl_multi loop (" .. concurrency .. ")",
    run = batch_curl_multi_loop, burst = n_ids, total = n_ids * calls },
  { key = "get_events", label = "client:get_events(" .. n_ids .. " ids, " .. concurrency .. ")",
    run = batch_get_events, burst = n_ids, total = n_ids * calls },
}

batch_get_events() -- warm-up: opens the pool's connections (the C loop warms up by itself)

local rates = turns.throughput(benches, rounds, max_seconds, "events" .. mode)

c_multi.close()
client:close()

local medians = stats.print_rows(benches, rates, mode, "events/s")
stats.print_ratio("get_events / C multi loop" .. mode, rates.get_events, rates.curl_multi_loop,
  medians.get_events, medians.curl_multi_loop, 0.7)
