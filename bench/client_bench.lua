-- Client throughput against the benchmark's nginx (started by bench/run.sh).
--
--   lua5.4 bench/client_bench.lua BASE_URL CURL_LOOP [ROUNDS] [REQUESTS] [SECONDS] [SOCKET_REQUESTS] [MODE]
--
-- Three clients fetch the same webhook: the plain C libcurl loop (CURL_LOOP, a separate process
-- that times itself and takes its orders through a pipe), client:get_webhook(id), and
-- LuaSocket's http.request (a new connection per request) followed by cjson.decode. Each round
-- gives every client REQUESTS requests (SOCKET_REQUESTS for LuaSocket) in short bursts that
-- take turns, so that all three see the same moments of a noisy machine; a round ends early
-- once any client has spent SECONDS in it. Prints "row ..." lines (median, min, max of the
-- rounds' requests/s) and "ratio ..." lines; run.sh prints the rows first, then the ratios.
-- MODE (e.g. "1 CPU") is appended to every label.
local thinkific = require("thinkific")
local cjson = require("cjson")
local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local BENCH_DIR = arg[0]:match("^(.*)/[^/]*$") or "."
local stats = dofile(BENCH_DIR .. "/stats.lua")
local turns = dofile(BENCH_DIR .. "/turns.lua")
local c_loop = dofile(BENCH_DIR .. "/c_loop.lua")

local USAGE = "usage: client_bench.lua BASE_URL CURL_LOOP [ROUNDS] [REQUESTS] [SECONDS] "
  .. "[SOCKET_REQUESTS] [MODE]"
local base_url = assert(arg[1], USAGE)
local curl_loop = assert(arg[2], USAGE)
local rounds = math.tointeger(tonumber(arg[3] or 7)) or 7
local requests = math.tointeger(tonumber(arg[4] or 8000)) or 8000
local max_seconds = tonumber(arg[5] or 2) or 2
local socket_requests = math.tointeger(tonumber(arg[6] or 1000)) or 1000
local mode = (arg[7] or "") ~= "" and (" [" .. arg[7] .. "]") or ""

local BURST = 500          -- requests per turn, keep-alive clients
local SOCKET_BURST = 60    -- requests per turn, LuaSocket (a connection each)
local WARMUP = 200
local WEBHOOK_ID = "20200227213233625839530"
local API_KEY = "bench-key"
local url = base_url .. "/webhooks/" .. WEBHOOK_ID

local ok_core, core = pcall(require, "thinkific.core")
local now = ok_core and core.now or socket.gettime

local client = assert(thinkific.new{ api_key = API_KEY, base_url = base_url })

local headers, header_names = c_loop.library_headers(client, "/webhooks", WEBHOOK_ID, API_KEY,
  thinkific._VERSION)
local c_curl_loop = c_loop.start(curl_loop, { url }, headers, header_names)
local burst_curl_loop = c_curl_loop.batch

local function check_webhook(w, err)
  if not w then error("get_webhook failed: " .. tostring(err), 2) end
  if w.topic ~= "order.created" then error("get_webhook: unexpected topic " .. tostring(w.topic), 2) end
end

local function burst_get_webhook(n)
  local start = now()
  for _ = 1, n do
    local w, err = client:get_webhook(WEBHOOK_ID)
    if not w or w.topic ~= "order.created" then check_webhook(w, err) end
  end
  return n, now() - start
end

-- LuaSocket with the same headers; it opens (and closes) a connection for every request.
local function socket_get()
  local chunks = {}
  local _, code = http.request{ url = url, headers = headers, sink = ltn12.sink.table(chunks) }
  if code ~= 200 then error("LuaSocket request failed: " .. tostring(code)) end
  local w = cjson.decode(table.concat(chunks))
  if w.topic ~= "order.created" then error("LuaSocket: unexpected topic " .. tostring(w.topic)) end
end

local function burst_luasocket(n)
  local start = now()
  for _ = 1, n do socket_get() end
  return n, now() - start
end

local benches = {
  { key = "curl_loop", label = "C libcurl loop", run = burst_curl_loop, total = requests, burst = BURST },
  { key = "get_webhook", label = "client:get_webhook(id)", run = burst_get_webhook, total = requests,
    burst = BURST },
  { key = "luasocket", label = "LuaSocket request + cjson", run = burst_luasocket,
    total = socket_requests, burst = SOCKET_BURST },
}

for _ = 1, WARMUP do check_webhook(client:get_webhook(WEBHOOK_ID)) end
for _ = 1, WARMUP // 10 do socket_get() end

local rates = turns.throughput(benches, rounds, max_seconds, "client" .. mode)

c_curl_loop.close()
client:close()

local medians = stats.print_rows(benches, rates, mode, "requests/s")

local function ratio_line(label, num, den, target)
  stats.print_ratio(label .. mode, rates[num], rates[den], medians[num], medians[den], target)
end

ratio_line("get_webhook / C loop", "get_webhook", "curl_loop", 0.8)
ratio_line("get_webhook / LuaSocket", "get_webhook", "luasocket")
