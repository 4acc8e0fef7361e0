-- Memory of one big client:get_events call against the benchmark's nginx (bench/run.sh).
--
--   lua5.4 bench/events_memory.lua BASE_URL [IDS] [CONCURRENCY]
--
-- Fetches IDS (default 10,000) copies of the canned event and prints what the call holds
-- beyond its results: the Lua heap after the call, less IDS times what one decoded event
-- costs (the same answer decoded 1,000 times); the growth of the process's peak resident
-- size (VmHWM, C allocations and libcurl included) during the call; and, with a progress
-- callback sampling the heap, the most the heap ever held beyond the results received so far.
-- Numbers only: nothing is asserted here (spec/get_events_spec.lua asserts the bound).
local thinkific = require("thinkific")

local USAGE = "usage: events_memory.lua BASE_URL [IDS] [CONCURRENCY]"
local base_url = assert(arg[1], USAGE)
local n_ids = math.tointeger(tonumber(arg[2] or 10000)) or 10000
local concurrency = math.tointeger(tonumber(arg[3] or 8)) or 8
assert(n_ids >= 1000 and concurrency >= 1 and concurrency <= 64, USAGE)

-- Lua heap in KiB after full collections.
local function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

-- The process's peak resident size in KiB (Linux), or nil.
local function peak_rss()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmHWM:%s*(%d+)"))
end

local client = assert(thinkific.new{ api_key = "bench-key", base_url = base_url })
local ids = {}
for i = 1, n_ids do ids[i] = i end

local first = assert(client:get_event(1))
client:get_events({ 1, 2, 3 }, { concurrency = concurrency }) -- the pool exists beforehand

local per_event
do
  local body = assert(thinkific.encode(first))
  local base = heap()
  local copies = {}
  for i = 1, 1000 do copies[i] = thinkific.decode(body) end
  per_event = (heap() - base) / #copies
end

local function check(results)
  for i = 1, n_ids do
    if type(results[i]) ~= "table" then error("get_events: id " .. i .. " failed") end
  end
end

local base, rss = heap(), peak_rss()
local results = client:get_events(ids, { concurrency = concurrency })
local held = heap() - base
local rss_growth = rss and peak_rss() - rss
check(results)
results = nil -- luacheck: ignore
local left = heap() - base

base = heap()
local worst = -math.huge
results = client:get_events(ids, { concurrency = concurrency, progress = function(done)
  local extra = heap() - base - per_event * done
  if extra > worst then worst = extra end
end })
check(results)
results = nil -- luacheck: ignore
client:close()

print(string.format("get_events(%d ids, concurrency %d): one event %.2f KiB; results %.0f KiB",
  n_ids, concurrency, per_event, per_event * n_ids))
print(string.format("  heap beyond the results after the call: %.0f KiB; after dropping them: %.0f KiB",
  held - per_event * n_ids, left))
if rss_growth then
  print(string.format("  peak resident size grew by %.0f KiB during the call (results included)",
    rss_growth))
end
print(string.format("  with progress: at worst %.0f KiB beyond the results received so far", worst))
