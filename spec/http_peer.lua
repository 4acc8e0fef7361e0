-- Raw HTTP/1.1 clients for servers running in this process (thinkific.listen, sandbox.serve):
-- the client never blocks, and every wait steps the server so that it can answer meanwhile.
-- What goes on the wire is exactly what the test wrote. Every wait is bounded.
local socket = require("socket")

local gettime = socket.gettime

local peer = {}

peer.TIMEOUT = 5

-- Steps server (anything with step(max_wait)) until pred() is true or `seconds` have passed;
-- returns whether pred() became true.
function peer.serve_until(server, pred, seconds)
  local deadline = gettime() + (seconds or peer.TIMEOUT)
  while not pred() do
    if gettime() > deadline then return false end
    server:step(0.01)
  end
  return true
end

-- A server in another process (a sandbox child), for the functions below: waiting for it is
-- sleeping a little.
function peer.remote(port)
  return { port = port, step = function(_, wait) socket.sleep(math.min(wait, 0.002)) end }
end

local Peer = {}
Peer.__index = Peer

-- A connection to 127.0.0.1:port of an in-process server.
function peer.connect(server)
  local c = socket.tcp()
  c:settimeout(peer.TIMEOUT)
  assert(c:connect("127.0.0.1", server.port))
  c:settimeout(0)
  return setmetatable({ sock = c, server = server, buf = "", out = "", sent = 0, closed = false },
    Peer)
end

-- Queues raw bytes and sends what the socket takes now; the rest goes while waiting. (What
-- is queued is never copied: a test can send megabytes.)
function Peer:send(raw)
  if self.sent < #self.out then raw = self.out:sub(self.sent + 1) .. raw end
  self.out, self.sent = raw, 0
  self:_flush()
end

function Peer:_flush()
  if self.sent >= #self.out or self.closed then return end
  local last, err, partial = self.sock:send(self.out, self.sent + 1)
  self.sent = last or partial or self.sent
  if err and err ~= "timeout" then self.closed = true end
end

-- Sends what is queued, stepping the server meanwhile; true once all of it has gone.
function Peer:drain(seconds)
  return peer.serve_until(self.server, function()
    self:_flush()
    return self.sent >= #self.out or self.closed
  end, seconds) and self.sent >= #self.out
end

-- Ends the sending side (the server reads end of file) once everything queued has gone.
function Peer:finish(seconds)
  self:drain(seconds)
  self.sock:shutdown("send")
end

-- Reads what arrived (without waiting); notes when the server closed.
function Peer:_read()
  if self.closed then return end
  local data, err, partial = self.sock:receive(65536)
  local chunk = data or partial
  if chunk and chunk ~= "" then self.buf = self.buf .. chunk end
  if err and err ~= "timeout" then self.closed = true end
end

-- One whole response from what arrived: { status, headers (lower-case names), body }, or
-- nil while it is incomplete. A response the client cannot frame raises. to_head: the answer
-- to a HEAD request, which has no body whatever its Content-Length.
function Peer:_parse(to_head)
  local head_end = self.buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = self.buf:sub(1, head_end - 1)
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) [^\r\n]*"))
  assert(status, "not an HTTP/1.1 status line: " .. head:sub(1, 80))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  local n = to_head and 0 or tonumber(headers["content-length"] or "0")
  if #self.buf < head_end + 3 + n then return nil end
  local res = { status = status, headers = headers,
    body = self.buf:sub(head_end + 4, head_end + 3 + n) }
  self.buf = self.buf:sub(head_end + 4 + n)
  return res
end

-- Polls once: a whole response, or nil.
function Peer:poll()
  self:_flush()
  self:_read()
  return self:_parse()
end

-- Steps the server until a whole response arrived or the connection closed: returns the
-- response, or nil when the server closed without (another) one. Raises after `seconds`.
function Peer:response(seconds)
  local res
  assert(peer.serve_until(self.server, function()
    res = res or self:poll()
    return res ~= nil or self.closed
  end, seconds), "no response in time")
  return res
end

-- Steps the server until it closes the connection; returns whether it did within `seconds`.
function Peer:wait_closed(seconds)
  return peer.serve_until(self.server, function()
    self:_flush()
    self:_read()
    return self.closed
  end, seconds)
end

function Peer:close()
  self.sock:close()
  self.closed = true
end

-- One request on its own connection: the response (nil when the server closed without one).
function peer.exchange(server, raw)
  local c = peer.connect(server)
  c:send(raw)
  local res = c:response()
  c:close()
  return res
end

return peer
