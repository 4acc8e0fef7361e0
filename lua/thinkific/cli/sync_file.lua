-- The desired list of `thinkific webhooks sync FILE`: a JSON array of {topic, target_url}, or
-- a Lua file (.lua) returning such a list. Every mistake is one line that names the file and,
-- where there is one, the entry or the line and column: "webhooks.json:3:14: …",
-- "webhooks.json: entry 2: unknown field 'url' (expected topic, target_url)".
local common = require("thinkific.cli.common")
local topics = require("thinkific.cli.topics")

local _M = {}

-- A Lua file runs with no globals, under this many VM instructions: a loop that never ends
-- is an error, not a hang.
_M.LUA_BUDGET = 10000000

local FIELDS = { topic = true, target_url = true }

-- cjson's token names, in words.
local TOKENS = {
  T_END = "the end of the file", T_OBJ_BEGIN = "'{'", T_OBJ_END = "'}'", T_ARR_BEGIN = "'['",
  T_ARR_END = "']'", T_STRING = "a string", T_NUMBER = "a number", T_BOOLEAN = "true or false",
  T_NULL = "null", T_COLON = "':'", T_COMMA = "','",
}

-- "line:column" of the byte at offset (1-based) in text; the column counts UTF-8 characters.
local function position(text, offset)
  local before = text:sub(1, offset - 1)
  local line = select(2, before:gsub("\n", "")) + 1
  local start = before:match(".*\n()") or 1
  local column = before:sub(start)
  return line .. ":" .. ((utf8.len(column) or #column) + 1)
end

-- The JSON decoder's complaint as "path:line:column: what".
local function json_error(path, text, err)
  local message = tostring(err and err.message or err)
  local what, offset = message:match("^(.-) at character (%d+)$")
  if not what then return path .. ": invalid JSON: " .. message end
  what = what:gsub("T_[%u_]+", TOKENS)
  return path .. ":" .. position(text, tonumber(offset)) .. ": invalid JSON: " .. what
end

local function read_json(path)
  local text, err = common.read_input(path)
  if not text then return nil, err end
  local value, derr = require("thinkific").decode(text)
  if value == nil then return nil, json_error(path, text, derr) end
  -- "{}" and "[]" decode alike: only an array is a list.
  if not text:find("^%s*%[") then
    return nil, path .. ": expected a JSON array of {topic, target_url}"
  end
  return value
end

local function read_lua(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then return nil, err end
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("too much work (over " .. _M.LUA_BUDGET
    .. " instructions): return a table constructor", 2) end, "", _M.LUA_BUDGET)
  local ok, value = coroutine.resume(co)
  if not ok then
    value = tostring(value)
    -- Errors raised in the file already start with "path:line:".
    if value:sub(1, #path + 1) ~= path .. ":" then value = path .. ": " .. value end
    return nil, value
  end
  if type(value) ~= "table" then
    return nil, path .. ": expected the file to return a list of {topic, target_url}, got "
      .. type(value)
  end
  return value
end

local function describe(v)
  if type(v) == "string" then return "'" .. common.printable(v) .. "'" end
  if v == require("thinkific").null then return "null" end
  return type(v)
end

-- One entry's mistake, or nil.
local function check_entry(entry, allow_unknown)
  if type(entry) ~= "table" then return "expected {topic, target_url}, got " .. describe(entry) end
  local keys = {}
  for k in pairs(entry) do
    if not FIELDS[k] then keys[#keys + 1] = tostring(k) end
  end
  if #keys > 0 then
    table.sort(keys)
    return ("unknown field '%s' (expected topic, target_url)"):format(common.printable(keys[1]))
  end
  for _, k in ipairs({ "topic", "target_url" }) do
    local v = entry[k]
    if v == nil then return ("missing field '%s'"):format(k) end
    if type(v) ~= "string" or v == "" then
      return ("field '%s' must be a non-empty string, got %s"):format(k, describe(v))
    end
  end
  return topics.check(entry.topic, allow_unknown)
end

-- Checks a decoded list: a list with no holes or other keys, every entry valid, no pair twice.
function _M.check(path, list, allow_unknown)
  local n = #list
  for k in pairs(list) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return nil, ("%s: expected a list of {topic, target_url}, found the key %s"):format(path,
        describe(k))
    end
  end
  local seen = {}
  for i, entry in ipairs(list) do
    local bad = check_entry(entry, allow_unknown)
    if bad then return nil, ("%s: entry %d: %s"):format(path, i, bad) end
    local key = entry.topic .. "\0" .. entry.target_url
    if seen[key] then
      return nil, ("%s: entry %d repeats entry %d (%s %s)"):format(path, i, seen[key],
        entry.topic, common.printable(entry.target_url))
    end
    seen[key] = i
  end
  return list
end

-- Reads and checks path. Returns the list, or nil and one line.
function _M.load(path, allow_unknown)
  local list, err
  if path:find("%.lua$") then list, err = read_lua(path) else list, err = read_json(path) end
  if not list then return nil, err end
  return _M.check(path, list, allow_unknown)
end

return _M
