-- A small HTTP/1.1 server on the loop, shared by the sandbox and `thinkific.listen`: a
-- listening socket, one coroutine per connection, keep-alive, optional TLS, a bound on
-- connections and on every wait. What to answer is its owner's: handle(conn, req) -> res.
local socket = require("socket")
local make_error = require("thinkific.core").error
local loop_mod = require("thinkific.http.loop")
local stream_mod = require("thinkific.http.stream")
local http = require("thinkific.http.message")
local respond = require("thinkific.http.respond")

local gettime = socket.gettime
local waitable = loop_mod.waitable

local _M = {}

_M.DEFAULTS = {
  host = "127.0.0.1",
  port = 0,
  backlog = 128,
  max_connections = 256,
  idle_timeout = 30,      -- seconds a keep-alive connection may wait for its next request
  write_timeout = 30,     -- seconds to write one answer
  handshake_timeout = 10, -- seconds for a TLS handshake
  name = "thinkific", -- the Server header
}

local Server = {}
Server.__index = Server

-- Returns the server's TLS context and LuaSec, or nil, err (kind "tls").
local function tls_context(cert, key)
  local ok, ssl = pcall(require, "ssl")
  local ctx, err
  if not ok then
    err = "TLS needs LuaSec (the ssl module)"
  else
    ctx, err = ssl.newcontext({
      mode = "server", protocol = "any", certificate = cert, key = key,
      options = { "all" },
    })
    if not ctx then err = "cannot load the TLS certificate or key: " .. tostring(err) end
  end
  if not ctx then return nil, make_error({ kind = "tls", message = err }) end
  return ctx, ssl
end

-- Creates a listening server (not running yet). opts: handle(conn, req) -> res (required;
-- res = { status, headers, body } as http.write_response takes it, or { drop = true } to
-- close without answering), on_close(conn) (after a connection closed), on_error(message)
-- (a bug: the traceback), host, port, backlog, max_connections, idle_timeout, write_timeout,
-- handshake_timeout, limits (some of http.LIMITS), tls_cert, tls_key, name (the Server header),
-- after_round(loop) (see loop.new: handle may park its coroutine on self.loop until then),
-- gather(loop) (see loop.new).
-- conn = { sock, peer, stream } plus whatever the owner stores in it.
-- Returns the server, or nil, err: a thinkific error, kind "network" when it cannot listen,
-- "tls" when it cannot load the certificate or key. tls_cert without tls_key (or the other way
-- round) is its owner's mistake: it raises.
function _M.new(opts)
  local self = setmetatable({}, Server)
  for k, v in pairs(_M.DEFAULTS) do
    if opts[k] == nil then self[k] = v else self[k] = opts[k] end
  end
  self.handle = assert(opts.handle, "http.server.new needs a handle function")
  self.on_close = opts.on_close
  self.on_error = opts.on_error or function(message)
    io.stderr:write(self.name, ": ", tostring(message), "\n")
  end
  -- The owner's limits over the defaults.
  self.limits = {}
  for k, v in pairs(http.LIMITS) do self.limits[k] = v end
  for k, v in pairs(opts.limits or {}) do self.limits[k] = v end
  assert((opts.tls_cert == nil) == (opts.tls_key == nil), "TLS needs both a certificate and a key")
  if opts.tls_cert then
    local ctx, ssl = tls_context(opts.tls_cert, opts.tls_key)
    if not ctx then return nil, ssl end
    self.tls_ctx, self.ssl = ctx, ssl
  end
  local listener, err = socket.bind(self.host, self.port, self.backlog)
  if not listener then
    return nil, make_error({ kind = "network",
      message = string.format("cannot listen on %s port %s: %s", self.host, self.port, err) })
  end
  if not waitable(listener) then
    listener:close()
    return nil, make_error({ kind = "network", message = string.format(
      "cannot listen on %s port %s: too many open files to wait on", self.host, self.port) })
  end
  listener:settimeout(0)
  self.listener = listener
  local addr, port = listener:getsockname()
  self.port = tonumber(port)
  local host = addr:find(":", 1, true) and "[" .. addr .. "]" or addr
  self.root = string.format("%s://%s:%d", self.tls_ctx and "https" or "http", host, self.port)
  self.loop = loop_mod.new({ on_error = function(e) self.on_error(e) end,
    after_round = opts.after_round, gather = opts.gather })
  self.conns, self.nconns = {}, 0        -- served connections
  self.refusing, self.nrefusing = {}, 0  -- connections being refused (past the cap)
  self.loop:spawn(self._accept, self)
  return self
end

function Server:_handshake(sock, deadline)
  local tls, err = self.ssl.wrap(sock, self.tls_ctx)
  if not tls then return nil, err end
  return stream_mod.handshake(tls, self.loop, deadline)
end

-- After an error answer the client may still be sending: closing at once would reset the
-- connection and could destroy the answer before the client reads it. So: end our side,
-- then read and drop what comes, for a short, bounded while.
local function linger(conn)
  if not conn.sock.shutdown then return end -- TLS: no half-close
  conn.sock:shutdown("send")
  conn.stream:read_all(1024 * 1024, gettime() + 2)
end

