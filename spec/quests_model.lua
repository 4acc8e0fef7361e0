-- Shared by the quests specs: the rules of examples/enrollment_quests.lua, events shaped like
-- Thinkific's (spec/fixtures/payloads), and an independent model of what those rules give, to
-- compare the store with. The model is written from the rules' meaning, in memory, with none
-- of thinkific.quests' code.
local thinkific = require("thinkific")

local model = {}

model.RULES = {
  { name = "joined", on = "enrollment.created", xp = 5, say = "joined the quest" },
  { name = "lesson", on = "lesson.completed", xp = 10, say = "finished a lesson", once_per = "lesson" },
  { name = "quiz", on = "lesson.completed", xp = 15, say = "passed a quiz", once_per = "lesson",
    where = { ["lesson.type"] = "Quiz" } },
  { name = "first-lesson", on = "lesson.completed", xp = 25, say = "first lesson bonus",
    once_per = "student" },
  { name = "halfway", on = "enrollment.progress", xp = 20, badge = "Halfway Hero", progress = 50 },
  { name = "conqueror", on = { "enrollment.progress", "enrollment.completed" }, xp = 50,
    badge = "Course Conqueror", progress = 100 },
  { name = "webhook-wizard", on = "enrollment.completed", badge = "Webhook Wizard",
    where = { course_id = 4 } },
}

local BASE = 1709542800 -- 2024-03-04T09:00:00Z

--- model.time(seconds after BASE) -> ISO 8601 text
function model.time(offset)
  return os.date("!%Y-%m-%dT%H:%M:%S.000Z", BASE + math.floor(offset))
end

local function user(n)
  return { id = 100000 + n, first_name = "Student" .. n, last_name = "Q", email = "s" .. n .. "@example.com" }
end

--- model.event(id, topic, payload, offset) -> an envelope
function model.event(id, topic, payload, offset)
  local resource, action = topic:match("^(.-)%.(.*)$")
  return { id = tostring(id), resource = resource, action = action, tenant_id = "3",
    created_at = model.time(offset or 0), payload = payload }
end

function model.enrollment(n, course, percentage)
  return { id = 90000 + n, user = user(n), course = { id = course, name = "Course " .. course },
    course_id = course, percentage_completed = percentage or "0.0", free_trial = false,
    completed_at = thinkific.null, expiry_date = thinkific.null }
end

function model.lesson(n, course, lesson, kind)
  return { user = user(n), course = { id = course, name = "Course " .. course },
    lesson = { id = lesson, name = "Lesson " .. lesson, position = 0, type = kind or "Video" },
    chapter = { id = 1, name = "Chapter 1" }, enrollment = { id = 90000 + n } }
end

--- model.stream(count, seed) -> count events with unique ids, random but repeatable: students
-- 1..40 in courses 3, 4 and 5, lessons 1..12 of each course (every fourth a quiz).
function model.stream(count, seed)
  local state = seed or 7
  local function rand(n) -- a small LCG: the same stream on every Lua
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n + 1
  end
  local events = {}
  for i = 1, count do
    local n, course, kind = rand(40), ({ 3, 4, 5 })[rand(3)], rand(10)
    local id, at = ("2024%019d"):format(i), i * 7
    if kind <= 2 then
      events[i] = model.event(id, "enrollment.created", model.enrollment(n, course), at)
    elseif kind <= 6 then
      local lesson = course * 100 + rand(12)
      events[i] = model.event(id, "lesson.completed",
        model.lesson(n, course, lesson, lesson % 4 == 0 and "Quiz" or "Video"), at)
    elseif kind <= 9 then
      events[i] = model.event(id, "enrollment.progress",
        model.enrollment(n, course, ("%d.0"):format(rand(101) - 1)), at)
    else
      events[i] = model.event(id, "enrollment.completed", model.enrollment(n, course, "100.0"), at)
    end
  end
  return events
end

--- model.score(events) -> { ["course:user"] = { xp = n, badges = { name = true } } }
-- What the example's rules give under scope "course", each event id counted once.
function model.score(events)
  local seen, given, players = {}, {}, {}
  local function once(k)
    if given[k] then return false end
    given[k] = true
    return true
  end
  for _, e in ipairs(events) do
    if not seen[e.id] then
      seen[e.id] = true
      local p = e.payload
      local topic = e.resource .. "." .. e.action
      local course = p.course_id or (p.course and p.course.id)
      local u = p.user.id
      local k = course .. ":" .. u
      players[k] = players[k] or { xp = 0, badges = {} }
      local pl = players[k]
      local function badge(name, xp)
        if pl.badges[name] then return end
        pl.badges[name] = true
        pl.xp = pl.xp + xp
      end
      local progress = topic == "enrollment.completed" and 100 or tonumber(p.percentage_completed)
      if topic == "enrollment.created" then pl.xp = pl.xp + 5 end
      if topic == "lesson.completed" then
        if once("lesson:" .. u .. ":" .. p.lesson.id) then pl.xp = pl.xp + 10 end
        if p.lesson.type == "Quiz" and once("quiz:" .. u .. ":" .. p.lesson.id) then pl.xp = pl.xp + 15 end
        if once("first:" .. k) then pl.xp = pl.xp + 25 end
      end
      if topic == "enrollment.progress" and progress >= 50 and once("half:" .. k) then
        badge("Halfway Hero", 20)
      end
      if (topic == "enrollment.progress" or topic == "enrollment.completed") and progress >= 100
          and once("conq:" .. k) then
        badge("Course Conqueror", 50)
      end
      if topic == "enrollment.completed" and course == 4 then badge("Webhook Wizard", 0) end
    end
  end
  return players
end

--- model.stored(quests, players) -> the same shape, read from quests (scope "course").
function model.stored(quests, players)
  local out = {}
  for k in pairs(players) do
    local course, u = k:match("^(%d+):(%d+)$")
    local p = assert(quests:player(tonumber(u), tonumber(course)))
    local badges = {}
    for _, b in ipairs(p.badges) do badges[b] = true end
    out[k] = { xp = p.xp, badges = badges }
  end
  return out
end

--- model.delivery(event, secret) -> body, headers: a signed delivery of the event
function model.delivery(event, secret)
  local body = assert(thinkific.encode(event))
  return body, { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, secret),
    ["X-Thinkific-Topic"] = event.resource .. "." .. event.action, ["X-Thinkific-Subdomain"] = "acme" }
end

return model
