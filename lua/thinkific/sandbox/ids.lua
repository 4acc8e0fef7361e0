-- Thinkific-style ids and timestamps. An id is 23 digits: the UTC time to the second
-- (YYYYMMDDhhmmss) and 9 digits of nanoseconds, as in "20200227213233625839530".
local socket = require("socket")

local floor, format, date = math.floor, string.format, os.date
local byte, char, unpack = string.byte, string.char, table.unpack

local _M = {}

-- Adds one to a string of decimal digits of fixed width.
local function increment(digits)
  local d = { byte(digits, 1, -1) }
  local i = #d
  while i > 0 do
    if d[i] == 57 then
      d[i] = 48
      i = i - 1
    else
      d[i] = d[i] + 1
      break
    end
  end
  return char(unpack(d))
end

local Generator = {}
Generator.__index = Generator

-- Ids from one generator are unique and strictly increasing, so creation order is id order
-- (the clock only gives microseconds, and two calls may read the same time).
function Generator:next()
  local t = socket.gettime()
  local sec = floor(t)
  local id = date("!%Y%m%d%H%M%S", sec) .. format("%09d", floor((t - sec) * 1e9))
  if id <= self.last then id = increment(self.last) end
  self.last = id
  return id
end

function _M.generator()
  return setmetatable({ last = "" }, Generator)
end

-- The creation time written in an id, as Thinkific writes it: 2020-02-27T21:32:33.625839530Z
function _M.time_of(id)
  return format("%s-%s-%sT%s:%s:%s.%sZ", id:sub(1, 4), id:sub(5, 6), id:sub(7, 8),
    id:sub(9, 10), id:sub(11, 12), id:sub(13, 14), id:sub(15, 23))
end

-- The current time with nanosecond digits (updated_at).
function _M.now()
  local t = socket.gettime()
  local sec = floor(t)
  return date("!%Y-%m-%dT%H:%M:%S", sec) .. format(".%09dZ", floor((t - sec) * 1e9))
end

-- The current time with milliseconds, as event envelopes carry it: 2018-01-26T22:23:20.808Z
function _M.now_ms()
  local t = socket.gettime()
  local sec = floor(t)
  return date("!%Y-%m-%dT%H:%M:%S", sec) .. format(".%03dZ", floor((t - sec) * 1e3))
end

function _M.is_id(s)
  return type(s) == "string" and #s == 23 and s:find("^%d+$") ~= nil
end

return _M
