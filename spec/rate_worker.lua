-- A process of spec/rate_limit_spec.lua: fetches events with get_events under a rate limit.
--   lua5.4 spec/rate_worker.lua BASE_URL API_KEY STORE LIMIT WINDOW COUNT
-- STORE is a rate_limit_store URL, or "-" for none (a budget of this process only). Fetches
-- COUNT events (concurrency 8, subdomain "acme") once the file named in $RATE_GO exists, then
-- prints one line: "done OK FAILED START END", START and END the wall clock around the
-- get_events call; a failed id's error goes to stderr.
local thinkific = require("thinkific")
local socket = require("socket")

local base_url, api_key, store, limit, window, count = arg[1], arg[2], arg[3], tonumber(arg[4]),
  tonumber(arg[5]), tonumber(arg[6])

local client = thinkific.new{ api_key = api_key, base_url = base_url, subdomain = "acme",
  rate_limit = math.tointeger(limit), rate_window = window,
  rate_limit_store = store ~= "-" and store or nil, retries = 30, max_retry_wait = 5 }

-- The sandbox's seeded events ($RATE_SEEDED: their ids, comma-separated) in turn, COUNT ids.
local seeded = {}
for id in assert(os.getenv("RATE_SEEDED")):gmatch("[^,]+") do seeded[#seeded + 1] = id end
local ids = {}
for i = 1, count do ids[i] = seeded[(i - 1) % #seeded + 1] end

-- All workers start together: the parent creates the GO file once every one is ready.
io.stdout:write("ready\n")
io.stdout:flush()
local go, deadline = os.getenv("RATE_GO"), socket.gettime() + 20
while true do
  local f = io.open(go)
  if f then
    f:close()
    break
  end
  assert(socket.gettime() < deadline, "no go")
  socket.sleep(0.005)
end

local start = socket.gettime()
local results, errs = client:get_events(ids, { concurrency = 8 })
local finish = socket.gettime()
local ok, failed = 0, 0
for i = 1, count do
  if results[i] then
    ok = ok + 1
  else
    failed = failed + 1
    io.stderr:write(tostring(errs[i]), "\n")
  end
end
client:close()
io.stdout:write(("done %d %d %.6f %.6f\n"):format(ok, failed, start, finish))
