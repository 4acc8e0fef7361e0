-- thinkific.sandbox: a Thinkific-compatible Webhooks API server on loopback.
--   spawn{...}  starts one as a child process and returns an object to steer it;
--   serve{...}  creates one in this process (the child runs exactly that).
-- This side (spawn and the sandbox object) is portable Lua, for a parent in Lua 5.4 or LuaJIT;
-- the server itself is Lua 5.4 and is loaded only by serve.
local socket = require("socket")
local core = require("thinkific.core")
local json = require("thinkific.sandbox.json")
local httpc = require("thinkific.sandbox.httpc")
local process = require("thinkific.sandbox.process")
local fixtures = require("thinkific.sandbox.fixtures")
local options = require("thinkific.sandbox.options")

local is_integer = options.is_integer

local _M = {}

local OPTIONS = {
  port = "number", host = "string", api_key = "string", secret = "string",
  tls_cert = "string", tls_key = "string", lua = "string", timeout = "number",
  start_timeout = "number", subdomain = "string", delivery_attempts = "number",
  delivery_timeout = "number", delivery_backoff = "number", delivery_concurrency = "number",
  rate_limit = "number", rate_window = "number",
}

-- Options handed to the child as command-line flags (option -> flag).
local DELIVERY_FLAGS = {
  { "subdomain", "--subdomain" }, { "delivery_attempts", "--delivery-attempts" },
  { "delivery_timeout", "--delivery-timeout" }, { "delivery_backoff", "--delivery-backoff" },
  { "delivery_concurrency", "--delivery-concurrency" },
}

-- Errors of the control calls have the library's error shape (API.md).
local make_error = core.error

local Sandbox = {}
Sandbox.__index = Sandbox

function Sandbox:stop()
  if self._process then
    self._process:stop()
    self._process = nil
  end
  self.stopped = true
end

local function stop_quietly(self)
  pcall(Sandbox.stop, self)
end

local function check_running(self, name)
  if self.stopped then
    error(string.format("bad self to '%s' (this sandbox was stopped)", name), 3)
  end
end

-- One control request. value: a table (sent as JSON), a string (sent as it is) or nil.
-- Returns the decoded answer, or nil, err.
function Sandbox:_call(method, path, value)
  local body, headers
  if value ~= nil then
    body = type(value) == "string" and value or json.encode(value)
    headers = { ["Content-Type"] = "application/json" }
  end
  local res, err = httpc.request({ url = self.root .. path, method = method, body = body,
    headers = headers, timeout = self.timeout })
  if not res then
    return nil, make_error({ kind = err:find("timeout") and "timeout" or "network",
      message = "sandbox " .. method .. " " .. path .. ": " .. err, method = method, path = path })
  end
  if res.status < 200 or res.status > 299 then
    local decoded = json.decode(res.body)
    local why = type(decoded) == "table" and type(decoded.error) == "string" and decoded.error
      or ("HTTP " .. res.status)
    return nil, make_error({ kind = "http", status = res.status, method = method, path = path,
      message = "sandbox " .. method .. " " .. path .. ": " .. why, body = res.body:sub(1, 4096) })
  end
  local v, derr = json.decode(res.body)
  if v == nil then
    return nil, make_error({ kind = "decode", status = res.status, method = method, path = path,
      message = "sandbox " .. method .. " " .. path .. ": " .. tostring(derr) })
  end
  return v
end

-- Queues a fault (see the control endpoint POST /sandbox/faults). Returns the number of
-- faulted requests still to come, or nil, err.
function Sandbox:fault(spec)
  check_running(self, "fault")
  if type(spec) ~= "table" then
    error("bad argument #1 to 'fault' (table expected, got " .. type(spec) .. ")", 2)
  end
  local v, err = self:_call("POST", "/sandbox/faults", spec)
  if not v then return nil, err end
  return v.faults
end

function Sandbox:clear_faults()
  check_running(self, "clear_faults")
  local v, err = self:_call("DELETE", "/sandbox/faults")
  if not v then return nil, err end
  return true
end

-- { requests, connections, active_connections, peak_connections } of API traffic.
function Sandbox:stats()
  check_running(self, "stats")
  return self:_call("GET", "/sandbox/stats")
end

function Sandbox:reset_stats()
  check_running(self, "reset_stats")
  return self:_call("POST", "/sandbox/stats/reset")
end

-- Drops webhooks, recorded events (the seeded ones come back), faults and deliveries.
function Sandbox:reset()
  check_running(self, "reset")
  local v, err = self:_call("POST", "/sandbox/reset")
  if not v then return nil, err end
  return true
end

-- Records an event without delivering it. envelope: a table or JSON text with resource,
-- action and payload (id and created_at are added when missing). Returns the id, or nil, err.
function Sandbox:record_event(envelope)
  check_running(self, "record_event")
  if type(envelope) ~= "table" and type(envelope) ~= "string" then
    error("bad argument #1 to 'record_event' (table or string expected, got "
      .. type(envelope) .. ")", 2)
  end
  local v, err = self:_call("POST", "/sandbox/events", envelope)
  if not v then return nil, err end
  return v.event_id
