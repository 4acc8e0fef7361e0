-- The sandbox server: a listening socket, one coroutine per connection on the loop,
-- keep-alive, optional TLS, and the dispatch between the API and the control endpoints.
local socket = require("socket")
local loop_mod = require("thinkific.sandbox.loop")
local stream_mod = require("thinkific.sandbox.stream")
local http = require("thinkific.sandbox.http")
local api = require("thinkific.sandbox.api")
local control = require("thinkific.sandbox.control")
local faults_mod = require("thinkific.sandbox.faults")
local store_mod = require("thinkific.sandbox.store")
local deliveries_mod = require("thinkific.sandbox.deliveries")
local respond = require("thinkific.sandbox.respond")

local gettime = socket.gettime

local M = {}

M.DEFAULTS = {
  host = "127.0.0.1",
  port = 0,
  api_key = "sandbox-key",
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

local function tls_context(cert, key)
  local ok, ssl = pcall(require, "ssl")
  if not ok then return nil, "TLS needs LuaSec (the ssl module)" end
  local ctx, err = ssl.newcontext({
    mode = "server", protocol = "any", certificate = cert, key = key,
    options = { "all" },
  })
  if not ctx then return nil, "cannot load the TLS certificate or key: " .. tostring(err) end
  return ctx, ssl
end

-- Creates a listening server (not running yet). opts: host, port, api_key, secret,
-- tls_cert, tls_key, max_connections, idle_timeout, limits (see http.LIMITS), on_error.
-- Returns the server, or nil, message.
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Server)
  for k, v in pairs(M.DEFAULTS) do self[k] = opts[k] == nil and v or opts[k] end
  self.secret = opts.secret or self.api_key
  self.limits = opts.limits or http.LIMITS
  self.on_error = opts.on_error or log_error
  if (opts.tls_cert == nil) ~= (opts.tls_key == nil) then
    return nil, "TLS needs both a certificate and a key"
  end
  if opts.tls_cert then
    local ctx, ssl = tls_context(opts.tls_cert, opts.tls_key)
    if not ctx then return nil, ssl end
    self.tls_ctx, self.ssl = ctx, ssl
  end
  local listener, err = socket.bind(self.host, self.port, 128)
  if not listener then
    return nil, string.format("cannot listen on %s port %s: %s", self.host, self.port, err)
  end
  listener:settimeout(0)
  self.listener = listener
  local addr, port = listener:getsockname()
  self.port = tonumber(port)
  local host = addr:find(":", 1, true) and "[" .. addr .. "]" or addr
  self.root = string.format("%s://%s:%d", self.tls_ctx and "https" or "http", host, self.port)
  self.url = self.root .. api.PREFIX
  self.loop = loop_mod.new({ on_error = self.on_error })
  self.store = store_mod.new()
  self.faults = faults_mod.new()
  self.deliveries = deliveries_mod.new(self)
  self.conns, self.nconns = {}, 0
  self.stats = { requests = 0, connections = 0, active_connections = 0, peak_connections = 0 }
  self.loop:spawn(self._accept, self)
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
end

-- Everything back to the start, but the seeded events and the statistics.
function Server:reset()
  self.store:reset()
  self.faults:clear()
  self.deliveries:clear()
end

-- One request to its answer: control endpoints, then API traffic (faults first: they stand
-- for what the network or a CDN in front of the API would do). An answer with drop = true
-- means: close without answering.
function Server:_dispatch(conn, req)
  if control.owns(req.path) then return control.handle(self, req, conn.peer) end
  self:_count(conn)
  local fault = self.faults:take(req.method, req.path)
  if fault then
    if fault.delay_ms then self.loop:sleep(fault.delay_ms / 1000) end
    if fault.drop then return { drop = true } end
    if fault.status then return faults_mod.response(fault) end
  end
  if req.path == api.PREFIX or req.path:sub(1, #api.PREFIX + 1) == api.PREFIX .. "/" then
    return api.handle(self, req)
  end
  return respond.error(404, "Not found")
end

function Server:_handshake(sock)
  local tls, err = self.ssl.wrap(sock, self.tls_ctx)
  if not tls then return nil, err end
  return stream_mod.handshake(tls, self.loop, gettime() + self.handshake_timeout)
end

-- After an error answer the client may still be sending: closing at once would reset the
-- connection and could destroy the answer before the client reads it. So: end our side,
-- then read and drop what comes, for a short, bounded while.
local function linger(conn)
  if not conn.sock.shutdown then return end -- TLS: no half-close
  conn.sock:shutdown("send")
  conn.stream:read_all(1024 * 1024, gettime() + 2)
end

-- Serves one connection until it closes, idles out, or asks to close.
function Server:_serve(conn)
  local stream = conn.stream
  while not self.stopping do
    local req, status, message = http.read_request(stream, self.limits, gettime() + self.idle_timeout)
    if not req then
      if type(status) == "number" then
        if http.write_response(stream, respond.error(status, message), false,
            gettime() + self.write_timeout, 1) then
          linger(conn)
        end
      end
      return
    end
    local ok, res = xpcall(self._dispatch, debug.traceback, self, conn, req)
    if not ok then
      -- A bug of ours: say so, as a server would, and keep serving others.
      self.on_error(res)
      res = respond.error(500, "Internal Server Error")
      req.keep_alive = false
    end
    if res.drop then return end
    local keep = req.keep_alive and not self.stopping
    if not http.write_response(stream, res, keep, gettime() + self.write_timeout, req.minor)
        or not keep then
      return
    end
  end
end

function Server:_connection(sock, peer)
  local conn = { sock = sock, peer = peer, counted = false }
  self.conns[conn] = true
  self.nconns = self.nconns + 1
  local ok, err = pcall(function()
    if self.tls_ctx then
      local tls = self:_handshake(sock)
      if not tls then return end
      conn.sock = tls
    end
    conn.stream = stream_mod.new(conn.sock, self.loop)
    self:_serve(conn)
  end)
  conn.sock:close()
  self.conns[conn] = nil
  self.nconns = self.nconns - 1
  if conn.counted then self.stats.active_connections = self.stats.active_connections - 1 end
  if not ok then self.on_error(err) end
end

-- Accepts connections for as long as the server runs; past max_connections a new
-- connection is closed at once.
function Server:_accept()
  while not self.stopping do
    self.loop:wait(self.listener, "r")
    while true do
      local sock = self.listener:accept()
      if not sock then break end
      if self.nconns >= self.max_connections then
        sock:close()
      else
        sock:settimeout(0)
        sock:setoption("tcp-nodelay", true)
        local peer = sock:getpeername()
        self.loop:spawn(self._connection, self, sock, peer)
      end
    end
  end
end

-- Stops the server when its standard input reaches end of file (the parent is gone).
function Server:watch_stdin()
  local fd0 = { getfd = function() return 0 end, dirty = function() return false end }
  self.loop:spawn(function()
    while not self.stopping do
      self.loop:wait(fd0, "r")
      if io.stdin:read(1) == nil then self:stop() end
    end
  end)
end

-- Runs one round of the loop (for embedding the server in another program's loop).
function Server:step(max_wait)
  self.loop:step(max_wait)
end

-- Serves until stop(), then closes every connection and the listening socket.
function Server:run()
  self.loop:run()
  self:close()
end

function Server:stop()
  self.stopping = true
  self.loop:stop()
end

function Server:close()
  self:stop()
  for conn in pairs(self.conns) do conn.sock:close() end
  self.conns, self.nconns = {}, 0
  if self.listener then
    self.listener:close()
    self.listener = nil
  end
end

return M
