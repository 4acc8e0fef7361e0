-- Times on the command line: durations ("7d", "12h", "30m", "45s", "1h30m"), ISO 8601 dates
-- and times read as epoch seconds, and epoch seconds shown as ISO 8601 in UTC.
local _M = {}

local UNITS = { d = 86400, h = 3600, m = 60, s = 1 }

--- times.duration(text) -> seconds | nil, message
function _M.duration(text)
  local total, rest = 0, text
  if rest == "" then return nil, "is empty" end
  while rest ~= "" do
    local n, unit, after = rest:match("^(%d+)([dhms])(.*)$")
    if not n or #n > 9 then
      return nil, "must be a number and a unit: d, h, m or s (7d, 12h, 30m, 45s, 1h30m)"
    end
    total, rest = total + tonumber(n) * UNITS[unit], after
  end
  return total
end

-- Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's
-- days_from_civil): no time zone, unlike os.time.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local DAYS_IN = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- times.iso8601(text) -> epoch seconds | nil, message
-- "2024-05-01", "2024-05-01T10:00", "2024-05-01T10:00:00", with fractions of a second, and
-- "Z" or "+02:00"/"-0530" (none: UTC); a space may stand for the "T".
function _M.iso8601(text)
  local bad = "must be an ISO 8601 date or time, e.g. 2024-05-01 or 2024-05-01T10:00:00Z"
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil, bad end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > DAYS_IN[mo]
      or (mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0))) then
    return nil, bad
  end
  local seconds = days_from_civil(y, mo, d) * 86400
  if rest == "" then return seconds end
  local h, mi, after = rest:match("^[T ](%d%d):(%d%d)(.*)$")
  if not h then return nil, bad end
  h, mi = tonumber(h), tonumber(mi)
  local sec, zone = after:match("^:(%d%d%.?%d*)(.*)$")
  if sec then sec = tonumber(sec) else sec, zone = 0, after end
  if h > 23 or mi > 59 or sec >= 61 then return nil, bad end
  local offset = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil, bad end
    offset = (tonumber(zh) * 3600 + tonumber(zm) * 60) * (sign == "+" and 1 or -1)
  end
  return seconds + h * 3600 + mi * 60 + sec - offset
end

--- times.show(epoch) -> "2024-05-01T10:00:00Z" (UTC, whole seconds), "-" for nil
function _M.show(epoch)
  if epoch == nil then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(epoch))
end

--- times.age(seconds) -> "45 s", "12 min", "3 h", "2 d"
function _M.age(seconds)
  if seconds < 120 then return string.format("%.1f s", seconds) end
  if seconds < 7200 then return string.format("%d min", seconds // 60) end
  if seconds < 172800 then return string.format("%d h", seconds // 3600) end
  return string.format("%d d", seconds // 86400)
end

return _M
