-- Decode speed: thinkific.decode against cjson.decode on one webhook payload.
--
--   lua5.4 bench/decode_bench.lua FILE [ROUNDS] [ITERATIONS] [SECONDS]
--
-- The file is read once. Each round gives both decoders ITERATIONS decodes in short bursts that
-- take turns (so both see the same moments of a noisy machine), ending early once either has
-- spent SECONDS. Prints "row ..." lines (median, min, max of the rounds' microseconds per
-- decode) and a "ratio ..." line, as client_bench.lua does.
local thinkific = require("thinkific")
local cjson = require("cjson")
local BENCH_DIR = arg[0]:match("^(.*)/[^/]*$") or "."
local stats = dofile(BENCH_DIR .. "/stats.lua")
local turns = dofile(BENCH_DIR .. "/turns.lua")

local path = assert(arg[1], "usage: decode_bench.lua FILE [ROUNDS] [ITERATIONS] [SECONDS]")
local rounds = math.tointeger(tonumber(arg[2] or 7)) or 7
local iterations = math.tointeger(tonumber(arg[3] or 40000)) or 40000
local max_seconds = tonumber(arg[4] or 2) or 2

local BURST = 500
local WARMUP = 2000

local ok_core, core = pcall(require, "thinkific.core")
local now = ok_core and core.now or require("socket").gettime

local text
do
  local f = assert(io.open(path, "rb"))
  text = f:read("a")
  f:close()
end

local tk_decode = thinkific.decode
local tk_label = "thinkific.decode"
if type(tk_decode) ~= "function" then -- an older tree: the core's decode, which it wraps
  tk_decode = core.decode
  tk_label = "thinkific.core.decode"
end

-- Both decoders must give the same payload before either is timed.
do
  local a, err = tk_decode(text)
  assert(a, tostring(err))
  local b = cjson.decode(text)
  assert(a.id == b.id and a.payload.user.email == b.payload.user.email, "the decoders disagree")
  assert(math.type(a.payload.amount_cents) == "integer", "thinkific.decode should give integers")
end

local function burst(decode, n)
  local start = now()
  for _ = 1, n do decode(text) end
  return now() - start
end

local benches = {
  { key = "thinkific", label = tk_label, decode = tk_decode },
  { key = "cjson", label = "cjson.decode", decode = cjson.decode },
}
for _, b in ipairs(benches) do
  b.burst, b.total = BURST, iterations
  function b.run(n) return n, burst(b.decode, n) end
end

for _, b in ipairs(benches) do burst(b.decode, WARMUP) end

local times = { thinkific = {}, cjson = {} }
for round = 1, rounds do
  local done, spent = turns.round(benches, round, max_seconds)
  local line = {}
  for _, b in ipairs(benches) do
    times[b.key][round] = spent[b.key] / done[b.key] * 1e6 -- microseconds per decode
    line[#line + 1] = string.format("%s %.3f us", b.key, times[b.key][round])
  end
  io.stderr:write(string.format("decode round %d/%d (%d each): %s\n", round, rounds, done.cjson,
    table.concat(line, ", ")))
end

local medians = {}
for _, b in ipairs(benches) do
  local med, lo, hi = stats.summary(times[b.key])
  medians[b.key] = med
  print(string.format("row %-38s %10.3f %10.3f %10.3f  us/decode (%d bytes)", b.label, med, lo, hi,
    #text))
end

-- As in client_bench.lua: the median of the per-round ratios (the verdict), then the ratio of
-- the medians.
local value, lo, hi = stats.summary(stats.ratios(times.thinkific, times.cjson))
print(string.format("ratio %-38s %8.2f %10.2f  %.2f-%.2f  <= 1.30: %s",
  tk_label .. " / cjson.decode (time)", value, medians.thinkific / medians.cjson, lo, hi,
  value <= 1.3 and "target met" or "target missed"))
