-- The invariants the targets check: each raises (and so crashes the fuzzer, or fails the spec)
-- with a message that says which one broke.
local core = require("thinkific.core")

local _M = {}

local function fail(fmt, ...)
  error(string.format(fmt, ...), 2)
end
_M.fail = fail

-- err is an error of API.md: the error metatable, a kind of kinds, a one-string message, and a
-- tostring that holds the message.
function _M.error_value(err, kinds)
  if not core.is_error(err) then fail("not an error object: %s", tostring(err)) end
  if not kinds[err.kind] then fail("unexpected error kind %s", tostring(err.kind)) end
  if type(err.message) ~= "string" then fail("error message is a %s", type(err.message)) end
  local text = tostring(err)
  if type(text) ~= "string" or not text:find(err.message, 1, true) then
    fail("tostring(err) lost the message: %q", tostring(text))
  end
  return err
end

-- A value or nil, err: never both, never neither.
function _M.result(v, err, kinds)
  if v == nil then return nil, _M.error_value(err, kinds) end
  if err ~= nil then fail("a value and an error at once") end
  return v
end

-- Whether b, read back from JSON, is a: the same values with every integer beyond 2^53 as the
-- nearest float (JSON numbers are doubles), and an empty array the same as an empty object.
local function json_equal(a, b)
  local ta = type(a)
  if ta == "number" and type(b) == "number" then
    if a ~= a then return false end
    return a == b or (math.abs(a) > 2^53 and a + 0.0 == b + 0.0)
  end
  if ta ~= "table" then return a == b end
  if type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not json_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
_M.json_equal = json_equal

-- No byte of JSON text may be a raw NUL, in a string or between tokens.
function _M.no_nul(text, what)
  if text:find("\0", 1, true) then fail("%s accepted text with a raw NUL byte", what) end
end

return _M
