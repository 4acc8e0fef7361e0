-- A child process started through io.popen and a shell, without lua-posix: its stdin is our
-- pipe, its stdout and stderr go to temp files, and the shell writes its pid before exec'ing
-- the program (so the pid is the program's). Linux's /proc tells a zombie from a live child;
-- elsewhere `kill -0` is used.
local socket = require("socket")

local gettime, sleep = socket.gettime, socket.sleep

local _M = {}

local HAS_PROC = false
do
  local f = io.open("/proc/self/stat")
  if f then
    HAS_PROC = true
    f:close()
  end
end

function _M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function _M.read_file(path, max)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read(max or "a")
  f:close()
  return s
end

-- Is the process running (not gone, not a zombie waiting for us)?
function _M.alive(pid)
  local stat = _M.read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
  end
  if HAS_PROC then return false end
  -- Lua 5.4 answers true; LuaJIT (no 5.2 compatibility) the wait status, 0 for success.
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

-- Waits up to `seconds` for the process to end. Returns true when it has.
function _M.wait_exit(pid, seconds)
  local deadline = gettime() + seconds
  while _M.alive(pid) do
    if gettime() > deadline then return false end
    sleep(0.01)
  end
  return true
end

local Process = {}
Process.__index = Process

-- Starts `argv_shell` (an already quoted command line) with env (name -> value; false
-- unsets). Returns the process, or raises.
function _M.start(command, env)
  local p = setmetatable({ out = os.tmpname(), err = os.tmpname(), pidfile = os.tmpname() }, Process)
  local parts = {}
  for name, value in pairs(env) do
    if value then
      parts[#parts + 1] = string.format("export %s=%s;", name, _M.quote(value))
    else
      parts[#parts + 1] = string.format("unset %s;", name)
    end
  end
  parts[#parts + 1] = string.format("echo $$ > %s; exec %s > %s 2> %s", _M.quote(p.pidfile),
    command, _M.quote(p.out), _M.quote(p.err))
  local pipe, err = io.popen(table.concat(parts, " "), "w")
  if not pipe then
    p:cleanup()
    error("thinkific.sandbox: cannot start a process: " .. tostring(err), 0)
  end
  p.pipe = pipe
  return p
end

-- The pid, once the shell has written it (nil before).
function Process:getpid()
  if not self.pid then
    self.pid = tonumber((_M.read_file(self.pidfile) or ""):match("^(%d+)\n"))
  end
  return self.pid
end

-- Waits up to `seconds` for the first line of output. Returns it, or nil, why
-- ("exited" or "timeout").
function Process:first_line(seconds)
  local deadline = gettime() + seconds
  while true do
    local line = (_M.read_file(self.out, 4096) or ""):match("^([^\n]*)\n")
    if line then return line end
    local pid = self:getpid()
    if pid and not _M.alive(pid) then
      -- It may have printed just before it exited.
      line = (_M.read_file(self.out, 4096) or ""):match("^([^\n]*)\n")
      if line then return line end
      return nil, "exited"
    end
    if gettime() > deadline then return nil, "timeout" end
    sleep(0.01)
  end
end

-- What the process wrote on stderr so far (at most 2000 bytes).
function Process:stderr()
  return _M.read_file(self.err, 2000) or ""
end

function Process:cleanup()
  os.remove(self.out)
  os.remove(self.err)
  os.remove(self.pidfile)
end

-- Ends the process: TERM, KILL if it is still there after grace seconds, then closes the
-- pipe (which reaps it: no zombie is left) and removes the temp files. Idempotent.
function Process:stop(grace)
  if self.stopped then return end
  self.stopped = true
  local pid = self:getpid()
  if pid and _M.alive(pid) then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not _M.wait_exit(pid, grace or 3) then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
      _M.wait_exit(pid, 2)
    end
  end
  if self.pipe then
    self.pipe:close()
    self.pipe = nil
  end
  self:cleanup()
end

return _M
