-- Enrollment quests: students earn experience points and badges as they work through a course.
--
-- The quests below are the whole game. Each line is one rule: when Thinkific reports `on`
-- (and the event matches `where` and `progress`, if given), the student gets `xp` points
-- and/or a `badge`. Edit them freely: thinkific.quests keeps the score in a store (here a
-- SQLite file in a temporary directory), gives each award once whatever Thinkific delivers
-- twice, and the plumbing further down plays a few students' week against a local sandbox.
-- Run it from the source tree with
--   sh scripts/run examples/enrollment_quests.lua

-------------------------------------------------------------------------------------------
-- THE QUESTS
--   name      what the rule is called (each its own: it keys the awards)
--   on        what happened: a Thinkific topic, or a list of them
--   xp        experience points to give
--   badge     a badge to give (a student gets each badge once)
--   say       what the game announces
--   once_per  "student": give it once per student, ever; "lesson" or "course": once per
--             student and lesson, or course
--   progress  when the student's progress in a course first reaches this percentage
--   where     only when the event has these values (fields of the payload, "a.b" for nested)
-------------------------------------------------------------------------------------------
local QUESTS = {
  -- Joining, and each lesson finished (a lesson counts once: watching it again gives nothing).
  { name = "joined", on = "enrollment.created", xp = 5, say = "joined the quest" },
  { name = "lesson", on = "lesson.completed", xp = 10, say = "finished a lesson", once_per = "lesson" },
  { name = "quiz", on = "lesson.completed", xp = 15, say = "passed a quiz", once_per = "lesson",
    where = { ["lesson.type"] = "Quiz" } },
  -- A bonus for the very first lesson.
  { name = "first-lesson", on = "lesson.completed", xp = 25, say = "first lesson bonus",
    once_per = "student" },
  -- Badges on the way through a course.
  { name = "halfway", on = "enrollment.progress", xp = 20, badge = "Halfway Hero", progress = 50 },
  { name = "conqueror", on = { "enrollment.progress", "enrollment.completed" }, xp = 50,
    badge = "Course Conqueror", progress = 100 },
  -- A badge of its own for finishing "Introduction to Webhooks" (course 4).
  { name = "webhook-wizard", on = "enrollment.completed", badge = "Webhook Wizard",
    where = { course_id = 4 } },
}

-------------------------------------------------------------------------------------------
-- The plumbing: the game on a router, a sandbox, a receiver, and a week of events.
-------------------------------------------------------------------------------------------
local thinkific = require("thinkific")
local sandbox = require("thinkific.sandbox")
local listen = require("thinkific.listen")

local WAIT = 10   -- seconds we wait, at most, for one event to be delivered and handled

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 '" .. dir .. "'"))
local quests = assert(thinkific.quests{ store = "sqlite:" .. dir .. "/quests.db", rules = QUESTS })
local ran, rewarded     -- for the current delivery: the router ran it; the game gave something

