-- Levels of thinkific.quests: the XP needed to reach each level, from a list ({ 0, 100, 250 })
-- or a curve ({ curve = "linear" | "snowball", base = 100, count = 10 }), and the level of an
-- XP total. Level 1 is reached at 0 XP.
local integer = require("thinkific.integer")

local type, pairs, tostring, floor = type, pairs, tostring, math.floor
local concat = table.concat

local _M = {}

_M.DEFAULT = { curve = "linear", base = 100, count = 10 }
_M.MAX_COUNT = 1000
local MAX_XP = 2 ^ 53

local CURVES = {
  linear = function(base, n) return base * (n - 1) end,
  snowball = function(base, n) return floor(base * (n - 1) * n / 2) end,
}

local function whole(v) return integer.is_integer(v) and v >= 0 and v <= MAX_XP end

-- The thresholds of spec (a list: thresholds[n] is the XP of level n), or nil and why not.
function _M.thresholds(spec)
  if type(spec) ~= "table" then return nil, "levels must be a list of XP or a curve, got " .. type(spec) end
  if spec.curve ~= nil then
    for k in pairs(spec) do
      if k ~= "curve" and k ~= "base" and k ~= "count" then
        return nil, "a levels curve takes curve, base and count, not '" .. tostring(k) .. "'"
      end
    end
    local curve = CURVES[spec.curve]
    if not curve then
      return nil, "levels curve must be \"linear\" or \"snowball\", got " .. tostring(spec.curve)
    end
    if not (whole(spec.base) and spec.base >= 1) then
      return nil, "levels base must be a whole number of XP >= 1"
    end
    if not (integer.is_integer(spec.count) and spec.count >= 2 and spec.count <= _M.MAX_COUNT) then
      return nil, "levels count must be a whole number 2.." .. _M.MAX_COUNT
    end
    local list = {}
    for n = 1, spec.count do list[n] = curve(floor(spec.base), n) end
    if list[#list] > MAX_XP then return nil, "levels curve goes past 2^53 XP" end
    return list
  end
  local n = #spec
  if n == 0 then return nil, "levels must list the XP of each level, starting with 0" end
  if n > _M.MAX_COUNT then return nil, "levels may list at most " .. _M.MAX_COUNT .. " levels" end
  for k in pairs(spec) do
    if not (integer.is_integer(k) and k >= 1 and k <= n) then
      return nil, "levels must be a plain list of XP (or a curve), found the key '" .. tostring(k) .. "'"
    end
  end
  local list = {}
  for i = 1, n do
    local v = spec[i]
    if not whole(v) then return nil, ("levels[%d] must be a whole number of XP >= 0"):format(i) end
    if i == 1 and v ~= 0 then return nil, "levels must start with 0 (level 1 is reached at 0 XP)" end
    if i > 1 and v <= list[i - 1] then
      return nil, ("levels must grow: levels[%d] = %d is not above levels[%d] = %d"):format(i, v,
        i - 1, list[i - 1])
    end
    list[i] = floor(v)
  end
  return list
end

-- The level of an XP total and the XP of the next level (nil at the top).
function _M.level(list, xp)
  local lo, hi = 1, #list
  if xp < 0 then return 1, list[2] end
  while lo < hi do -- the last level whose threshold is <= xp
    local mid = floor((lo + hi + 1) / 2)
    if list[mid] <= xp then lo = mid else hi = mid - 1 end
  end
  return lo, list[lo + 1]
end

-- The list as text, for messages: "{0, 100, 250}" (long lists cut).
function _M.show(list)
  if #list <= 8 then return "{" .. concat(list, ", ") .. "}" end
  return ("{%s, …, %d} (%d levels)"):format(concat(list, ", ", 1, 6), list[#list], #list)
end

return _M
