-- Structured values read out of a fuzzer's bytes, the same way under Lua 5.4 and LuaJIT (no
-- string.unpack): fields split on a separator, and a reader of bytes, choices and numbers.
local _M = {}

-- Two bytes that no valid UTF-8 text holds: the separator of an input's fields.
_M.SEP = "\254\255"

-- The first n - 1 fields of s, then everything after them as the last; missing ones are "".
function _M.fields(s, n)
  local out, at = {}, 1
  for i = 1, n - 1 do
    local from, to = s:find(_M.SEP, at, true)
    if not from then
      out[i] = s:sub(at)
      at = #s + 1
    else
      out[i] = s:sub(at, from - 1)
      at = to + 1
    end
  end
  out[n] = s:sub(at)
  return out
end

-- Numbers a parser or a cast is likely to get wrong.
_M.NUMBERS = {
  0, -0.0, 1, -1, 0.5, 1e-300, 2^31 - 1, 2^31, 2^32, 2^53 - 1, 2^53, 2^53 + 2, -2^53, 2^63,
  -2^63, 2^64, 1e300, -1e300, math.huge, -math.huge, 0 / 0, 599.5, 100, 199, 200, 204, 299,
  300, 417, 422, 429, 503, 599, 600, 1e9, 1e12, 1e15,
}
if math.type then -- Lua 5.4 integers at their edges
  for _, n in ipairs({ math.maxinteger, math.mininteger, 9007199254740993, -9007199254740993 }) do
    _M.NUMBERS[#_M.NUMBERS + 1] = n
  end
end

local Reader = {}
Reader.__index = Reader

function _M.reader(s)
  return setmetatable({ s = s, pos = 1 }, Reader)
end

function Reader:left()
  return #self.s - self.pos + 1
end

-- One byte (0 when none is left).
function Reader:byte()
  local b = self.s:byte(self.pos)
  if not b then return 0 end
  self.pos = self.pos + 1
  return b
end

-- One of the values of list, by the next byte.
function Reader:choose(list)
  return list[self:byte() % #list + 1]
end

-- Up to n bytes as a string.
function Reader:bytes(n)
  local s = self.s:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + #s
  return s
end

-- A short string: a length byte, then that many bytes (fewer at the end of the input).
function Reader:string()
  return self:bytes(self:byte() % 48)
end

-- A number: one of NUMBERS, a small integer, or mantissa * 2^exponent from the bytes.
function Reader:number()
  local how = self:byte() % 4
  if how == 0 then return self:choose(_M.NUMBERS) end
  if how == 1 then return self:byte() - 128 end
  local mantissa = self:byte() * 65536 + self:byte() * 256 + self:byte()
  local n = mantissa * 2 ^ (self:byte() - 150)
  if how == 3 then n = -n end
  if math.type and self:byte() % 2 == 0 and n == math.floor(n) and math.abs(n) < 2^63 then
    n = math.tointeger(n) or n -- Lua 5.4: the integer subtype too
  end
  return n
end

return _M
