-- JSON for the sandbox: thinkific.core does the work (exact integers, the null sentinel);
-- this adds objects with a fixed key order, so answers read like Thinkific's, and arrays
-- of already-encoded elements, so an empty list is always written [].
local core = require("thinkific.core")

local concat, find, sub, byte = table.concat, string.find, string.sub, string.byte

local _M = {
  null = core.null,
  decode = core.decode,
}

-- Encodes a value; raises on a value that cannot be JSON (the sandbox's own data always can).
function _M.encode(value)
  local text, err = core.encode(value)
  if not text then error("thinkific.sandbox: cannot encode JSON: " .. tostring(err), 2) end
  return text
end

-- {"k1":v1,"k2":v2,...} in the order of keys; keys whose value is nil are left out
-- (use json.null for a JSON null).
function _M.object(keys, t)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil then parts[#parts + 1] = _M.encode(k) .. ":" .. _M.encode(v) end
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- [e1,e2,...] from texts that are already JSON.
function _M.array_of(texts)
  return "[" .. concat(texts, ",") .. "]"
end

-- A JSON array of plain values (strings, numbers...), [] when empty.
function _M.array(values)
  local texts = {}
  for i, v in ipairs(values) do texts[i] = _M.encode(v) end
  return _M.array_of(texts)
end

-- Raw text of JSON values ------------------------------------------------------------------
-- For text that already decoded without error: the spans are found by skipping strings and
-- counting brackets, so each member's value is kept byte for byte (number forms, key order,
-- empty arrays), which decoding and encoding again would not do.

local function skip_ws(s, i)
  return find(s, "[^ \t\r\n]", i) or #s + 1
end

-- s[i] is '"': the index just after the closing quote, or nil.
local function skip_string(s, i)
  local j = i + 1
  while true do
    local q = find(s, '["\\]', j)
    if not q then return nil end
    if byte(s, q) == 34 then return q + 1 end
    j = q + 2
  end
end

-- The index just after the value that starts at i, or nil.
local function skip_value(s, i)
  local c = byte(s, i)
  if c == 34 then return skip_string(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local k = find(s, '[][{}"]', j)
      if not k then return nil end
      local b = byte(s, k)
      if b == 34 then
        j = skip_string(s, k)
        if not j then return nil end
      else
        depth = (b == 123 or b == 91) and depth + 1 or depth - 1
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  return find(s, "[,}%] \t\r\n]", i) or #s + 1
end

-- The members of a JSON object text: { key = raw value text }, the last of repeated keys
-- winning as in decoding; nil when the text is not an object.
function _M.members(s)
  local i = skip_ws(s, 1)
  if byte(s, i) ~= 123 then return nil end
  i = skip_ws(s, i + 1)
  local out = {}
  if byte(s, i) == 125 then return out end
  while true do
    if byte(s, i) ~= 34 then return nil end
    local kend = skip_string(s, i)
    if not kend then return nil end
    local key = core.decode(sub(s, i, kend - 1))
    i = skip_ws(s, kend)
    if byte(s, i) ~= 58 then return nil end
    i = skip_ws(s, i + 1)
    local vend = skip_value(s, i)
    if not vend or vend == i then return nil end
    if type(key) == "string" then out[key] = sub(s, i, vend - 1) end
    i = skip_ws(s, vend)
    local c = byte(s, i)
    if c == 125 then return out end
    if c ~= 44 then return nil end
    i = skip_ws(s, i + 1)
  end
end

return _M
