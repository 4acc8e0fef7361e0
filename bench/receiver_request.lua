-- luacheck: globals wrk
-- wrk script: POSTs one signed delivery (body and headers from the files bench/receiver.sh
-- writes into $BENCH_DELIVERY_DIR) to the URL wrk is given. wrk itself
-- counts the answers that are not 2xx ("Non-2xx or 3xx responses").
local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local dir = os.getenv("BENCH_DELIVERY_DIR")
wrk.method = "POST"
wrk.body = read(dir .. "/body.json")
wrk.headers["Content-Type"] = "application/json"
for line in read(dir .. "/headers.txt"):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
