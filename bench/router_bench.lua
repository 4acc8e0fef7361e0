-- Receiving speed: router:handle on one signed delivery, against cjson.decode of the same bytes
-- and, when Node is there, @octokit/webhooks' verifyAndReceive.
--
--   lua5.4 bench/router_bench.lua FILE [ROUNDS] [EVENTS] [SECONDS] [NODE] [FIFO]
--
-- FILE is read once and signed once (outside any timed region). Timed, each in its own loop:
--   handle   router:handle(body, headers) with dedupe = 0 (one body, sent again and again): the
--            signature check, the decode, the envelope checks and the dispatch to the one
--            handler registered for the topic. (With de-duplication on, every call would need
--            a body of its own, and a pool of bodies larger than the LRU falls out of the CPU's
--            caches, which costs more than the LRU: so it is left out.)
--   cjson    cjson.decode(body), the baseline
--   verify   thinkific.verify(body, signature, secret) alone, to show where the time goes
--   octokit  with NODE (a node binary) and FIFO (a path for a named pipe): node runs
--            bench/octokit_bench.mjs --serve, which times verifyAndReceive on the same bytes
--            with the same secret in bursts we ask for, so it takes turns with the others
-- Each round gives every measurement EVENTS calls in short bursts that take turns (the first to
-- go changes every turn), ending early once one has spent SECONDS in the round. At the end the
-- handlers' counts must equal the calls made and every status must have been 200 (for the
-- octokit side: its handler's count), or the script fails. Prints "row ..." lines (median, min,
-- max of the rounds), "ratio ..." lines, and "note ..." lines (e.g. why Node was left out), as
-- client_bench.lua does; run.sh prints them.
local thinkific = require("thinkific")
local cjson = require("cjson")
local BENCH_DIR = arg[0]:match("^(.*)/[^/]*$") or "."
local stats = dofile(BENCH_DIR .. "/stats.lua")
local turns = dofile(BENCH_DIR .. "/turns.lua")

local USAGE = "usage: router_bench.lua FILE [ROUNDS] [EVENTS] [SECONDS] [NODE] [FIFO]"
local path = assert(arg[1], USAGE)
local rounds = math.tointeger(tonumber(arg[2] or 7)) or 7
local events = math.tointeger(tonumber(arg[3] or 20000)) or 20000
local max_seconds = tonumber(arg[4] or 2) or 2
local node = (arg[5] or "") ~= "" and arg[5] or nil
local fifo = (arg[6] or "") ~= "" and arg[6] or nil

local BURST = 500
local WARMUP = 2000
local SECRET = "bench-secret-0123456789"
local HANDLE_TARGET = 1.8        -- router:handle / cjson.decode, time per event
local NODE_TARGET = 1.0          -- router:handle / verifyAndReceive, events/s

local ok_core, core = pcall(require, "thinkific.core")
local now = ok_core and core.now or require("socket").gettime
local sign, verify, decode = thinkific.sign, thinkific.verify, cjson.decode

local body
do
  local f = assert(io.open(path, "rb"))
  body = f:read("a")
  f:close()
end
local event = cjson.decode(body)
local topic = event.resource .. "." .. event.action
local signature = sign(body, SECRET)

-- Lower-case names, as OpenResty's ngx.req.get_headers() gives them.
local function delivery_headers(sig)
  return {
    ["content-type"] = "application/json",
    ["user-agent"] = "Thinkific-Webhooks",
    ["x-thinkific-hmac-sha256"] = sig,
    ["x-thinkific-topic"] = topic,
    ["x-thinkific-subdomain"] = "bench",
  }
end
local headers = delivery_headers(signature)

local handled, calls, failed, last_failure = 0, 0, 0, nil
local router = thinkific.router{ secret = SECRET, dedupe = 0 }
router:on(topic, function() handled = handled + 1 end)

-- Every status is checked; a count of failures (and the last one) is kept for the end.
local function burst_handle(n)
  local r, text, h, fails = router, body, headers, 0
  local start = now()
  for _ = 1, n do
    local status, answer = r:handle(text, h)
    if status ~= 200 then
      fails = fails + 1
      last_failure = status .. " " .. answer
    end
  end
  local spent = now() - start
  calls, failed = calls + n, failed + fails
  return n, spent
end

local function burst_cjson(n)
  local text = body
  local start = now()
  for _ = 1, n do decode(text) end
  return n, now() - start
end

local function burst_verify(n)
  local text, sig, ok = body, signature, true
  local start = now()
  for _ = 1, n do ok = verify(text, sig, SECRET) and ok end
  local spent = now() - start
  assert(ok, "thinkific.verify refused the delivery's signature")
  return n, spent
end

