-- A bulk job under the rate limit (run by bench/run.sh; not part of the tests).
--
--   lua5.4 bench/rate_limit_bench.lua [LIMIT] [WINDOW] [IDS] [PROCESSES] [LATENCY_MS]
--
-- Starts a sandbox that allows LIMIT (120) requests per site in fixed windows of WINDOW (2) s
-- and answers 429 beyond, then fetches IDS (1200) events of one site with client:get_events
-- (concurrency 8) under a client budget of LIMIT per WINDOW: in one process (its budget in
-- memory), and split over PROCESSES (2) processes sharing the budget through one SQLite file;
-- each on loopback as it is, and again with the sandbox answering every event LATENCY_MS (10)
-- later (a fault), which stands for the network: 10 ms in a 2 s window is 300 ms in
-- Thinkific's minute. Reports for each job its time (the first request's start to the last
-- answer), the ideal time the limit allows (the last of IDS requests may go
-- floor((IDS - 1) / LIMIT) windows after the first), their ratio (target <= 1.05) and the
-- sandbox's count of 429s (target 0). Timing is never asserted. The contract's window is 60 s;
-- the default of 2 s keeps the run short (BENCH_RATE_WINDOW).
-- Called with "worker" first, it is one process of the job (STORE "-": in memory):
--   lua5.4 bench/rate_limit_bench.lua worker BASE_URL API_KEY STORE LIMIT WINDOW COUNT GO IDS...
local socket = require("socket")
local thinkific = require("thinkific")

local function worker(base_url, api_key, store, limit, window, count, go, ...)
  local seeded = { ... }
  local client = assert(thinkific.new{ api_key = api_key, base_url = base_url,
    subdomain = "bench", rate_limit = math.tointeger(tonumber(limit)),
    rate_window = tonumber(window), rate_limit_store = store ~= "-" and store or nil,
    retries = 10 })
  local ids = {}
  for i = 1, tonumber(count) do ids[i] = seeded[(i - 1) % #seeded + 1] end
  io.stdout:write("ready\n")
  io.stdout:flush()
  local deadline = socket.gettime() + 60
  while true do
    local f = io.open(go)
    if f then
      f:close()
      break
    end
    assert(socket.gettime() < deadline, "no go")
    socket.sleep(0.002)
  end
  local start = socket.gettime()
  local results, errs = client:get_events(ids, { concurrency = 8 })
  local finish = socket.gettime()
  for i = 1, #ids do
    if not results[i] then error("event " .. i .. ": " .. tostring(errs[i])) end
  end
  client:close()
  io.stdout:write(string.format("done %.6f %.6f\n", start, finish))
end

if arg[1] == "worker" then
  worker(table.unpack(arg, 2))
  os.exit(0)
end

local limit = math.tointeger(tonumber(arg[1] or 120))
local window = tonumber(arg[2] or 2)
local n_ids = math.tointeger(tonumber(arg[3] or 1200))
local processes = math.tointeger(tonumber(arg[4] or 2))
local latency_ms = tonumber(arg[5] or 10)
assert(limit and window and n_ids and processes and latency_ms and limit >= 1 and window > 0
  and window <= 60 and n_ids >= 1 and processes >= 1 and latency_ms >= 0,
  "usage: rate_limit_bench.lua [LIMIT] [WINDOW] [IDS] [PROCESSES] [LATENCY_MS]")

local process = require("thinkific.sandbox.process")
local quote = process.quote
local sb = require("thinkific.sandbox").spawn{ rate_limit = limit, rate_window = window }
local tmp = io.popen("mktemp -d \"${TMPDIR:-/tmp}/thinkific-rate.XXXXXX\""):read("l")
local script = arg[0]

-- Runs the job as `procs` processes, sharing the budget in a SQLite file when there are
-- several, each event answered `delay` ms late; returns its time in seconds and the 429s the
-- sandbox answered.
local function job(procs, delay, name)
  assert(sb:reset())
  assert(sb:reset_stats())
  if delay > 0 then
    assert(sb:fault{ path = "/api/v2/events/", delay_ms = delay, count = 1000000 })
  end
  local go = tmp .. "/" .. name .. ".go"
  local store = procs > 1 and "sqlite:" .. tmp .. "/" .. name .. ".db" or "-"
  local children = {}
  for k = 1, procs do
    local count = n_ids // procs + (k <= n_ids % procs and 1 or 0)
    local argv = { "lua5.4", quote(script), "worker", quote(sb.url), quote(sb.api_key),
      quote(store), limit, window, count, quote(go) }
    for _, id in ipairs(sb.seeded_events) do argv[#argv + 1] = quote(id) end
    children[k] = process.start(table.concat(argv, " "), {})
  end
  for k, c in ipairs(children) do
    assert(c:first_line(30) == "ready", "worker " .. k .. ": " .. c:stderr())
  end
  local f = assert(io.open(go, "w"))
  f:close()
  local first, last = math.huge, 0
  for k, c in ipairs(children) do
    local pid = c:getpid()
    assert(process.wait_exit(pid, 3600), "worker " .. k .. " did not finish")
    local start, finish = (process.read_file(c.out) or ""):match("\ndone ([%d.]+) ([%d.]+)\n$")
    assert(start, "worker " .. k .. ": " .. c:stderr())
    first, last = math.min(first, tonumber(start)), math.max(last, tonumber(finish))
    c:stop()
  end
  return last - first, assert(sb:stats()).rate_limited
end

local ideal = (n_ids - 1) // limit * window
io.stderr:write(string.format("rate limit bench: %d ids at %d per %g s, ideal %g s each job\n",
  n_ids, limit, window, ideal))
local rows = {}
for _, delay in ipairs(latency_ms > 0 and { 0, latency_ms } or { 0 }) do
  local late = delay > 0 and string.format(", +%g ms", delay) or ""
  for _, case in ipairs{ { 1, "one process (memory)" },
      { processes, processes .. " processes (SQLite)" } } do
    local seconds, limited = job(case[1], delay, #rows + 1)
    rows[#rows + 1] = { label = case[2] .. late, seconds = seconds, limited = limited }
  end
end
sb:stop()
os.execute("rm -rf " .. quote(tmp))

print(string.format("rate limit: %d events of one site, get_events (concurrency 8), %d requests "
  .. "per %g s window (sandbox and client); ideal %g s", n_ids, limit, window, ideal))
print(string.format("%-40s %9s %9s %7s  %s", "job", "time s", "ratio", "429s", "targets"))
for _, r in ipairs(rows) do
  local ratio = ideal > 0 and r.seconds / ideal or 0 / 0
  print(string.format("%-40s %9.2f %9.3f %7d  ratio <= 1.05 %s, 429s 0 %s", r.label, r.seconds,
    ratio, r.limited, ratio <= 1.05 and "met" or "missed", r.limited == 0 and "met" or "missed"))
end
