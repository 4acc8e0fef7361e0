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
-- handshake_timeout, limits (some of http.LIMITS), tls_cert, tls_key, name (the Server header).
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
  listener:settimeout(0)
  self.listener = listener
  local addr, port = listener:getsockname()
  self.port = tonumber(port)
  local host = addr:find(":", 1, true) and "[" .. addr .. "]" or addr
  self.root = string.format("%s://%s:%d", self.tls_ctx and "https" or "http", host, self.port)
  self.loop = loop_mod.new({ on_error = function(e) self.on_error(e) end })
  self.conns, self.nconns = {}, 0
  self.loop:spawn(self._accept, self)
  return self
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
            gettime() + self.write_timeout, 1, self.name) then
          linger(conn)
        end
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
    if not http.write_response(stream, res, keep, gettime() + self.write_timeout, req.minor, self.name)
        or not keep then
      return
    end
  end
end

function Server:_connection(sock, peer)
  local conn = { sock = sock, peer = peer }
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
  if self.conns[conn] then
    self.conns[conn] = nil
    self.nconns = self.nconns - 1
  end
  if self.on_close then self.on_close(conn) end
  if not ok then self.on_error(err) end
end

-- Accepts connections for as long as the server runs; past max_connections a new
-- connection is closed at once.
function Server:_accept()
  while not self.stopping do
    self.loop:wait(self.listener, "r")
    while self.listener do
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
  self.conns, self.nconns = {}, 0
  if self.listener then
    self.listener:close()
    self.listener = nil
  end
  self.closed = true
end

return _M
