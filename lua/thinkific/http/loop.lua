-- A small coroutine scheduler over socket.select. Each connection (and each of the sandbox's
-- outgoing deliveries) is a coroutine that waits for one socket at a time, and every wait
-- has a deadline, so a silent peer can never hang the server.
local socket = require("socket")

local gettime, select, sleep = socket.gettime, socket.select, socket.sleep
-- select's limit: a descriptor at or past it cannot be waited on.
local SETSIZE = socket._SETSIZE or 1024
local create, resume, yield, running = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.running
local min, max = math.min, math.max
local unpack = table.unpack or rawget(_G, "unpack")
local nargs = _G.select -- (select is socket.select here)
local function pack(...) return { n = nargs("#", ...), ... } end
local traceback = debug.traceback

local _M = {}

local Loop = {}
Loop.__index = Loop

-- Can select wait on sock? Not when its descriptor is at or past select's limit.
function _M.waitable(sock)
  return sock:getfd() < SETSIZE
end

-- opts.on_error(message): called with the traceback of a coroutine that failed.
-- opts.after_round(loop): called at the end of each round, once the coroutines whose wait was
-- over have run (in the main thread): for work done once for all of them, such as one commit
-- for the requests read in this round, whose coroutines wait in park meanwhile.
-- opts.gather(loop): whether the round should take in, before after_round, whatever became
-- ready while its coroutines ran (true while there is a group for after_round to commit).
function _M.new(opts)
  opts = opts or {}
  return setmetatable({ waits = {}, stopped = false, on_error = opts.on_error,
    after_round = opts.after_round, gather = opts.gather }, Loop)
end

function Loop:_report(err)
  if self.on_error then self.on_error(err) end
end

-- Runs fn(...) in a new coroutine now, up to its first wait. Its errors are reported and
-- end that coroutine only.
function Loop:spawn(fn, ...)
  local co = create(function(...)
    local ok, err = xpcall(fn, traceback, ...)
    if not ok then self:_report(err) end
  end)
  local ok, err = resume(co, ...)
  if not ok then self:_report(err) end
  return co
end

-- From inside a spawned coroutine: waits until sock is readable (dir "r") or writable ("w"),
-- or until deadline (absolute socket.gettime() seconds; nil waits without end).
-- Returns true, or nil, "timeout" | "closed" (see wake) | "descriptor too large". Any object
-- with getfd() and dirty() can be waited on, if select can take its descriptor.
function Loop:wait(sock, dir, deadline)
  if not _M.waitable(sock) then return nil, "descriptor too large" end
  local co = running()
  self.waits[co] = { sock = sock, dir = dir, deadline = deadline }
  return yield()
end

-- Ends the wait of coroutine co (from another coroutine; its socket closed, say): in the next
-- round it returns nil, "closed".
function Loop:wake(co)
  if self.waits[co] then self.waits[co] = { deadline = 0, closed = true } end
end

-- From inside a spawned coroutine: returns after the given number of seconds.
function Loop:sleep(seconds)
  local co = running()
  self.waits[co] = { deadline = gettime() + max(0, seconds) }
  return yield()
end

-- From inside a spawned coroutine: waits, without a deadline, until another piece of code
-- calls unpark(co, ...); returns those values. (Whoever parks a coroutine must unpark it.)
function Loop:park()
  self.waits[running()] = { parked = true }
  return yield()
end

-- Ends the park of coroutine co: it resumes in the next round with the values given.
function Loop:unpark(co, ...)
  if self.waits[co] and self.waits[co].parked then
    self.waits[co] = { deadline = 0, values = pack(...) }
  end
end

-- One turn: waits at most timeout seconds for sockets or deadlines, then resumes every
-- coroutine whose wait is over. Returns how many it resumed.
function Loop:_turn(timeout)
  local now = gettime()
  local r, w, buffered = {}, {}, {}
  for co, wt in pairs(self.waits) do
    if wt.deadline then timeout = min(timeout, max(0, wt.deadline - now)) end
    local sock = wt.sock
    if sock then
      if wt.dir == "w" then
        w[#w + 1] = sock
      elseif sock.dirty and sock:dirty() then
        -- TLS may hold decrypted bytes that select cannot see.
        buffered[co] = true
        timeout = 0
      else
        r[#r + 1] = sock
      end
    end
  end
  local rr, ww = {}, {}
  if #r > 0 or #w > 0 then
    rr, ww = select(r, w, timeout)
  elseif timeout > 0 then
    sleep(timeout)
  end
  now = gettime()
  local due = {}
  for co, wt in pairs(self.waits) do
    local sock = wt.sock
    if sock and (buffered[co] or (wt.dir == "w" and ww[sock]) or (wt.dir ~= "w" and rr[sock])) then
      due[#due + 1] = { co, true }
    elseif wt.deadline and now >= wt.deadline then
      if sock then
        due[#due + 1] = { co, nil, "timeout" }
      elseif wt.closed then
        due[#due + 1] = { co, nil, "closed" }
      elseif wt.values then
        due[#due + 1] = { co, values = wt.values }
      else
        due[#due + 1] = { co, true }
      end
    end
  end
  for _, d in ipairs(due) do
    self.waits[d[1]] = nil
    local ok, err
    if d.values then
      ok, err = resume(d[1], unpack(d.values, 1, d.values.n))
    else
      ok, err = resume(d[1], d[2], d[3])
    end
    if not ok then self:_report(err) end
  end
  return #due
end

-- Turns without waiting that a round may take after its first, while gather says so.
local MAX_GATHER = 16

-- One round: waits at most max_wait seconds (default 1) for sockets or deadlines, then
-- resumes every coroutine whose wait is over; then, while gather(loop) is true, the
-- coroutines whose socket became ready meanwhile (without waiting: what has arrived joins the
-- round); then after_round.
function Loop:step(max_wait)
  local resumed = self:_turn(max_wait or 1)
  local turns = 0
  while resumed > 0 and turns < MAX_GATHER and self.gather and self.gather(self) do
    resumed, turns = self:_turn(0), turns + 1
  end
  if self.after_round then self.after_round(self) end
end

-- Runs rounds until stop() is called.
function Loop:run()
  while not self.stopped do self:step(1) end
end

function Loop:stop()
  self.stopped = true
end

return _M
