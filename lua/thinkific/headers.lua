-- Header look-ups that do not depend on how the caller spelled the names.
local pairs, type, lower = pairs, type, string.lower

local _M = {}

-- headers[name] for a lower-case name, else the first entry whose name matches in any case.
function _M.find(headers, name)
  local v = headers[name]
  if v ~= nil then return v end
  for k, value in pairs(headers) do
    if type(k) == "string" and lower(k) == name then return value end
  end
  return nil
end

return _M
