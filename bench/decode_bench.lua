-- Decode speed: thinkific.decode against cjson.decode on one webhook payload.
--
--   lua5.4 bench/decode_bench.lua FILE [ROUNDS] [ITERATIONS] [SECONDS]
--
-- The file is read once. Each round times both decoders (alternating which goes first), each
-- for ITERATIONS decodes or SECONDS seconds, whichever comes first. Prints "row ..." lines
-- (median, min, max of microseconds per decode) and a "ratio ..." line, as client_bench.lua does.
local thinkific = require("thinkific")
local cjson = require("cjson")

local path = assert(arg[1], "usage: decode_bench.lua FILE [ROUNDS] [ITERATIONS] [SECONDS]")
local rounds = math.tointeger(tonumber(arg[2] or 5)) or 5
local iterations = math.tointeger(tonumber(arg[3] or 200000)) or 200000
local max_seconds = tonumber(arg[4] or 2) or 2

local CHUNK = 500
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

local function time_decoder(decode)
  for _ = 1, WARMUP do decode(text) end
  collectgarbage()
  local done = 0
  local start = now()
  while done < iterations do
    for _ = 1, CHUNK do decode(text) end
    done = done + CHUNK
    if now() - start > max_seconds then break end
  end
  return (now() - start) / done * 1e6 -- microseconds per decode
end

local benches = {
  { key = "thinkific", label = tk_label, run = function() return time_decoder(tk_decode) end },
  { key = "cjson", label = "cjson.decode", run = function() return time_decoder(cjson.decode) end },
}

local times = { thinkific = {}, cjson = {} }
for round = 1, rounds do
  local line = {}
  for i = 0, 1 do
    local b = benches[(round - 1 + i) % 2 + 1]
    local us = b.run()
    times[b.key][round] = us
    line[#line + 1] = string.format("%s %.3f us", b.key, us)
  end
  io.stderr:write(string.format("decode round %d/%d: %s\n", round, rounds, table.concat(line, ", ")))
end

local function median(list)
  local t = { table.unpack(list) }
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

local function range(list)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(list) do
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  return lo, hi
end

local medians = {}
for _, b in ipairs(benches) do
  local lo, hi = range(times[b.key])
  medians[b.key] = median(times[b.key])
  print(string.format("row %-38s %10.3f %10.3f %10.3f  us/decode (%d bytes)", b.label, medians[b.key], lo, hi, #text))
end

local per_round = {}
for r = 1, rounds do per_round[r] = times.thinkific[r] / times.cjson[r] end
local lo, hi = range(per_round)
local value = medians.thinkific / medians.cjson
print(string.format("ratio %-38s %8.2f  (per round %.2f-%.2f)  target <= 1.30: %s",
  tk_label .. " / cjson.decode (time)", value, lo, hi,
  value <= 1.3 and "target met" or "target missed"))
