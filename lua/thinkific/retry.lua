-- The retry policy, in one place for every transport (libcurl, nginx, a user's function) and
-- for one call (run) or many at once (rounds, client:get_events over libcurl).
-- GET, PUT and DELETE are retried on 429, 5xx, network errors and timeouts; POST only on 429
-- or when the request surely never reached the server. TLS failures are never retried.
-- With a rate limit (state.budget, thinkific.budget) every attempt takes a slot first, which may
-- wait; that wait is neither an attempt nor part of one, so it counts against neither retries
-- nor the timeout.
local core = require("thinkific.core")

local response = core.response
local make_error = core.error
local is_error = core.is_error
local budget_store_failure = require("thinkific.budget").store_failure
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
  local budget = state.budget
  local unanswered = false
  local attempt = 0
  while true do
    local grant, gerr
    if budget then
      grant, gerr = budget:take(1, sleep)
      if not grant then
        gerr = budget_store_failure(gerr, method)
        gerr.attempts = attempt
        return nil, gerr
      end
    end
    attempt = attempt + 1
    local value, err, status = exchange(...)
    if grant then budget:settle(grant, err, nil, cap) end
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

-- attempt(pending, first, last) under a budget: the items go one wave at a time (at most
-- `wave` items, the attempts that run at once), each wave in a grant of the slots free, waited
-- for. A wave's slots are timed from its own end: one grant for many waves would hold the
-- first wave's slots until the last wave ends, and every window of the job would last that
-- much longer (doc/DESIGN.md, "The rate limit"). The values and errors of first..last in one
-- list, and how many errors it holds; a store failure is the error of each item it stopped.
local function budgeted(state, method, attempt, wave, sleep, pending, first, last)
  local budget = state.budget
  local out, failures, at = nil, 0, first
  while at <= last do
    local want = min(last - at + 1, wave)
    local grant, err = budget:take(want, sleep)
    if not grant then
      out = out or {}
      for j = at, last do out[j - first + 1] = budget_store_failure(err, method) end
      return out, failures + last - at + 1
    end
    local part, bad = attempt(pending, at, at + grant.n - 1)
    budget:settle(grant, part, bad > 0 and grant.n or 0, state.max_retry_wait)
    if at == first and grant.n == last - first + 1 then return part, bad end -- one for all
    out = out or {}
    for k = 1, grant.n do out[at - first + k] = part[k] end
    failures, at = failures + bad, at + grant.n
  end
  return out, failures
end

-- Many calls of `method` at once, for items 1..n, in rounds: round 1 tries every item; the
-- retryable failures go round again after one wait (the longest any of them was asked for),
-- up to state.retries more rounds. attempt(pending, first, last) makes one attempt for the
-- items pending[first..last] (in round 1, pending is nil: the items first..last themselves)
-- and returns their values and errors in one list, and how many errors it holds. A round goes
-- in slices of `slice` items; progress(done, n), if given, after each, done counting the
-- items settled (a value, or an error that will not be retried). wave: how many items one
-- attempt runs at once (under a budget, each wave takes its slots and settles them).
-- Returns results, errs: results[i] the value or false, errs[i] the error (err.attempts set).
function _M.rounds(state, method, n, slice, attempt, progress, wave)
  local sleep, retries, cap = state.sleep or core.sleep, state.retries, state.max_retry_wait
  local results, errs = {}, {}
  local pending, count = nil, n
  local round, done = 0, 0
  while count > 0 do
    round = round + 1
    local again, worst = {}, nil
    for first = 1, count, slice do
      local last = min(first + slice - 1, count)
      local out, failures
      if state.budget then
        out, failures = budgeted(state, method, attempt, wave or 1, sleep, pending, first, last)
      else
        out, failures = attempt(pending, first, last)
      end
      if failures == 0 and pending == nil and last - first + 1 == n then -- out is the results
        if progress then progress(n, n) end
        return out, errs
      end
      for j = first, last do
        local i, v = pending and pending[j] or j, out[j - first + 1]
        if is_error(v) then
          v.attempts = round
          results[i], errs[i] = false, v
          if round <= retries and retryable(method, v) then
            again[#again + 1] = i
            if not worst or (v.retry_after or 0) > (worst.retry_after or 0) then worst = v end
          else
            done = done + 1
          end
        else
          results[i], errs[i] = v, nil
          done = done + 1
        end
      end
      if progress then progress(done, n) end
    end
    pending, count = again, #again
    if count > 0 then sleep(_M.delay(worst, round, cap)) end
  end
  return results, errs
end

return _M
