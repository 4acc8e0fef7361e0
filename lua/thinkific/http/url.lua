-- Request targets: percent-decoding, path segments, query strings.
local _M = {}

local function hex_byte(h)
  return string.char(tonumber(h, 16))
end

-- Decodes %XX escapes (invalid ones stay as they are).
function _M.decode(s)
  return (s:gsub("%%(%x%x)", hex_byte))
end

-- "/a/b%2Fc" -> { "a", "b/c" }: split on "/" first, then decode each segment.
-- "" -> {}; a trailing slash gives a last empty segment.
function _M.segments(path)
  local segs = {}
  if path == "" or path == "/" then return segs end
  for seg in (path:sub(2) .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = _M.decode(seg) end
  return segs
end

-- "a=1&b=x+y" -> { a = "1", b = "x y" }; the first of repeated names wins.
function _M.parse_query(query)
  local q = {}
  for pair in (query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = _M.decode((k:gsub("+", " ")))
    if q[k] == nil then q[k] = _M.decode((v:gsub("+", " "))) end
  end
  return q
end

return _M
