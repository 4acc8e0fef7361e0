-- The sandbox server: thinkific.http.server (one coroutine per connection on the
-- loop, keep-alive, optional TLS), the dispatch between the API and the control endpoints,
-- statistics of API traffic, and the deliveries of triggered events.
local http_server = require("thinkific.http.server")
local api = require("thinkific.sandbox.api")
local control = require("thinkific.sandbox.control")
local faults_mod = require("thinkific.sandbox.faults")
local store_mod = require("thinkific.sandbox.store")
local deliveries_mod = require("thinkific.sandbox.deliveries")
local options = require("thinkific.sandbox.options")
local respond = require("thinkific.http.respond")

local gettime = require("socket").gettime

local _M = {}

_M.DEFAULTS = {
  host = "127.0.0.1",
  port = 0,
  api_key = options.DEFAULT_API_KEY,
  max_connections = 256,
  idle_timeout = 30,      -- seconds a keep-alive connection may wait for its next request
  write_timeout = 30,     -- seconds to write one answer
  handshake_timeout = 10, -- seconds for a TLS handshake
}

local Server = {}
Server.__index = Server

local function log_error(message)
  io.stderr:write("thinkific sandbox: ", tostring(message), "\n")
end

-- Creates a listening server (not running yet). opts: host, port, api_key, secret,
-- tls_cert, tls_key, max_connections, idle_timeout, write_timeout, handshake_timeout,
-- limits (see http.LIMITS), on_error, log (a function(line): one line per request, see
-- request_line below), the delivery options of deliveries.lua (delivery_attempts,
-- delivery_timeout, delivery_backoff, delivery_concurrency, subdomain), and rate_limit
-- (requests per site and window; nil: none) with rate_window (seconds, 60).
-- Returns the server, or nil, err (see http/server.lua); its caller has checked the options.
function _M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Server)
  for k, v in pairs(_M.DEFAULTS) do
    if opts[k] == nil then self[k] = v else self[k] = opts[k] end
  end
  self.secret = opts.secret or self.api_key
  self.on_error = opts.on_error or log_error
  self.log = opts.log
  self.deliveries = assert(deliveries_mod.new(self, opts))
  local httpd, err = http_server.new({
    host = self.host, port = self.port, max_connections = self.max_connections,
    idle_timeout = self.idle_timeout, write_timeout = self.write_timeout,
    handshake_timeout = self.handshake_timeout, limits = opts.limits,
    tls_cert = opts.tls_cert, tls_key = opts.tls_key, on_error = self.on_error,
    name = "thinkific-sandbox",
    handle = function(conn, req) return self:_dispatch(conn, req) end,
    on_close = function(conn)
      if conn.counted then
        self.stats.active_connections = self.stats.active_connections - 1
      end
    end,
  })
  if not httpd then return nil, err end
  self.httpd, self.loop, self.port, self.root = httpd, httpd.loop, httpd.port, httpd.root
  self.url = self.root .. api.PREFIX
  self.store = store_mod.new()
  self.faults = faults_mod.new()
  self.rate = opts.rate_limit
    and require("thinkific.sandbox.rate").new(opts.rate_limit, opts.rate_window or 60)
  self.stats = { requests = 0, connections = 0, active_connections = 0, peak_connections = 0,
    rate_limited = 0 }
  return self
end

-- Statistics of API traffic: a connection counts from its first API request on.
function Server:_count(conn)
  local s = self.stats
  s.requests = s.requests + 1
  if not conn.counted then
    conn.counted = true
    s.connections = s.connections + 1
    s.active_connections = s.active_connections + 1
    if s.active_connections > s.peak_connections then s.peak_connections = s.active_connections end
  end
end

function Server:reset_stats()
  local s = self.stats
  s.requests, s.connections, s.peak_connections = 0, 0, s.active_connections
  s.rate_limited = 0
end

-- Everything back to the start, but the seeded events and the statistics.
function Server:reset()
  self.store:reset()
  self.faults:clear()
  self.deliveries:clear()
  if self.rate then self.rate:reset() end
end

-- The query parameters of the API that a log line shows with their values; any other is
-- left out (a query is no place for a credential, but a client may put one there).
local SHOWN_QUERY = { limit = true, page = true, next = true }

-- The request target as a log line shows it: the path, the query's API parameters, printable
-- ASCII only (a peer's bytes must not steer the terminal), at most 300 characters.
local function shown_target(req)
  local target = req.path
  if req.query ~= nil and req.query ~= "" then
    local kept, dropped = {}, false
    for pair in req.query:gmatch("[^&]+") do
      if SHOWN_QUERY[pair:match("^[^=]*")] then kept[#kept + 1] = pair else dropped = true end
    end
    if dropped then kept[#kept + 1] = "..." end
    target = target .. "?" .. table.concat(kept, "&")
  end
  return (target:gsub("[^!-~]", "?"):sub(1, 300))
end

-- One log line for a request: "GET /api/v2/webhooks?limit=2 200 0.4 ms", with "(control)"
-- after a control endpoint's, "dropped" for the status of a connection a fault closed. No
-- header is ever shown (the credential is one).
local function request_line(req, res, ms)
  return string.format("%s %s %s %.1f ms%s", req.method, shown_target(req),
    res.drop and "dropped" or tostring(res.status), ms,
    control.owns(req.path) and " (control)" or "")
end

-- One request to its answer, logged when the server has a log.
function Server:_dispatch(conn, req)
  if not self.log then return self:_answer(conn, req) end
  local t0 = gettime()
  local res = self:_answer(conn, req)
  self.log(request_line(req, res, (gettime() - t0) * 1000))
  return res
end

-- Control endpoints, then API traffic (faults first: they stand for what the network or a CDN
-- in front of the API would do). An answer with drop = true means: close without answering.
function Server:_answer(conn, req)
  if control.owns(req.path) then return control.handle(self, req, conn.peer) end
  self:_count(conn)
  local fault = self.faults:take(req.method, req.path)
  if fault then
    if fault.delay_ms then self.loop:sleep(fault.delay_ms / 1000) end
    if fault.drop then return { drop = true } end
    if fault.status then return faults_mod.response(fault) end
  end
  if req.path == api.PREFIX or req.path:sub(1, #api.PREFIX + 1) == api.PREFIX .. "/" then
    local refused = self.rate and self.rate:check(req)
    if refused then
      self.stats.rate_limited = self.stats.rate_limited + 1
      return refused
    end
    return api.handle(self, req)
  end
  return respond.error(404, "Not found")
end

-- Stops the server when its standard input reaches end of file (the parent is gone).
function Server:watch_stdin()
  local fd0 = { getfd = function() return 0 end, dirty = function() return false end }
  self.loop:spawn(function()
    while not self.httpd.stopping do
      self.loop:wait(fd0, "r")
      if io.stdin:read(1) == nil then self:stop() end
    end
  end)
end

-- Runs one round of the loop (for embedding the server in another program's loop).
function Server:step(max_wait)
  self.httpd:step(max_wait)
end

-- Serves until stop(), then closes every connection and the listening socket.
function Server:run()
  self.httpd:run()
  self:close()
end

function Server:stop()
  self.httpd:stop()
end

-- Closes every connection and the listening socket; deliveries still under way end.
-- Idempotent.
function Server:close()
  self.httpd:close()
  self.deliveries:close()
end

return _M
