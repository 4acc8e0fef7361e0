-- The retry policy, in one place for every transport (libcurl, nginx, a user's function).
-- GET, PUT and DELETE are retried on 429, 5xx, network errors and timeouts; POST only on 429
-- or when the request surely never reached the server. TLS failures are never retried.
local core = require("thinkific.core")

local response = core.response
local make_error = core.error
local is_error = core.is_error
local random, min, max = math.random, math.min, math.max

local _M = {}

local function retryable(method, err)
  local kind = err.kind
  if kind == "http" then
    if err.status == 429 then return true end
    return err.status >= 500 and method ~= "POST"
  end
  if kind == "network" or kind == "timeout" then
    return method ~= "POST" or err.sent == false
  end
  return false -- tls, limit, decode: another attempt would fail the same way
end

-- The wait before attempt `attempt + 1`: what the server said, else exponential backoff
-- with jitter starting near 0.5 s; capped.
function _M.delay(err, attempt, cap)
  local wait = err.retry_after
  if not wait then
    wait = 0.5 * 2 ^ (attempt - 1) * (0.75 + 0.5 * random())
  end
  return max(0, min(wait, cap))
end

-- A custom transport's failure as an error table of API.md.
local function transport_error(terr, method, path)
  local err
  if type(terr) == "table" then
    err = is_error(terr) and terr or make_error(terr)
    err.kind = err.kind or "network"
    err.message = err.message or "transport failure"
  else
    err = make_error{ kind = "network", message = tostring(terr or "transport failure") }
  end
  err.method, err.path = method, path
  return err
end

-- Runs one API call: attempts through the transport until a value, a final error, or the
-- retries run out. want_object: a 2xx answer must be a JSON object.
-- Returns value, nil, attempts, status | nil, err (err.attempts set).
function _M.run(client, state, req, method, path, want_object)
  local transport, sleep = state.transport, state.sleep or core.sleep
  local retries, cap = state.retries, state.max_retry_wait
  local unanswered = false
  local attempt = 0
  while true do
    attempt = attempt + 1
    local resp, terr
    if transport then
      resp, terr = transport(req)
    else
      resp, terr = client:_perform(req)
    end
    local value, err
    if resp then
      value, err = response(resp, method, path, want_object)
      if value ~= nil then return value, nil, attempt, resp.status end
      -- The earlier attempt deleted it, but its answer was lost.
      if method == "DELETE" and err.status == 404 and unanswered then
        return true, nil, attempt, 404
      end
    else
      err = transport_error(terr, method, path)
      unanswered = true
    end
    if attempt > retries or not retryable(method, err) then
      err.attempts = attempt
      return nil, err
    end
    sleep(_M.delay(err, attempt, cap))
  end
end

return _M
