-- Running rules' `when` predicates: a rules file in the C sandbox (src/rules.c: its own Lua
-- state, a memory cap, an instruction budget per event, bounded pattern functions), or a table
-- of rules given in Lua, whose functions run as they are (the program's own code). Both give
-- the scoring the same three calls: begin(event, player), when(rule) and finish().
local core = require("thinkific.core")

local type, tostring, pcall = type, tostring, pcall
local format = string.format

local _M = {}

_M.SANDBOXED = core.rules_new ~= nil -- Lua 5.4; LuaJIT cannot give a state its own allocator
_M.MEMORY = 16 * 1024 * 1024         -- bytes a rules file's state may hold
_M.INSTRUCTIONS = 1000000            -- VM instructions per event, every rule's `when` together
_M.MAX_FILE = 1024 * 1024            -- bytes of a rules file

local function mib(bytes)
  return format("%g MiB", bytes / 1048576)
end

-- The sandbox's answer as one message naming the rule and the limit it met.
local function stopped(who, message, kind, limits)
  if kind == "instructions" then
    return format("%s: stopped: over the instruction budget (%d instructions per event): %s", who,
      limits.instructions, message)
  elseif kind == "memory" then
    return format("%s: stopped: over the memory cap (%s): %s", who, mib(limits.memory), message)
  end
  return format("%s: %s", who, message)
end

---------------------------------------------------------------------------------------------
-- A table of rules: functions called directly.

local Direct = {}
Direct.__index = Direct

function Direct.begin() return true end
function Direct.finish() end

function Direct.when(_, rule, event, player)
  local ok, result = pcall(rule.when, event, player) -- (no traceback: an error is one line)
  if not ok then return nil, format("rule '%s': when failed: %s", rule.name, tostring(result)) end
  return result and true or false
end

--- runner.direct() -> a runner for rules given as a Lua table.
function _M.direct()
  return setmetatable({ sandboxed = false }, Direct)
end

---------------------------------------------------------------------------------------------
-- A rules file: the C sandbox.

local Sandboxed = {}
Sandboxed.__index = Sandboxed

function Sandboxed:begin(event, player)
  local ok, err, kind = self.state:begin(event, player)
  if ok then return true end
  return nil, stopped("the event", err, kind, self.limits)
end

function Sandboxed:when(rule)
  local result, err, kind = self.state:call(core.rules_function(rule.when))
  if result == nil then return nil, stopped(format("rule '%s'", rule.name), err, kind, self.limits) end
  return result
end

function Sandboxed:finish()
  self.state:finish()
end

-- The text of a rules file, or nil and why not.
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read(_M.MAX_FILE + 1)
  f:close()
  text = text or ""
  if #text > _M.MAX_FILE then
    return nil, format("%s: a rules file may hold at most %s", path, mib(_M.MAX_FILE))
  end
  return text
end

--- runner.load(path, { memory, instructions }) -> source, runner | nil, message
-- Runs the file once in a new sandbox (under the same limits as an event) and copies out what
-- it returned (its functions as markers that only its runner can call).
function _M.load(path, limits)
  if not _M.SANDBOXED then
    return nil, "rules files run sandboxed, and the sandbox needs Lua 5.4; under LuaJIT give the "
      .. "rules as a table (their functions then run without the memory cap or the instruction "
      .. "budget)"
  end
  local text, err = read_file(path)
  if not text then return nil, err end
  local state = core.rules_new(limits.memory, limits.instructions)
  local source, message, kind = state:load(text, "@" .. path)
  if source == nil and message then
    state:close()
    return nil, stopped(path, message, kind, limits)
  end
  return source, setmetatable({ sandboxed = true, state = state, limits = limits }, Sandboxed)
end

--- runner.is_function(v): whether v may be a rule's `when` (a function, or a sandboxed one).
function _M.is_function(v)
  return type(v) == "function" or core.rules_function ~= nil and core.rules_function(v) ~= nil
end

return _M
