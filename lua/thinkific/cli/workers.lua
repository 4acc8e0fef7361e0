-- The worker processes of `thinkific listen --inbox STORE --workers N`. Each runs
-- `thinkific work RULES --parent-pipe` in a session of its own (setsid), so that Ctrl-C, which
-- the terminal sends to the listener's whole process group, never reaches it; its standard
-- input is a pipe from the listener, whose first line is the store URL (never on a command
-- line, where ps would show its password). The listener stops a worker by writing "stop": it
-- finishes the handler it runs and exits. When the listener is gone, the pipe closes, and the
-- worker stops the same way. A worker that exits on its own is started again.
-- Lua has no fork: a worker is io.popen's shell, which closes every descriptor it inherited
-- (the listening socket, connections, the store) and writes its pid before it execs.
local socket = require("socket")

local gettime, sleep = socket.gettime, socket.sleep
local format = string.format

local _M = {}

_M.MAX = 64          -- workers at most
local RESTART_EVERY = 5 -- seconds at least between two starts of one slot
local CHECK_EVERY = 1   -- seconds between checks of the workers

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Is process pid there (not gone, not a zombie waiting for its parent to read its status)?
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
  end
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

-- The interpreter running this process (the lowest index of arg), for the workers.
local function interpreter()
  local i = 0
  while arg and arg[i - 1] do i = i - 1 end
  return i < 0 and arg[i] or "lua5.4"
end

-- Closes every descriptor above 2 (bash: sh knows only descriptors 0 to 9). No redirection
-- around the loop: bash would keep stderr in a descriptor above 9 meanwhile, closed by the loop.
local CLOSE_FDS = [[for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; ]]

local Pool = {}
Pool.__index = Pool

-- Starts the worker of slot i. Returns true, or nil and why.
function Pool:_spawn(i)
  local pidfile = os.tmpname()
  local code = format('os.exit(require("thinkific.cli").main({ "work", %q, "--parent-pipe" }), true)',
    self.rules)
  local script = CLOSE_FDS .. "echo $$ > " .. quote(pidfile) .. "; exec setsid "
    .. quote(interpreter()) .. " -e " .. quote(code)
  local command = format("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s exec bash -c %s",
    quote(package.path), quote(package.cpath), quote(script))
  local pipe, err = io.popen(command, "w")
  if not pipe then
    os.remove(pidfile)
    return nil, tostring(err)
  end
  pipe:setvbuf("no")
  pipe:write(self.url, "\n")
  local pid
  local deadline = gettime() + 5
  repeat
    pid = tonumber((read_file(pidfile) or ""):match("^(%d+)\n"))
    if not pid then sleep(0.005) end
  until pid or gettime() > deadline
  os.remove(pidfile)
  self.slots[i] = { pipe = pipe, pid = pid, started = gettime() }
  if not pid then return nil, "it did not start" end
  return true
end

--- workers.start{ n, rules, url, log } -> pool | nil, err
-- n worker processes for the rules file at path rules and the store url; log(line) for
-- their starts and exits.
function _M.start(opts)
  local self = setmetatable({ rules = opts.rules, url = opts.url, log = opts.log, slots = {},
    checked = gettime() }, Pool)
  for i = 1, opts.n do
    local ok, err = self:_spawn(i)
    if not ok then
      self:stop(1)
      return nil, "cannot start a worker process: " .. err
    end
  end
  return self
end

-- The pids of the workers running now.
function Pool:pids()
  local pids = {}
  for _, slot in ipairs(self.slots) do
    if slot.pid then pids[#pids + 1] = slot.pid end
  end
  return pids
end

-- At most once a second: starts again each worker that exited (at most once every 5 s a
-- slot), with a line in the log.
function Pool:tend()
  local now = gettime()
  if now - self.checked < CHECK_EVERY then return end
  self.checked = now
  for i, slot in ipairs(self.slots) do
    if slot.pid and not alive(slot.pid) then
      local _, how, status = slot.pipe:close()
      self.log(format("worker %d exited (%s %s)", slot.pid, tostring(how), tostring(status)))
      slot.pid, slot.pipe = nil, nil
    end
    if not slot.pid and now - slot.started >= RESTART_EVERY then
      if slot.pipe then slot.pipe:close() end -- a start that never gave its pid
      local ok, err = self:_spawn(i)
      if ok then
        self.log(format("worker %d started", self.slots[i].pid))
      else
        self.log("cannot start a worker process: " .. err)
      end
    end
  end
end

-- Stops every worker: "stop" to each, then waits up to grace seconds for them to finish the
-- handlers they run; a worker still there is ended with TERM, then KILL. Idempotent.
function Pool:stop(grace)
  for _, slot in ipairs(self.slots) do
    if slot.pid then slot.pipe:write("stop\n") end
  end
  local deadline = gettime() + grace
  for _, slot in ipairs(self.slots) do
    if slot.pid then
      while alive(slot.pid) and gettime() < deadline do sleep(0.02) end
      if alive(slot.pid) then
        os.execute("kill -TERM " .. slot.pid .. " 2>/dev/null")
        local term_deadline = gettime() + 2
        while alive(slot.pid) and gettime() < term_deadline do sleep(0.02) end
        os.execute("kill -KILL " .. slot.pid .. " 2>/dev/null")
      end
    end
    if slot.pipe then slot.pipe:close() end -- reaps it
    slot.pipe, slot.pid = nil, nil
  end
end

return _M
