-- What quests reads from an event (API.md, "Quests"): the student (payload.user.id, or
-- payload.id for user.* topics) and their name, the course (payload.course_id or
-- payload.course.id), the lesson (payload.lesson.id), the course progress, and the time
-- (created_at, as epoch seconds). Ids are kept as text: the stores' keys.
local integer = require("thinkific.integer")
local intake = require("thinkific.intake")

local type, tonumber, tostring = type, tonumber, tostring
local floor = math.floor

local _M = {}

local id_text = integer.id_text

local function id_of(v)
  local text = id_text(v)
  if text == nil or text == "" then return nil end
  return text
end

-- A field of a table, or nil when t is not a table (a payload may hold null anywhere).
local function get(t, k)
  if type(t) == "table" then return t[k] end
  return nil
end

-- Days from 1970-01-01 to the date (proleptic Gregorian), without os.time's local time zone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- facts.time(text) -> epoch seconds of an ISO 8601 time ("2024-03-04T09:00:00.000Z",
-- "…+02:00"), or nil.
function _M.time(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, h, mi, s, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  local fraction, zone = rest:match("^(%.?%d*)(.*)$")
  local t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
  if fraction ~= "" and fraction ~= "." then t = t + tonumber("0" .. fraction) end
  if zone == "Z" or zone == "z" or zone == "" then return t end
  local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local offset = tonumber(zh) * 3600 + tonumber(zm) * 60
  return sign == "+" and t - offset or t + offset
end

local function full_name(user)
  local first, last = get(user, "first_name"), get(user, "last_name")
  first = type(first) == "string" and first ~= "" and first or nil
  last = type(last) == "string" and last ~= "" and last or nil
  if first and last then return first .. " " .. last end
  return first or last
end

--- facts.of(event, now) -> { event_id, topic, user, name, course, lesson, progress, at }
-- topic: canonical ("subscription.cancelled"); user, course, lesson: ids as text or nil;
-- progress: a number or nil (enrollment.completed counts as 100); at: created_at, else now.
function _M.of(event, now)
  local payload = event.payload
  local topic = intake.canonical(tostring(event.resource) .. "." .. tostring(event.action))
  local resource = event.resource
  local user = resource == "user" and payload or get(payload, "user")
  local progress
  if topic == "enrollment.completed" then
    progress = 100
  else
    progress = tonumber(get(payload, "percentage_completed"))
  end
  return {
    event_id = id_of(event.id),
    topic = topic,
    user = id_of(get(user, "id")),
    name = full_name(user),
    course = id_of(get(payload, "course_id")) or id_of(get(get(payload, "course"), "id")),
    lesson = id_of(get(get(payload, "lesson"), "id")),
    progress = progress,
    at = _M.time(event.created_at) or now,
  }
end

--- facts.id(text) -> an id as the API gives it: an integer for digits within 2^53, else the text.
function _M.id(text)
  if type(text) == "string" and text:match("^%-?%d+$") and #text <= 16 then
    local n = tonumber(text)
    if n and n >= -integer.MAX_EXACT and n <= integer.MAX_EXACT then
      return math.tointeger and math.tointeger(n) or n
    end
  end
  return text
end

return _M
