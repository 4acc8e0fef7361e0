-- Buffered reads and whole writes over a non-blocking socket (plain or TLS). Whenever the
-- socket would block, the stream asks its waiter to wait: inside the server the waiter is the
-- loop (the coroutine yields), outside it is `stream.blocking` (a bounded socket.select).
local socket = require("socket")

local find, sub, concat = string.find, string.sub, table.concat
local gettime, select = socket.gettime, socket.select
local max, min = math.max, math.min

local RECV = 16384

local _M = {}

-- A waiter for code that runs outside the loop (the spawn object, tools): every wait needs
-- a deadline.
_M.blocking = {
  wait = function(_, sock, dir, deadline)
    if dir == "r" and sock.dirty and sock:dirty() then return true end
    local left = max(0, (deadline or gettime() + 30) - gettime())
    local r, w = select(dir == "r" and { sock } or nil, dir == "w" and { sock } or nil, left)
    if (dir == "r" and r[sock]) or (dir == "w" and w[sock]) then return true end
    return nil, "timeout"
  end,
}

local Stream = {}
Stream.__index = Stream

function _M.new(sock, waiter)
  sock:settimeout(0)
  return setmetatable({ sock = sock, waiter = waiter, buf = "", eof = false }, Stream)
end

-- Waits as the socket asked (LuaSec says wantread/wantwrite, LuaSocket says timeout).
function Stream:_block(err, deadline, default_dir)
  local dir = default_dir
  if err == "wantwrite" then dir = "w" elseif err == "wantread" then dir = "r" end
  return self.waiter:wait(self.sock, dir, deadline)
end

local function transient(err)
  return err == "timeout" or err == "wantread" or err == "wantwrite"
end

-- Receives up to n bytes (at least one) straight from the socket.
-- Returns data, or nil, "closed" | "timeout" | another socket error.
function Stream:_receive(n, deadline)
  while true do
    if self.eof then return nil, "closed" end
    local data, err, partial = self.sock:receive(n)
    local chunk = data or partial
    if err == "closed" then self.eof = true end
    if chunk and chunk ~= "" then return chunk end
    if not transient(err) then
      self.eof = true
      return nil, err or "closed"
    end
    if not self:_block(err, deadline, "r") then return nil, "timeout" end
  end
end

-- Reads one line (without CR LF) of at most max_len bytes.
-- Returns line, or nil, "too long" | "closed" | "timeout" | error.
function Stream:read_line(max_len, deadline)
  while true do
    local i = find(self.buf, "\n", 1, true)
    if i then
      if i - 1 > max_len + 1 then return nil, "too long" end
      local line = sub(self.buf, 1, i - 1)
      self.buf = sub(self.buf, i + 1)
      if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
      return line
    end
    if #self.buf > max_len + 1 then return nil, "too long" end
    local chunk, err = self:_receive(RECV, deadline)
    if not chunk then return nil, err end
    self.buf = self.buf .. chunk
  end
end

-- Reads exactly n bytes. Returns data, or nil, err.
function Stream:read_exact(n, deadline)
  if #self.buf >= n then
    local data = sub(self.buf, 1, n)
    self.buf = sub(self.buf, n + 1)
    return data
  end
  local parts, got = { self.buf }, #self.buf
  self.buf = ""
  while got < n do
    local chunk, err = self:_receive(min(RECV, n - got), deadline)
    if not chunk then return nil, err end
    parts[#parts + 1] = chunk
    got = got + #chunk
  end
  return concat(parts)
end

-- Reads until the peer closes, at most max_len bytes. Returns data, or nil, err
-- ("too long" past max_len).
function Stream:read_all(max_len, deadline)
  local parts, got = { self.buf }, #self.buf
  self.buf = ""
  while true do
    if got > max_len then return nil, "too long" end
    local chunk, err = self:_receive(RECV, deadline)
    if not chunk then
      if err == "closed" then return concat(parts) end
      return nil, err
    end
    parts[#parts + 1] = chunk
    got = got + #chunk
  end
end

-- Writes all of data. Returns true, or nil, err.
function Stream:write(data, deadline)
  local i, n = 1, #data
  while i <= n do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    else
      if partial and partial >= i then i = partial + 1 end
      if not transient(err) then return nil, err end
      if i <= n and not self:_block(err, deadline, "w") then return nil, "timeout" end
    end
  end
  return true
end

function Stream:close()
  self.eof = true
  self.sock:close()
end

-- Drives the TLS handshake of a freshly wrapped LuaSec socket without blocking, waiting on
-- `waiter` (the loop or _M.blocking) until `deadline`. Returns tls, or closes it and returns
-- nil, err ("timeout" past the deadline).
function _M.handshake(tls, waiter, deadline)
  tls:settimeout(0)
  while true do
    local ok, err = tls:dohandshake()
    if ok then return tls end
    if not transient(err) then
      tls:close()
      return nil, err
    end
    if not waiter:wait(tls, err == "wantwrite" and "w" or "r", deadline) then
      tls:close()
      return nil, "timeout"
    end
  end
end

return _M
