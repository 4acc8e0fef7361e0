-- Buffered reads and whole writes over a non-blocking socket (plain or TLS). Whenever the
-- socket would block, the stream asks its waiter to wait: inside the server the waiter is the
-- loop (the coroutine yields), outside it is `stream.blocking` (a bounded socket.select).
local socket = require("socket")

local byte, find, sub, concat = string.byte, string.find, string.sub, table.concat
local gettime, select = socket.gettime, socket.select
local max, min = math.max, math.min

local CR = 13

local RECV = 16384
-- A connection whose peer sends without pause hands the loop to the others after this many
-- bytes, so one fast sender cannot hold the single loop for a whole body.
local FAIR_SHARE = 256 * 1024

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

-- buf holds received bytes not all read yet: those from index pos on. Reading moves pos, so
-- taking a line or a few bytes costs their own length, never a copy of the rest. received
-- counts every byte that ever arrived; unyielded those since the last wait.
function _M.new(sock, waiter)
  sock:settimeout(0)
  return setmetatable({ sock = sock, waiter = waiter, buf = "", pos = 1, eof = false,
    received = 0, unyielded = 0 }, Stream)
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
  if self.unyielded >= FAIR_SHARE then
    -- Readable at once, most likely: the loop resumes this connection in its next round.
    self.unyielded = 0
    if not self:_block(nil, deadline, "r") then return nil, "timeout" end
  end
  while true do
    if self.eof then return nil, "closed" end
    local data, err, partial = self.sock:receive(n)
    local chunk = data or partial
    if err == "closed" then self.eof = true end
    if chunk and chunk ~= "" then
      self.received = self.received + #chunk
      self.unyielded = self.unyielded + #chunk
      return chunk
    end
    if not transient(err) then
      self.eof = true
      return nil, err or "closed"
    end
    self.unyielded = 0
    if not self:_block(err, deadline, "r") then return nil, "timeout" end
  end
end

-- How many received bytes are not read yet.
function Stream:buffered()
  return #self.buf - self.pos + 1
end

-- Waits until at least one byte is there to read. Returns true, or nil, err.
function Stream:await(deadline)
  if self.pos <= #self.buf then return true end
  return self:_fill(deadline)
end

-- Takes the unread bytes out of the buffer.
function Stream:_take_all()
  local rest = sub(self.buf, self.pos)
  self.buf, self.pos = "", 1
  return rest
end

-- Appends more bytes from the socket to the unread ones. Returns true, or nil, err.
function Stream:_fill(deadline)
  local chunk, err = self:_receive(RECV, deadline)
  if not chunk then return nil, err end
  if self.pos > #self.buf then
    self.buf = chunk
  else
    self.buf = sub(self.buf, self.pos) .. chunk
  end
  self.pos = 1
  return true
end

-- Reads one line of at most max_len bytes, without its end: CR LF, or a bare LF unless
-- crlf is true. Returns line, or nil, "too long" | "bare LF" | "closed" | "timeout" | error.
function Stream:read_line(max_len, deadline, crlf)
  local from = self.pos
  while true do
    local buf, pos = self.buf, self.pos
    local i = find(buf, "\n", from, true)
    if i then
      if i - pos > max_len + 1 then return nil, "too long" end
      self.pos = i + 1
      if i > pos and byte(buf, i - 1) == CR then return sub(buf, pos, i - 2) end
      if crlf then return nil, "bare LF" end
      return sub(buf, pos, i - 1)
    end
    local unread = #buf - pos + 1
    if unread > max_len + 1 then return nil, "too long" end
    local ok, err = self:_fill(deadline)
    if not ok then return nil, err end
    from = unread + 1
  end
end

-- Reads exactly n bytes. Returns data, or nil, err.
function Stream:read_exact(n, deadline)
  local pos = self.pos
  if #self.buf - pos + 1 >= n then
    self.pos = pos + n
    return sub(self.buf, pos, pos + n - 1)
  end
  local first = self:_take_all()
  local parts, got = { first }, #first
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
  local first = self:_take_all()
  local parts, got = { first }, #first
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
