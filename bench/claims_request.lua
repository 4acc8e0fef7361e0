-- luacheck: globals wrk init request
-- wrk script for bench/claim_stores.sh: POSTs the signed deliveries of
-- $BENCH_DELIVERY_DIR/deliveries.lua (a list of { signature, body }, each of its own event id)
-- in turn, so that every request makes a new claim in the store. The requests are built once.
local requests, n, i = {}, 0, 0

function init()
  local deliveries = dofile(os.getenv("BENCH_DELIVERY_DIR") .. "/deliveries.lua")
  for k, d in ipairs(deliveries) do
    requests[k] = wrk.format("POST", nil, { ["Content-Type"] = "application/json",
      ["X-Thinkific-Topic"] = "order.created", ["X-Thinkific-Hmac-Sha256"] = d[1] }, d[2])
  end
  n = #requests
end

function request()
  i = i % n + 1
  return requests[i]
end