-- The octokit side, through a pipe (our orders) and a FIFO (its answers): io.popen goes one
-- way only. run.sh runs us with SIGPIPE ignored, so a node that died gives a write error here.
local notes = {}
local octokit
local function start_octokit()
  if not (node and fifo) then return end
  local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local script = BENCH_DIR .. "/octokit_bench.mjs"
  os.remove(fifo)
  if not os.execute("mkfifo " .. quote(fifo)) then
    notes[#notes + 1] = "node comparison skipped: mkfifo failed"
    return
  end
  local input = assert(io.popen(("exec %s %s %s %s --serve >%s"):format(quote(node), quote(script),
    quote(path), quote(SECRET), quote(fifo)), "w"))
  local output = assert(io.open(fifo, "r")) -- waits until the shell opens its end
  input:setvbuf("line")
  local line = output:read("l") or "fail node ended before it was ready"
  local version, node_version, hex = line:match("^ready (%S+) (%S+) (%x+)$")
  if not version or hex ~= signature then
    input:close()
    output:close()
    os.remove(fifo)
    local why = line:match("^fail (.*)$") or (version and "node signed the bytes differently")
      or ("unexpected answer: " .. line)
    notes[#notes + 1] = "node comparison skipped: " .. why
    return
  end
  octokit = { input = input, output = output, sent = 0,
    label = ("octokit verifyAndReceive (%s)"):format(version), node = node_version }
end

-- A node that fails in the middle leaves the comparison out (with a note), not the bench.
local function burst_octokit(n)
  local ok = octokit.input:write(n, "\n")
  local line = ok and octokit.output:read("l")
  local done, seconds = (line or ""):match("^(%d+) (%S+)$")
  if not done then
    octokit.broken = line and line:match("^fail (.*)$") or line or "node ended"
    return 0, 0
  end
  octokit.sent = octokit.sent + n
  return tonumber(done), tonumber(seconds)
end

-- The handler's count since ready (or nil when it failed).
local function stop_octokit()
  if not octokit then return nil end
  local line = not octokit.broken and octokit.input:write("0\n") and octokit.output:read("l")
  octokit.input:close()
  octokit.output:close()
  os.remove(fifo)
  return tonumber((line or ""):match("^count (%d+)$"))
end

start_octokit()

-- Checks before timing: the router accepts the delivery and refuses a bad signature (or the
-- timings mean nothing).
do
  local status = router:handle(body, delivery_headers(("0"):rep(64)))
  assert(status == 401, "router:handle accepted a wrong signature")
  assert(router:handle(body, headers) == 200, "router:handle refused the delivery")
  assert(handled == 1, "the handler did not run")
  handled = 0
end

local benches = {
  { key = "handle", label = "router:handle (dedupe 0)", run = burst_handle },
  { key = "cjson", label = "cjson.decode (same bytes)", run = burst_cjson },
  { key = "verify", label = "thinkific.verify alone", run = burst_verify },
}
if octokit then
  local b = { key = "octokit", label = octokit.label }
  function b.run(n) -- a node that broke is left out of the turns that follow
    local done, seconds = burst_octokit(n)
    b.off = octokit.broken ~= nil
    return done, seconds
  end
  benches[#benches + 1] = b
end
for _, b in ipairs(benches) do b.burst, b.total = BURST, events end

for _, b in ipairs(benches) do
  if b.key ~= "octokit" then b.run(WARMUP) end -- node warms itself up before it is ready
end

local times = {}
for _, b in ipairs(benches) do times[b.key] = {} end

for round = 1, rounds do
  local done, spent = turns.round(benches, round, max_seconds)
  local line = {}
  for _, b in ipairs(benches) do
    if done[b.key] > 0 then
      times[b.key][round] = spent[b.key] / done[b.key] * 1e6 -- microseconds per event
      line[#line + 1] = string.format("%s %.3f us (%d)", b.key, times[b.key][round], done[b.key])
    end
  end
  io.stderr:write(string.format("router round %d/%d: %s\n", round, rounds, table.concat(line, ", ")))
end

local octokit_count = stop_octokit()

-- The results count only when every call did what it should.
if failed > 0 then
  error(("router:handle: %d of %d calls failed, the last with %s"):format(failed, calls, last_failure))
end
if handled ~= calls then
  error(("router:handle: the handler ran %d times for %d calls"):format(handled, calls))
end
if octokit and octokit.broken then
  notes[#notes + 1] = "node comparison left out: octokit_bench.mjs failed: " .. octokit.broken
  octokit = nil
elseif octokit and octokit_count ~= octokit.sent then
  error(("octokit: the handler ran %s times for %d deliveries"):format(tostring(octokit_count),
    octokit.sent))
end

local rates = {} -- events/s, per round
for key, list in pairs(times) do
  rates[key] = {}
  for r, us in ipairs(list) do rates[key][r] = 1e6 / us end
end

local medians = {}
for _, b in ipairs(benches) do
  if b.key ~= "octokit" then -- in events/s below
    local med, lo, hi = stats.summary(times[b.key])
    medians[b.key] = med
    print(string.format("row %-38s %10.3f %10.3f %10.3f  us/call (%d bytes)", b.label, med, lo, hi, #body))
  end
end
-- Events/s side by side.
local rate_rows = { { "handle", "router:handle (dedupe 0)", "Lua " .. _VERSION:match("%S+$") } }
if octokit then rate_rows[2] = { "octokit", octokit.label, "node " .. octokit.node } end
for _, r in ipairs(rate_rows) do
  local med, lo, hi = stats.summary(rates[r[1]])
  medians[r[1] .. "_rate"] = med
  print(string.format("row %-38s %10.0f %10.0f %10.0f  events/s (%s)", r[2], med, lo, hi, r[3]))
end

-- As in client_bench.lua: the median of the per-round ratios (the verdict), then the ratio of
-- the medians.
local function ratio_line(label, num, den, of_medians, target, at_most)
  local value, lo, hi = stats.summary(stats.ratios(num, den))
  local verdict = ""
  if target then
    local met = (at_most and value <= target) or (not at_most and value >= target)
    verdict = string.format("%s %.2f: %s", at_most and "<=" or ">=", target,
      met and "target met" or "target missed")
  end
  print(string.format("ratio %-38s %8.2f %10.2f  %.2f-%.2f  %s", label, value, of_medians, lo, hi,
    verdict))
end

ratio_line("router:handle / cjson.decode (time)", times.handle, times.cjson,
  medians.handle / medians.cjson, HANDLE_TARGET, true)
if octokit then
  ratio_line("router:handle / octokit (events/s)", rates.handle, rates.octokit,
    medians.handle_rate / medians.octokit_rate, NODE_TARGET, false)
end
for _, note in ipairs(notes) do print("note " .. note) end
