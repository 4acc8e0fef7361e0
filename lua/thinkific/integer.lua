-- Integers and ids as text, the one home of the rule in Lua (src/number.c is C's): which
-- numbers stand for integers, which values are ids, and how an id is written. Requires
-- nothing, so that any module (the sandbox's option checks under LuaJIT included) can use it.
local type, format = type, string.format
local math_type = math.type

local _M = {}

-- 2^53: every integer up to it is exact in a double; beyond, doubles skip integers.
_M.MAX_EXACT = 2 ^ 53

-- Whether n has an integral value within +-2^53 (integer or float; NaN and inf fail).
local function integral(n)
  return type(n) == "number" and n % 1 == 0 and n >= -_M.MAX_EXACT and n <= _M.MAX_EXACT
end

-- Is v an integer? Lua 5.3+: of the integer subtype. LuaJIT, which has no integers: a whole
-- number within +-2^53.
_M.is_integer = math_type and function(v) return math_type(v) == "integer" end or integral

-- Is v an id the API takes: a non-empty string or an integer?
function _M.is_id(v)
  if type(v) == "string" then return v ~= "" end
  return _M.is_integer(v)
end

-- The text of an id: a string as it is; an integer, or an integral float within +-2^53, with
-- every digit (tostring gives LuaJIT's 15+ digit numbers an exponent, and 5.4's 5.0 a ".0");
-- nil for anything else.
function _M.id_text(v)
  if type(v) == "string" then return v end
  if (math_type and math_type(v) == "integer") or integral(v) then return format("%d", v) end
  return nil
end

return _M
