-- Client throughput against the benchmark's nginx (started by bench/run.sh).
--
--   lua5.4 bench/client_bench.lua BASE_URL CURL_LOOP [ROUNDS] [REQUESTS] [SECONDS] [SOCKET_REQUESTS] [MODE]
--
-- Each round measures, in a rotating order, the plain C libcurl loop (CURL_LOOP, a separate
-- process that times itself), client:get_webhook(id) and LuaSocket's http.request (a new
-- connection per request). Every measurement stops after REQUESTS requests or SECONDS seconds,
-- whichever comes first. Prints "row ..." lines (median, min, max of requests/s over the rounds)
-- and "ratio ..." lines; run.sh prints the rows first, then the ratios. MODE (e.g. "1 CPU") is
-- appended to every label: run.sh runs this once per CPU placement.
local thinkific = require("thinkific")
local cjson = require("cjson")
local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")

local base_url = assert(arg[1], "usage: client_bench.lua BASE_URL CURL_LOOP [ROUNDS] ...")
local curl_loop = assert(arg[2], "usage: client_bench.lua BASE_URL CURL_LOOP [ROUNDS] ...")
local rounds = math.tointeger(tonumber(arg[3] or 5)) or 5
local requests = math.tointeger(tonumber(arg[4] or 20000)) or 20000
local max_seconds = tonumber(arg[5] or 3) or 3
local socket_requests = math.tointeger(tonumber(arg[6] or 2000)) or 2000
local mode = (arg[7] or "") ~= "" and (" [" .. arg[7] .. "]") or ""

local WARMUP = 200
local WEBHOOK_ID = "20200227213233625839530"
local API_KEY = "bench-key"
local url = base_url .. "/webhooks/" .. WEBHOOK_ID

local ok_core, core = pcall(require, "thinkific.core")
local now = ok_core and core.now or socket.gettime

local function new_client()
  return assert(thinkific.new{ api_key = API_KEY, base_url = base_url })
end

-- The headers the library sends, read from the request it builds (an internal method);
-- the documented defaults when that is not available.
local function library_headers()
  local headers
  local client = new_client()
  if type(client._request) == "function" then
    local ok, request = pcall(client._request, client, "GET", "/webhooks", WEBHOOK_ID)
    if ok and type(request) == "table" and type(request.headers) == "table" then
      headers = request.headers
    end
  end
  client:close()
  headers = headers or {
    ["Authorization"] = "Bearer " .. API_KEY,
    ["Accept"] = "application/json",
    ["User-Agent"] = "lua-thinkific/" .. thinkific._VERSION,
  }
  local names = {}
  for name in pairs(headers) do names[#names + 1] = name end
  table.sort(names)
  return headers, names
end

local headers, header_names = library_headers()

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local curl_command
do
  local words = { shell_quote(curl_loop), shell_quote(url), tostring(requests), tostring(max_seconds) }
  for _, name in ipairs(header_names) do
    words[#words + 1] = shell_quote(name .. ": " .. headers[name])
  end
  curl_command = table.concat(words, " ")
end

-- The plain C loop, in its own process: it prints "<requests> <seconds> <req/s>".
local function bench_curl_loop()
  local p = assert(io.popen(curl_command, "r"))
  local out = p:read("a")
  local ok = p:close()
  local done, seconds = out:match("^(%d+) (%S+) ")
  if not ok or not done then error("the C loop failed: " .. out) end
  return tonumber(done), tonumber(seconds)
end

local function check_webhook(w, err)
  if not w then error("get_webhook failed: " .. tostring(err), 2) end
  if w.topic ~= "order.created" then error("get_webhook: unexpected topic " .. tostring(w.topic), 2) end
end

local function bench_get_webhook()
  local client = new_client()
  for _ = 1, WARMUP do check_webhook(client:get_webhook(WEBHOOK_ID)) end
  collectgarbage()
  local done = 0
  local start = now()
  while done < requests do
    local w, err = client:get_webhook(WEBHOOK_ID)
    if not w or w.topic ~= "order.created" then check_webhook(w, err) end
    done = done + 1
    if done % 256 == 0 and now() - start > max_seconds then break end
  end
  local seconds = now() - start
  client:close()
  return done, seconds
end

-- LuaSocket with the same headers; it opens (and closes) a connection for every request.
local function socket_get()
  local chunks = {}
  local _, code = http.request{
    url = url,
    headers = headers,
    sink = ltn12.sink.table(chunks),
  }
  if code ~= 200 then error("LuaSocket request failed: " .. tostring(code)) end
  local w = cjson.decode(table.concat(chunks))
  if w.topic ~= "order.created" then error("LuaSocket: unexpected topic " .. tostring(w.topic)) end
end

local function bench_luasocket()
  for _ = 1, WARMUP // 10 do socket_get() end
  collectgarbage()
  local done = 0
  local start = now()
  while done < socket_requests do
    socket_get()
    done = done + 1
    if done % 64 == 0 and now() - start > max_seconds then break end
  end
  return done, now() - start
end

local benches = {
  { key = "curl_loop", label = "C libcurl loop", run = bench_curl_loop },
  { key = "get_webhook", label = "client:get_webhook(id)", run = bench_get_webhook },
  { key = "luasocket", label = "LuaSocket request + cjson", run = bench_luasocket },
}

local rates = {}
for _, b in ipairs(benches) do rates[b.key] = {} end

for round = 1, rounds do
  -- Rotate the order so that no measurement always runs first or last.
  local line = {}
  for i = 0, #benches - 1 do
    local b = benches[(round - 1 + i) % #benches + 1]
    local done, seconds = b.run()
    local rate = done / seconds
    rates[b.key][round] = rate
    line[#line + 1] = string.format("%s %.0f/s (%d in %.2fs)", b.key, rate, done, seconds)
  end
  io.stderr:write(string.format("client%s round %d/%d: %s\n", mode, round, rounds, table.concat(line, ", ")))
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
  local list = rates[b.key]
  local lo, hi = range(list)
  medians[b.key] = median(list)
  print(string.format("row %-38s %10.0f %10.0f %10.0f  requests/s", b.label .. mode, medians[b.key], lo, hi))
end

-- Paired per-round ratios show how steady the ratio of medians is on a noisy machine.
local function ratio_line(label, num, den, target)
  local per_round = {}
  for r = 1, rounds do per_round[r] = rates[num][r] / rates[den][r] end
  local lo, hi = range(per_round)
  local value = medians[num] / medians[den]
  local verdict = ""
  if target then
    verdict = string.format("  target >= %.2f: %s", target, value >= target and "target met" or "target missed")
  end
  print(string.format("ratio %-38s %8.2f  (per round %.2f-%.2f)%s", label .. mode, value, lo, hi, verdict))
end

ratio_line("get_webhook / C loop", "get_webhook", "curl_loop", 0.8)
ratio_line("get_webhook / LuaSocket", "get_webhook", "luasocket")