-- What the game announces: the player's first name, then what they got.
quests:on_award(function(player, award)
  local news = {}
  if award.xp ~= 0 then news[#news + 1] = ("%+d XP"):format(award.xp) end
  if award.say then news[#news + 1] = award.say end
  if award.badge then news[#news + 1] = "badge: " .. award.badge end
  print(("      %-7s %s"):format(player.name:match("^%S+"), table.concat(news, ", ")))
  rewarded = true
end)

local sb <close> = sandbox.spawn{ port = 0 }
local router = thinkific.router{ secret = sb.secret }
quests:attach(router)
router:on("*", function() ran = true end)
local failures = 0
router:on_error(function(err)
  failures = failures + 1
  io.stderr:write("a quest rule failed: ", err, "\n")
end)

-- The receiver calls its log once for each delivery it answered: that is what we wait for.
local answered = 0
local server, listen_err = listen.serve{ router = router, host = "127.0.0.1", port = 0,
  log = function() answered = answered + 1 end }
if not server then error(listen_err) end

-- One webhook per topic the quests listen to, pointing at the receiver.
local client <close> = thinkific.new{ api_key = sb.api_key, base_url = sb.url }
for _, topic in ipairs(quests.topics) do
  local webhook, err = client:create_webhook{ topic = topic, target_url = server.url }
  if not webhook then error(err) end
end
print(("Quests on %d topics, %d rules; sandbox %s, receiver %s"):format(#quests.topics, #QUESTS,
  sb.url, server.url))

-- The course and its students, shaped like Thinkific's payloads (spec/fixtures/payloads).
local COURSE = { id = 4, name = "Introduction to Webhooks" }
local LESSONS = {
  { id = 24220, name = "Getting started with Webhooks", position = 0, type = "Video" },
  { id = 24221, name = "Topics and payloads", position = 1, type = "Text" },
  { id = 24222, name = "Signatures and retries", position = 2, type = "Video" },
  { id = 24223, name = "Webhooks quiz", position = 3, type = "Quiz" },
}
local STUDENTS = {
  robert = { id = 123456, first_name = "Robert", last_name = "Smith", email = "robert@example.com" },
  aisha = { id = 123457, first_name = "Aisha", last_name = "Khan", email = "aisha@example.com" },
  mateo = { id = 123458, first_name = "Mateo", last_name = "Rossi", email = "mateo@example.com" },
  lena = { id = 123459, first_name = "Lena", last_name = "Berg", email = "lena@example.com" },
}
local ENROLLMENT_IDS = { robert = 97472, aisha = 97473, mateo = 97474, lena = 97475 }

local function enrollment(who, percentage, completed_at)
  local at = "2024-03-04T09:00:00.000Z"
  return { id = ENROLLMENT_IDS[who], user = STUDENTS[who], course = COURSE,
    course_id = COURSE.id, percentage_completed = percentage, free_trial = false,
    completed_at = completed_at or thinkific.null, expiry_date = thinkific.null,
    activated_at = at, started_at = at, created_at = at, updated_at = completed_at or at }
end

local function lesson(who, n)
  return { user = STUDENTS[who], course = COURSE, lesson = LESSONS[n],
    chapter = { id = 123, name = "Chapter 1" }, enrollment = { id = ENROLLMENT_IDS[who] } }
end

-- The week, in order: (topic, payload, what the story says), or ("again", an earlier step,
-- what the story says) for a delivery Thinkific makes a second time (it does, at times).
local WEEK = {
  { "enrollment.created", enrollment("robert", "0.0"), "Robert enrolls" },
  { "enrollment.created", enrollment("aisha", "0.0"), "Aisha enrolls" },
  { "lesson.completed", lesson("robert", 1), "Robert finishes lesson 1" },
  { "enrollment.progress", enrollment("robert", "25.0"), "Robert is at 25 %" },
  { "again", 3, "Thinkific delivers Robert's lesson 1 once more (the same event)" },
  { "enrollment.created", enrollment("mateo", "0.0"), "Mateo enrolls" },
  { "lesson.completed", lesson("aisha", 1), "Aisha finishes lesson 1" },
  { "enrollment.progress", enrollment("aisha", "25.0"), "Aisha is at 25 %" },
  { "lesson.completed", lesson("aisha", 2), "Aisha finishes lesson 2" },
  { "enrollment.progress", enrollment("aisha", "50.0"), "Aisha is at 50 %" },
  { "lesson.completed", lesson("robert", 2), "Robert finishes lesson 2" },
  { "enrollment.progress", enrollment("robert", "50.0"), "Robert is at 50 %" },
  { "lesson.completed", lesson("mateo", 1), "Mateo finishes lesson 1" },
  { "enrollment.progress", enrollment("mateo", "25.0"), "Mateo is at 25 %" },
  { "lesson.completed", lesson("mateo", 1), "Mateo watches lesson 1 again" },
  { "lesson.completed", lesson("aisha", 3), "Aisha finishes lesson 3" },
  { "enrollment.progress", enrollment("aisha", "75.0"), "Aisha is at 75 %" },
  { "enrollment.created", enrollment("lena", "0.0"), "Lena enrolls" },
  { "lesson.completed", lesson("robert", 3), "Robert finishes lesson 3" },
  { "enrollment.progress", enrollment("robert", "75.0"), "Robert is at 75 %" },
  { "lesson.completed", lesson("aisha", 4), "Aisha passes the quiz" },
  { "enrollment.progress", enrollment("aisha", "100.0"), "Aisha is at 100 %" },
  { "enrollment.completed", enrollment("aisha", "100.0", "2024-03-08T17:30:00.000Z"),
    "Aisha completes the course" },
}

-- One event at a time, as in a real week: trigger it, then serve until its delivery was
-- answered (the router ran the rules, or skipped an event it had handled already).
local sent = {}   -- step number -> the envelope the sandbox delivered
for n, step in ipairs(WEEK) do
  print(("%2d  %s"):format(n, step[3]))
  local result, err
  if step[1] == "again" then
    result, err = sb:trigger(sent[step[2]])     -- a whole envelope: same id, same payload
    if not result then error(err) end
  else
    result, err = sb:trigger(step[1], step[2])
    if not result then error(err) end
    local resource, action = step[1]:match("^(.-)%.(.*)$")
    sent[n] = { id = result.event_id, resource = resource, action = action, payload = step[2] }
  end
  ran, rewarded = false, false
  local before = answered
  if not server:run_until(function() return answered > before end, WAIT) then
    io.stderr:write(("enrollment_quests: event %s was not delivered within %d s\n"):format(
      result.event_id, WAIT))
    server:close()
    os.exit(1, true)
  end
  if not ran then
    print("      (already handled: the router skipped it)")
  elseif not rewarded then
    print("      (nothing new)")
  end
end
server:close()

-- The leaderboard: most experience first (ties: who got there first), with each one's badges.
print()
print("Leaderboard")
for _, row in ipairs(assert(quests:leaderboard{ course_id = COURSE.id })) do
  local player = assert(quests:player(row.user_id, COURSE.id))
  local line = ("%2d. %-7s %4d XP  %s"):format(row.rank, row.name:match("^%S+"), row.xp,
    table.concat(player.badges, ", "))
  print((line:gsub("%s+$", "")))
end
quests:close()
os.execute("rm -rf '" .. dir .. "'")
if failures > 0 then os.exit(1, true) end