end

-- Every delivery attempt so far: a list of {event_id, webhook_id, target_url, attempt,
-- status, error, at} (status and error may be thinkific.null), or nil, err.
function Sandbox:deliveries()
  check_running(self, "deliveries")
  return self:_call("GET", "/sandbox/deliveries")
end

-- Records an event and delivers it to every webhook of its topic, in the background.
--   sb:trigger(topic, payload)  payload: a table, or JSON text of an object (kept as it is)
--   sb:trigger(envelope)        a table, or JSON text: {id?, resource, action, payload, ...}
-- Returns { event_id = id, webhooks = n }, or nil, err.
function Sandbox:trigger(topic, payload)
  check_running(self, "trigger")
  local body
  if payload == nil and type(topic) == "table" then
    body = topic
  elseif payload == nil and type(topic) == "string" and topic:find("^%s*{") then
    body = topic
  elseif type(topic) ~= "string" then
    error("bad argument #1 to 'trigger' (topic string or envelope expected, got "
      .. type(topic) .. ")", 2)
  else
    if type(payload) == "table" then
      local text, err = core.encode(payload)
      if not text then error("bad argument #2 to 'trigger' (" .. tostring(err) .. ")", 2) end
      payload = text
    elseif type(payload) ~= "string" then
      error("bad argument #2 to 'trigger' (payload table or JSON text expected, got "
        .. type(payload) .. ")", 2)
    end
    body = '{"topic":' .. json.encode(topic) .. ',"payload":' .. payload .. "}"
  end
  return self:_call("POST", "/sandbox/trigger", body)
end

-- Counts of delivery attempts: {attempts, succeeded, failed, given_up, pending}, or nil, err.
function Sandbox:delivery_summary()
  check_running(self, "delivery_summary")
  return self:_call("GET", "/sandbox/deliveries/summary")
end

-- Waits (polling, at most `timeout` seconds, default 10) until at least n delivery
-- attempts have succeeded (a 2xx answer). Returns the list of every attempt, or nil, err
-- (err.kind "timeout" when time ran out).
-- step(seconds), when given, is called instead of sleeping between polls: a script that
-- receives in the same process passes function(dt) server:step(dt) end, so that its
-- receiver answers while it waits.
function Sandbox:wait_deliveries(n, timeout, step)
  check_running(self, "wait_deliveries")
  if not is_integer(n) or n < 0 then
    error("bad argument #1 to 'wait_deliveries' (a count >= 0 expected)", 2)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad argument #2 to 'wait_deliveries' (seconds expected)", 2)
  end
  if step ~= nil and type(step) ~= "function" then
    error("bad argument #3 to 'wait_deliveries' (function expected)", 2)
  end
  timeout = timeout or 10
  local deadline = socket.gettime() + timeout
  local pause = 0.005
  while true do
    local summary, err = self:delivery_summary()
    if not summary then return nil, err end
    if summary.succeeded >= n then return self:deliveries() end
    local left = deadline - socket.gettime()
    if left <= 0 then
      return nil, make_error({ kind = "timeout", method = "GET", path = "/sandbox/deliveries",
        message = string.format("sandbox: %d of %d deliveries succeeded in %g s (%d attempts, "
          .. "%d pending)", summary.succeeded, n, timeout, summary.attempts, summary.pending) })
    end
    if step then step(math.min(pause, left)) else socket.sleep(math.min(pause, left)) end
    pause = math.min(pause * 2, 0.05)
  end
end

local meta = {
  __index = Sandbox,
  __gc = stop_quietly,
  __close = stop_quietly,
  __name = "thinkific.Sandbox",
  -- Never shows the API key or the secret.
  __tostring = function(self) return "thinkific.Sandbox (" .. (self.root or "?") .. ")" end,
}

