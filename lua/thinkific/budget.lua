-- thinkific.budget: a client's rate limit, a budget of requests per site (API.md, "Rate limit").
-- A log of the site's attempts, kept in a store: this process's memory (budget/memory.lua),
-- SQLite or PostgreSQL (budget/sql.lua: processes and hosts), or a lua_shared_dict
-- (budget/dict.lua: nginx workers). Each attempt takes a slot before it is sent; when it is over
-- its slot is kept for one window more, so at most `limit` attempts are under way or ended
-- within any window. A slot is timed from the attempt's end, not its start: the server counts a
-- request when it arrives, which is somewhere between the two, and only the end is sure to be
-- after it, whatever the latency (doc/DESIGN.md, "The rate limit"). A 429 blocks the site until
-- its RateLimit-Reset.
--
-- Stores share one interface, bound to one site, limit and window, every time in seconds
-- from now on the store's own clock (so hosts need not agree on the time):
--   store:take(want, lease) -> n >= 1, ticket | 0, seconds to wait | nil, err
--     takes up to `want` slots, held for `lease` seconds (the longest the attempts may run)
--     plus a window unless finished before
--   store:finish(ticket)    -> the ticket's slots free one window from now
--   store:block(seconds)    -> no slot for anyone before then
--   store:look()            -> used, seconds until the oldest slot frees, seconds blocked
--   store:close()
local core = require("thinkific.core")
local args = require("thinkific.args")
local integer = require("thinkific.integer")

local argerror = args.error
local make_error = core.error
local type, tostring, rawget, require, pcall = type, tostring, rawget, require, pcall
local min, max = math.min, math.max

local _M = {}

_M.DEFAULT_LIMIT = 120     -- Thinkific's: requests per minute and site
_M.WINDOW = 60             -- seconds
_M.THINKIFIC_HOST = "api.thinkific.com"

-- Added to each wait: the stores' clocks tick in milliseconds, and a wait cut short by
-- rounding would only find the slot still taken.
local SLACK = 0.002

-- The longest a grant's slots are held while its attempts run. A slot said to free later than
-- MAX_LEASE + WINDOW from now can only be the mark of a clock set back: a store may drop it.
_M.MAX_LEASE = 600

--- budget.default_limit(base_url) -> 120 for Thinkific's own API host, false for any other.
function _M.default_limit(base_url)
  local _, _, host = args.url_parts(base_url)
  host = host and host:gsub(":%d*$", ""):lower()
  return host == _M.THINKIFIC_HOST and _M.DEFAULT_LIMIT
end

--- budget.site(subdomain, base_url, credential) -> the key of a site's budget in a store.
-- A site is its subdomain (sent as X-Auth-Subdomain); without one, the credential stands for
-- it, as an HMAC of the base URL keyed by the credential: never the credential itself.
function _M.site(subdomain, base_url, credential)
  if subdomain and subdomain ~= "" then return "subdomain:" .. subdomain:lower() end
  return "key:" .. core.sign(base_url, credential)
end

--- budget.check_store(url, fname) -> how to open it: { kind = "sql", url } | { kind = "dict", name }.
-- Raises bad argument #1 to fname for a URL that names no store.
function _M.check_store(url, fname)
  local dict = url:match("^ngx:(.*)$")
  if dict then
    if not dict:find("^[%w_]+$") then
      argerror(1, fname, "'rate_limit_store' ngx:DICT names a lua_shared_dict (letters, digits, _)")
    end
    return { kind = "dict", name = dict }
  end
  if not (url:find("^sqlite:") or url:find("^postgres://") or url:find("^postgresql://")) then
    argerror(1, fname, "'rate_limit_store' must be \"sqlite:PATH\", \"postgres://…\" or \"ngx:DICT\"")
  end
  local ok, err = pcall(require("thinkific.sql").parse, url, fname)
  if not ok then -- a malformed one: its reason, under this option's name
    argerror(1, fname, "'rate_limit_store': " .. (tostring(err):match("%(store: (.*)%)$") or "invalid"))
  end
  return { kind = "sql", url = url }
end

local Budget = {}
Budget.__index = Budget

