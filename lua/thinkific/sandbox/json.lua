-- JSON for the sandbox: thinkific.core does the work (exact integers, the null sentinel);
-- this adds objects with a fixed key order, so answers read like Thinkific's, and arrays
-- of already-encoded elements, so an empty list is always written [].
local core = require("thinkific.core")

local concat = table.concat

local M = {
  null = core.null,
  decode = core.decode,
}

-- Encodes a value; raises on a value that cannot be JSON (the sandbox's own data always can).
function M.encode(value)
  local text, err = core.encode(value)
  if not text then error("thinkific.sandbox: cannot encode JSON: " .. tostring(err), 2) end
  return text
end

-- {"k1":v1,"k2":v2,...} in the order of keys; keys whose value is nil are left out
-- (use json.null for a JSON null).
function M.object(keys, t)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil then parts[#parts + 1] = M.encode(k) .. ":" .. M.encode(v) end
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- [e1,e2,...] from texts that are already JSON.
function M.array_of(texts)
  return "[" .. concat(texts, ",") .. "]"
end

-- A JSON array of plain values (strings, numbers...), [] when empty.
function M.array(values)
  local texts = {}
  for i, v in ipairs(values) do texts[i] = M.encode(v) end
  return M.array_of(texts)
end

return M