local function check_options(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'spawn' (table expected, got " .. type(opts) .. ")", 3)
  end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then
      error("bad argument #1 to 'spawn' (unknown option '" .. tostring(k) .. "')", 3)
    end
    if type(v) ~= OPTIONS[k] then
      error(string.format("bad argument #1 to 'spawn' (option '%s': %s expected, got %s)",
        k, OPTIONS[k], type(v)), 3)
    end
  end
  if (opts.tls_cert == nil) ~= (opts.tls_key == nil) then
    error("bad argument #1 to 'spawn' (tls_cert and tls_key go together)", 3)
  end
  if opts.port and (not is_integer(opts.port) or opts.port < 0 or opts.port > 65535) then
    error("bad argument #1 to 'spawn' (port must be an integer 0..65535)", 3)
  end
  local delivery = { rate_limit = opts.rate_limit, rate_window = opts.rate_window }
  for _, f in ipairs(DELIVERY_FLAGS) do delivery[f[1]] = opts[f[1]] end
  local ok, why = options.check(delivery)
  if not ok then error("bad argument #1 to 'spawn' (" .. why .. ")", 3) end
end

-- Starts a sandbox as a child process. opts: port (0), host ("127.0.0.1"), api_key
-- ("sandbox-key"), secret (the API key), tls_cert and tls_key (PEM files: https),
-- lua ("lua5.4", the interpreter to run), timeout (10: seconds for each control call),
-- start_timeout (10: seconds to wait for the server to listen), and the delivery options
-- subdomain ("sandbox"), delivery_attempts (5), delivery_timeout (5 s), delivery_backoff
-- (0.25 s, doubling), delivery_concurrency (32), and the rate limit: rate_limit (requests per
-- site and minute: 429 beyond; nil: none) and rate_window (60 s; shorter for tests).
-- Returns the sandbox object; raises when it cannot start, with the child's stderr.
function _M.spawn(opts)
  opts = opts or {}
  check_options(opts)
  local api_key = opts.api_key or options.DEFAULT_API_KEY
  local args = { "--host", opts.host or "127.0.0.1", "--port", tostring(opts.port or 0),
    "--parent-pipe" }
  if opts.tls_cert then
    for _, a in ipairs({ "--tls-cert", opts.tls_cert, "--tls-key", opts.tls_key }) do
      args[#args + 1] = a
    end
  end
  for _, f in ipairs(DELIVERY_FLAGS) do
    local v = opts[f[1]]
    if v ~= nil then
      args[#args + 1] = f[2]
      args[#args + 1] = type(v) == "number" and string.format("%.17g", v) or v
    end
  end
  if opts.rate_limit then
    args[#args + 1] = "--rate-limit"
    args[#args + 1] = string.format("%d/min", opts.rate_limit)
  end
  if opts.rate_window then
    args[#args + 1] = "--rate-window"
    args[#args + 1] = string.format("%.17g", opts.rate_window)
  end
  local literals = {}
  for i, a in ipairs(args) do literals[i] = string.format("%q", a) end
  local code = string.format('os.exit(require("thinkific.cli.sandbox").main({%s}), true)',
    table.concat(literals, ","))
  -- The credentials go through the environment, never the command line (ps shows that).
  -- The child is Lua 5.4: it gets this process's module paths when this is Lua 5.4 too;
  -- from another interpreter (LuaJIT) it inherits LUA_PATH_5_4 and LUA_CPATH_5_4 as set.
  local same = _VERSION == "Lua 5.4"
  local env = {
    LUA_PATH_5_4 = same and package.path or nil, LUA_CPATH_5_4 = same and package.cpath or nil,
    LUA_INIT = false, LUA_INIT_5_4 = false,
    [options.ENV_API_KEY] = api_key, [options.ENV_SECRET] = opts.secret or false,
  }
  local child = process.start(process.quote(opts.lua or "lua5.4") .. " -e " .. process.quote(code),
    env)
  local line, why = child:first_line(opts.start_timeout or 10)
  if not line or not line:find("^https?://") then
    local stderr = child:stderr()
    child:stop(1)
    if line then why = "printed no URL" end
    error("thinkific.sandbox: the sandbox did not start (" .. (why == "exited" and
      "it exited" or why == "timeout" and "no URL in time" or why) .. ")"
      .. (stderr ~= "" and ": " .. stderr:gsub("%s+$", "") or ""), 2)
  end
  child:getpid()
  -- The child keeps its open files; removing the names now leaves nothing behind even if
  -- this process is killed before stop().
  child:cleanup()
  local self = setmetatable({
    url = line,
    root = line:gsub("/api/v2$", ""),
    api_key = api_key,
    secret = opts.secret or api_key,
    pid = child:getpid(),
    seeded_events = {},
    timeout = opts.timeout or 10,
    _process = child,
  }, meta)
  self.port = tonumber(self.root:match(":(%d+)$"))
  for i, id in ipairs(fixtures.ids) do self.seeded_events[i] = id end
  return self
end

-- Creates a sandbox server in this process, listening but not yet serving: call
-- server:run() (until server:stop()) or server:step(max_wait) from your own loop.
-- opts as for spawn (without lua and timeouts); raises on a bad delivery option or a
-- certificate without its key. Returns the server, or nil, err (kind "network" when it cannot
-- listen, "tls" when it cannot load the certificate or key).
function _M.serve(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'serve' (table expected, got " .. type(opts) .. ")", 2)
  end
  if (opts.tls_cert == nil) ~= (opts.tls_key == nil) then
    error("bad argument #1 to 'serve' (tls_cert and tls_key go together)", 2)
  end
  local ok, why = options.check(opts)
  if not ok then error("bad argument #1 to 'serve' (" .. why .. ")", 2) end
  return require("thinkific.sandbox.server").new(opts)
end

return _M
