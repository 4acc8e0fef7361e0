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
  if err.retryable == false then return false end -- a transport's word: it would fail the same way
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
_M.retryable = retryable

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

-- One attempt through a transport function of the contract in API.md (request -> response):
-- the same shape of results as the built-in libcurl attempt (client:_exchange).
function _M.via_transport(transport, req, path, want_object)
  local resp, terr = transport(req)
  if not resp then return nil, transport_error(terr, req.method, path) end
  local value, err = response(resp, req.method, path, want_object)
  if value == nil then return nil, err end
  return value, nil, resp.status
end

-- Runs one API call: exchange(...) makes one attempt and returns value, nil, status or
-- nil, err; attempts go on until a value, a final error, or the retries run out.
-- Returns value, nil, attempts, status | nil, err (err.attempts set).
function _M.run(state, method, exchange, ...)
  local sleep, retries, cap = state.sleep or core.sleep, state.retries, state.max_retry_wait
  local unanswered = false
  local attempt = 0
  while true do
    attempt = attempt + 1
    local value, err, status = exchange(...)
    if value ~= nil then return value, nil, attempt, status end
    if err.status == nil then
      unanswered = true -- no answer at all: the server may have acted on it
    elseif method == "DELETE" and err.status == 404 and unanswered then
      return true, nil, attempt, 404 -- an earlier attempt deleted it; its answer was lost
    end
    if attempt > retries or not retryable(method, err) then
      err.attempts = attempt
      return nil, err
    end
    sleep(_M.delay(err, attempt, cap))
  end
end

return _M
