-- Argument checks. Errors are raised at the user's call: "bad argument #n to 'name' (...)", with the
-- position of the first stack level outside lua-thinkific's own files.
local _M = {}

local DIR = debug.getinfo(1, "S").source:match("^(@.*/)[^/]*$") or "@"
local getinfo, error = debug.getinfo, error

local function user_level()
  local level = 3 -- 1: user_level, 2: the raising function here, 3: its caller
  while true do
    local info = getinfo(level, "S")
    if not info or info.source:sub(1, #DIR) ~= DIR then return level - 1 end
    level = level + 1
  end
end

-- n = 0 speaks of self: "calling 'name' on bad self (...)".
function _M.error(n, fname, msg)
  local where = n == 0 and ("calling '%s' on bad self"):format(fname)
    or ("bad argument #%d to '%s'"):format(n, fname)
  error(("%s (%s)"):format(where, msg), user_level())
end

-- Checks webhook fields {topic =, target_url =}: a table, no other key, both non-empty
-- strings; raises argument n of fname otherwise, each message after `prefix` (e.g.
-- "entry 2: "; default none). Returns a copy with just the two fields.
function _M.webhook_fields(fields, n, fname, prefix)
  prefix = prefix or ""
  if type(fields) ~= "table" then
    _M.error(n, fname, prefix .. "table expected, got " .. type(fields))
  end
  for k in pairs(fields) do
    if k ~= "topic" and k ~= "target_url" then
      _M.error(n, fname, ("%sunknown field '%s'"):format(prefix, tostring(k)))
    end
  end
  for _, k in ipairs{ "topic", "target_url" } do
    local v = fields[k]
    if type(v) ~= "string" or v == "" then
      _M.error(n, fname, ("%sfield '%s' is required (a non-empty string)"):format(prefix, k))
    end
  end
  return { topic = fields.topic, target_url = fields.target_url }
end

-- Whether the string s holds no CR, LF or NUL: it may go into a header or a request line.
function _M.one_line(s)
  return not (s:find("[\r\n]") or s:find("\0", 1, true))
end

-- An http(s) URL read as RFC 3986 reads it: scheme, user info (nil without one), host[:port]
-- and the rest (path, query, fragment). The authority ends at the first '/', '?' or '#'; the
-- user info is what precedes its last '@'. nil when url is not scheme://...
function _M.url_parts(url)
  local scheme, after = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil end
  local authority, rest = after:match("^([^/?#]*)(.*)$")
  local userinfo, host = authority:match("^(.*)@(.*)$")
  return scheme, userinfo, host or authority, rest
end

-- Why the '@' signs of url leave its user info open to more than one reading, or nil. One '@'
-- before the host is user info; an '@' after the host (a password holding '/', '?' or '#')
-- or a second one (a password holding '@') is read differently by RFC 3986, libcurl and a
-- reader's eye, so what is a password, and must not be shown, would be a guess.
function _M.userinfo_problem(url)
  local scheme, userinfo, _, rest = _M.url_parts(url)
  if not scheme or not (rest:find("@", 1, true) or (userinfo or ""):find("@", 1, true)) then
    return nil
  end
  return "may hold one '@', before the host: percent-encode any other as %40, and '/', '?' "
    .. "or '#' in a user name or password as %2F, %3F or %23"
end

-- Functions and tables with a __call metamethod.
function _M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

return _M