-- Writes a last answer (an error) and lingers.
function Server:_last_answer(conn, res, deadline)
  if http.write_response(conn.stream, res, false, deadline, 1, self.name) then linger(conn) end
end

-- Serves one connection until it closes, idles out, or asks to close. While it waits for
-- the first byte of a request it is idle (conn.idle_since): at the cap, it may be evicted.
function Server:_serve(conn)
  local stream = conn.stream
  while not self.stopping do
    conn.idle_since, conn.idle_mark = gettime(), stream.received
    local req, status, message = http.read_request(stream, self.limits, gettime() + self.idle_timeout)
    conn.idle_since = nil
    if not req then
      if type(status) == "number" then
        self:_last_answer(conn, respond.error(status, message), gettime() + self.write_timeout)
      end
      return
    end
    local ok, res = xpcall(self.handle, debug.traceback, conn, req)
    if not ok then
      -- A bug: say so, as a server would, and keep serving others.
      self.on_error(res)
      res = respond.error(500, "Internal Server Error")
      req.keep_alive = false
    end
    if res.drop then return end
    local keep = req.keep_alive and not self.stopping
    if not http.write_response(stream, res, keep, gettime() + self.write_timeout, req.minor,
        self.name, req.method == "HEAD") or not keep then
      return
    end
  end
end

-- A connection turned away at the cap is answered this, then closed.
local REFUSAL = respond.error(503, "Too many connections: retry shortly", { ["Retry-After"] = "1" })
local REFUSAL_TIME = 2 -- seconds to hand it over (TLS handshake, write)
local MAX_REFUSING = 16 -- refusals under way at once; past it, a connection is closed at once

-- Runs one connection in its own coroutine: the TLS handshake, then serving it (or refusing
-- it, refused = true: past the cap), then closing it.
function Server:_connection(sock, peer, refused)
  local conn = { sock = sock, peer = peer, co = coroutine.running() }
  if refused then
    self.refusing[conn] = true
    self.nrefusing = self.nrefusing + 1
  else
    self.conns[conn] = true
    self.nconns = self.nconns + 1
  end
  local ok, err = pcall(function()
    if self.tls_ctx then
      local within = refused and REFUSAL_TIME or self.handshake_timeout
      local tls = self:_handshake(sock, gettime() + within)
      if not tls then return end
      conn.sock = tls
    end
    conn.stream = stream_mod.new(conn.sock, self.loop)
    if refused then
      self:_last_answer(conn, REFUSAL, gettime() + REFUSAL_TIME)
    else
      self:_serve(conn)
    end
  end)
  conn.sock:close()
  if refused then
    self.refusing[conn] = nil
    self.nrefusing = self.nrefusing - 1
  elseif self.conns[conn] then
    self.conns[conn] = nil
    self.nconns = self.nconns - 1
  end
  if self.on_close then self.on_close(conn) end
  if not ok then self.on_error(err) end
end

-- Is a request (or the peer's close) on its way in on this socket, not read yet?
local function arriving(sock)
  if sock.dirty and sock:dirty() then return true end
  local readable = socket.select({ sock }, nil, 0)
  return readable[sock] ~= nil
end

-- At the cap: closes the connection idle the longest (waiting for a request none of which
-- has arrived: between requests, or none sent yet) to make room. Returns whether it did.
function Server:_evict_idle()
  local idle = {}
  for conn in pairs(self.conns) do
    local stream = conn.stream
    if conn.idle_since and stream.received == conn.idle_mark and stream:buffered() == 0 then
      idle[#idle + 1] = conn
    end
  end
  table.sort(idle, function(a, b) return a.idle_since < b.idle_since end)
  for _, conn in ipairs(idle) do
    if not arriving(conn.sock) then
      self.conns[conn] = nil
      self.nconns = self.nconns - 1
      conn.sock:close()
      self.loop:wake(conn.co)
      return true
    end
  end
  return false
end

-- Accepts connections for as long as the server runs. At max_connections a new connection
-- takes the place of the longest idle one; when none is idle it is answered 503.
function Server:_accept()
  while not self.stopping do
    self.loop:wait(self.listener, "r")
    while self.listener do
      local sock = self.listener:accept()
      if not sock then break end
      if not waitable(sock) then
        sock:close()
      else
        local room = self.nconns < self.max_connections or self:_evict_idle()
        if room or self.nrefusing < MAX_REFUSING then
          sock:settimeout(0)
          sock:setoption("tcp-nodelay", true)
          local peer = sock:getpeername()
          self.loop:spawn(self._connection, self, sock, peer, not room)
        else
          sock:close() -- past the cap, with enough refusals under way
        end
      end
    end
  end
end

-- Runs one round of the loop: waits at most max_wait seconds (default 1).
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

-- Closes every connection and the listening socket. Idempotent.
function Server:close()
  self:stop()
  for conn in pairs(self.conns) do conn.sock:close() end
  for conn in pairs(self.refusing) do conn.sock:close() end
  self.conns, self.nconns = {}, 0
  self.refusing, self.nrefusing = {}, 0
  if self.listener then
    self.listener:close()
    self.listener = nil
  end
  self.closed = true
end

return _M