--- budget.new{ limit, window, site, store (check_store's), attempt_time, clock } -> budget
-- attempt_time: the longest one wave of attempts may take (the client's timeout).
function _M.new(opts)
  local self = setmetatable({ limit = opts.limit, window = opts.window or _M.WINDOW,
    attempt_time = opts.attempt_time }, Budget)
  local bound = { site = opts.site, limit = opts.limit, window = self.window }
  local spec = opts.store
  if not spec then
    self.store = require("thinkific.budget.memory").new(bound, opts.clock)
  elseif spec.kind == "dict" then
    self.store = require("thinkific.budget.dict").new(bound, spec.name)
  else
    self.store = require("thinkific.budget.sql").new(bound, spec.url)
  end
  return self
end

--- budget.store_failure(err, method) -> the error of a store failure for each attempt it
-- stopped (nothing was sent).
function _M.store_failure(err, method)
  return make_error{ kind = "store", message = err.message, store = err.store, method = method,
    sent = false }
end

--- budget:take(want, sleep) -> { n, ticket } | nil, err
-- Waits with sleep(seconds) until at least one slot is free, then takes up to `want`, for
-- attempts that run at once (one wave: the lease is one attempt's time).
function Budget:take(want, sleep)
  local lease = min(self.attempt_time + 1, _M.MAX_LEASE)
  while true do
    local n, x = self.store:take(want, lease)
    if n == nil then return nil, x end
    if n > 0 then return { n = n, ticket = x } end
    sleep(x + SLACK)
  end
end

-- The seconds a 429 among errors (a list of values and errors, or one error) asks to wait.
local function reset_of(results, count)
  local wait = 0
  if count == nil then
    local err = results
    if err and err.status == 429 and err.retry_after then wait = err.retry_after end
    return wait
  end
  for i = 1, count do
    local v = results[i]
    if core.is_error(v) and v.status == 429 and v.retry_after then wait = max(wait, v.retry_after) end
  end
  return wait
end

--- budget:settle(grant, results, count, cap): the grant's attempts are over. results: the
-- error of one attempt (count nil), or the list of `count` values and errors of a grant's. A
-- 429 blocks the site until its RateLimit-Reset, capped by `cap` seconds. A store failure
-- here is let go: the slots then free when their lease ends.
function Budget:settle(grant, results, count, cap)
  self.store:finish(grant.ticket)
  local wait = min(reset_of(results, count), cap or _M.WINDOW)
  if wait > 0 then self.store:block(wait) end
end

-- The wall clock in seconds since the epoch: nginx's, else LuaSocket's (a dependency of the
-- rock), else os.time()'s whole seconds.
local has_socket, socket = pcall(require, "socket")
local function wall()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.now) == "function" then
    ngx.update_time()
    return ngx.now()
  end
  if has_socket then return socket.gettime() end
  return os.time()
end

--- budget:state() -> { limit, remaining, refill_at, window } | nil, err
-- refill_at: when the oldest slot frees (now when none is taken); after a 429, remaining is 0
-- and refill_at its reset (or later, when every slot is taken beyond it).
function Budget:state()
  local used, refill_in, blocked = self.store:look()
  if used == nil then return nil, refill_in end
  local now = wall()
  local remaining = max(0, self.limit - used)
  local wait = remaining < self.limit and refill_in or 0
  if blocked > 0 then -- after a 429 nothing goes before its reset, and then what is free
    wait = remaining == 0 and max(wait, blocked) or blocked
    remaining = 0
  end
  return { limit = self.limit, remaining = remaining, refill_at = now + wait, window = self.window }
end

--- budget.time_for(state, requests, [now]) -> the seconds until the last of `requests` more
-- attempts may go, at the budget `state` (budget:state's table). Each slot serves one attempt a
-- window: the free ones from now, the others from refill_at (the oldest's time stands for all).
function _M.time_for(state, requests, now)
  if requests <= 0 then return 0 end
  local last = requests - 1
  local slot, cycles = last % state.limit, (last - last % state.limit) / state.limit
  local from = slot < state.remaining and 0 or max(0, state.refill_at - (now or wall()))
  return from + cycles * state.window
end

function Budget:close()
  self.store:close()
end

--- budget.check_limit(v, fname): a rate_limit option: false, or an integer >= 1.
function _M.check_limit(v, fname)
  if v ~= false and not (integer.is_integer(v) and v >= 1) then
    argerror(1, fname, "option 'rate_limit' must be an integer >= 1 (requests per minute) or false")
  end
end

return _M
