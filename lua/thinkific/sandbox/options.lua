-- The sandbox's options shared by spawn (in the parent process, which may be LuaJIT), the
-- command line and the server: the credentials' default and variables, the delivery options
-- and their check. Portable Lua: no server module is loaded to check an option.
local _M = {}

-- The sandbox's own test credential, printed because it is no secret: nothing else is.
_M.DEFAULT_API_KEY = "sandbox-key"

-- Where `spawn` puts the credentials, so they never appear in a process listing.
_M.ENV_API_KEY = "THINKIFIC_SANDBOX_API_KEY"
_M.ENV_SECRET = "THINKIFIC_SANDBOX_SECRET"

-- Server options (server.new / spawn / the command line) and their defaults.
_M.DEFAULTS = {
  delivery_attempts = 5,      -- attempts per delivery, the first one included
  delivery_timeout = 5,       -- seconds for one attempt: connect, send, answer
  delivery_backoff = 0.25,    -- seconds before the second attempt; doubles each time
  delivery_concurrency = 32,  -- attempts in flight at once
  subdomain = "sandbox",      -- X-Thinkific-Subdomain
}

-- The longest single wait between attempts, whatever the backoff doubles to.
_M.MAX_WAIT = 3600

-- The rate limit's window: Thinkific's minute; shorter ones are for tests.
_M.RATE_WINDOW = 60

local is_integer = require("thinkific.integer").is_integer
_M.is_integer = is_integer

-- Checks the delivery options and the rate limit (rate_limit: requests per site and window,
-- nil or false for none; rate_window: seconds). Returns the settings, or nil, message.
function _M.check(opts)
  local o = {}
  for k, v in pairs(_M.DEFAULTS) do
    if opts[k] == nil then o[k] = v else o[k] = opts[k] end
  end
  o.rate_limit = opts.rate_limit or nil
  o.rate_window = opts.rate_window == nil and _M.RATE_WINDOW or opts.rate_window
  local function integer_in(v, lo, hi) return is_integer(v) and v >= lo and v <= hi end
  local function number(v, lo, hi) return type(v) == "number" and v >= lo and v <= hi end
  if not integer_in(o.delivery_attempts, 1, 100) then
    return nil, "delivery_attempts must be an integer 1..100"
  end
  if not number(o.delivery_timeout, 0.001, 600) then
    return nil, "delivery_timeout must be a number of seconds, 0.001..600"
  end
  if not number(o.delivery_backoff, 0, _M.MAX_WAIT) then
    return nil, "delivery_backoff must be a number of seconds, 0.." .. _M.MAX_WAIT
  end
  if not integer_in(o.delivery_concurrency, 1, 512) then
    return nil, "delivery_concurrency must be an integer 1..512"
  end
  if type(o.subdomain) ~= "string" or not o.subdomain:find("^[%w%-]+$") or #o.subdomain > 63 then
    return nil, "subdomain must be letters, digits and hyphens"
  end
  if o.rate_limit ~= nil and not integer_in(o.rate_limit, 1, 1000000) then
    return nil, "rate_limit must be an integer 1..1000000 (requests per site and window)"
  end
  if not number(o.rate_window, 0.01, 3600) then
    return nil, "rate_window must be a number of seconds, 0.01..3600"
  end
  return o
end

return _M
