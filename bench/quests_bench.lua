-- Scoring speed: thinkific.quests with the 7 rules of examples/enrollment_quests.lua on SQLite,
-- against router:dispatch of the same events to the example's former in-memory handlers (its
-- engine before thinkific.quests, below: Lua tables, nothing durable), and the cost of the
-- sandbox (the same rules from a rules file run in the C sandbox, against a table).
--
--   lua5.4 bench/quests_bench.lua DIR [ROUNDS] [EVENTS] [SECONDS]
--
-- DIR: a directory for the stores (a fresh SQLite file per bench and round). Each round every
-- bench scores its own copy of the same EVENTS events (an enrollment stream: 40 students,
-- 3 courses, 36 lessons), in bursts that take turns (bench/turns.lua):
--   memory     router:dispatch to the in-memory handlers
--   batch      quests:score on 100 events at a time: one transaction, one disk sync per batch
--   attached   router:dispatch to quests:attach's handler: one transaction per event (what a
--              receiver or an inbox worker does; the disk sync of each commit dominates)
--   file       as batch, the rules from a sandboxed rules file (they have no `when`: the
--              sandbox is not entered for an event)
--   when-table as batch, each rule with a `when` (returning true), the rules a table
--   when-file  the same rules from a sandboxed rules file: each event is copied into the
--              sandbox and the seven functions run there
-- Prints "row" and "ratio" lines as the other bench scripts do (run.sh prints them).
local thinkific = require("thinkific")
local BENCH_DIR = arg[0]:match("^(.*)/[^/]*$") or "."
local stats = dofile(BENCH_DIR .. "/stats.lua")
local turns = dofile(BENCH_DIR .. "/turns.lua")

local USAGE = "usage: quests_bench.lua DIR [ROUNDS] [EVENTS] [SECONDS]"
local dir = assert(arg[1], USAGE)
local rounds = math.tointeger(tonumber(arg[2] or 5)) or 5
local total = math.tointeger(tonumber(arg[3] or 2000)) or 2000
local max_seconds = tonumber(arg[4] or 2) or 2

local BATCH = 100
local ATTACHED = math.max(1, total // 10) -- one disk sync each: a tenth of the events
local RATIO_TARGET = 0.3                   -- batch / memory, events/s
local SANDBOX_TARGET = 1 / 1.5             -- file / table, events/s: the sandbox costs <= 1.5x
local now = require("thinkific.core").now

-- The rules of examples/enrollment_quests.lua.
local RULES = {
  { name = "joined", on = "enrollment.created", xp = 5, say = "joined the quest" },
  { name = "lesson", on = "lesson.completed", xp = 10, say = "finished a lesson", once_per = "lesson" },
  { name = "quiz", on = "lesson.completed", xp = 15, say = "passed a quiz", once_per = "lesson",
    where = { ["lesson.type"] = "Quiz" } },
  { name = "first-lesson", on = "lesson.completed", xp = 25, say = "first lesson bonus", once_per = "student" },
  { name = "halfway", on = "enrollment.progress", xp = 20, badge = "Halfway Hero", progress = 50 },
  { name = "conqueror", on = { "enrollment.progress", "enrollment.completed" }, xp = 50,
    badge = "Course Conqueror", progress = 100 },
  { name = "webhook-wizard", on = "enrollment.completed", badge = "Webhook Wizard", where = { course_id = 4 } },
}

-- The same rules as a rules file's text; with_when: each rule with `when` returning true.
local function rules_text(with_when)
  local parts = { "return {" }
  for _, r in ipairs(RULES) do
    local fields = {}
    for k, v in pairs(r) do
      local value
      if type(v) == "table" and k == "on" then
        value = '{ "' .. table.concat(v, '", "') .. '" }'
      elseif type(v) == "table" then
        local kv = {}
        for wk, wv in pairs(v) do
          kv[#kv + 1] = ("[%q] = %s"):format(wk, type(wv) == "string" and ("%q"):format(wv) or tostring(wv))
        end
        value = "{ " .. table.concat(kv, ", ") .. " }"
      else
        value = type(v) == "string" and ("%q"):format(v) or tostring(v)
      end
      fields[#fields + 1] = k .. " = " .. value
    end
    if with_when then fields[#fields + 1] = "when = function(event, player) return event.payload ~= nil end" end
    parts[#parts + 1] = "  { " .. table.concat(fields, ", ") .. " },"
  end
  parts[#parts + 1] = "}"
  return table.concat(parts, "\n")
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local FILE = write(dir .. "/quests-rules.lua", rules_text(false))
local WHEN_FILE = write(dir .. "/quests-rules-when.lua", rules_text(true))
local WHEN_TABLE = assert(load(rules_text(true)))()

-- The events: an enrollment stream shaped like Thinkific's payloads.
local function stream(count)
  local state = 7
  local function rand(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n + 1
  end
  local events = {}
  for i = 1, count do
    local n, course = rand(40), ({ 3, 4, 5 })[rand(3)]
    local user = { id = 100000 + n, first_name = "Student" .. n, last_name = "Q", email = "s" .. n .. "@example.com" }
    local c = { id = course, name = "Course " .. course }
    local kind = rand(10)
    local e = { id = ("2024%019d"):format(i), tenant_id = "3",
      created_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", 1709542800 + i * 7) }
    if kind <= 2 or kind >= 7 then
      e.resource = "enrollment"
      e.action = kind <= 2 and "created" or kind <= 9 and "progress" or "completed"
      e.payload = { id = 90000 + n, user = user, course = c, course_id = course, free_trial = false,
        percentage_completed = e.action == "completed" and "100.0" or ("%d.0"):format(rand(101) - 1),
        completed_at = thinkific.null, expiry_date = thinkific.null }
    else
      local lesson = course * 100 + rand(12)
      e.resource, e.action = "lesson", "completed"
      e.payload = { user = user, course = c, chapter = { id = 1, name = "Chapter 1" }, enrollment = { id = 90000 + n },
        lesson = { id = lesson, name = "Lesson", position = 0, type = lesson % 4 == 0 and "Quiz" or "Video" } }
    end
    events[i] = e
  end
  return events
end

local EVENTS = stream(total)

-- The example's engine before thinkific.quests (examples/enrollment_quests.lua until then):
-- rules to router filters and handlers over Lua tables. Its announcements go to a table.
local function memory_router()
  local players, given, said = {}, {}, {}
  local function field(t, path)
    for key in path:gmatch("[^.]+") do
      if type(t) ~= "table" then return nil end
      t = t[key]
    end
    return t
  end
  local function progress_of(event)
    if event.action == "completed" and event.resource == "enrollment" then return 100 end
    return tonumber(event.payload.percentage_completed) or 0
  end
  local function filter_of(quest)
    if not quest.progress then return quest.where end
    return function(event)
      for path, want in pairs(quest.where or {}) do
        if field(event.payload, path) ~= want then return false end
      end
      return progress_of(event) >= quest.progress
    end
  end
  local function handler_of(n, quest)
    return function(event)
      local user = event.payload.user
      local p = players[user.id]
      if not p then
        p = { name = user.first_name, xp = 0, badges = {} }
        players[user.id] = p
      end
      local once_per = quest.once_per or (quest.progress and "course")
      if once_per then
        local key = n .. ":" .. user.id
        if once_per ~= "student" then key = key .. ":" .. tostring(field(event.payload, once_per .. ".id")) end
        if given[key] then return end
        given[key] = true
      end
      if quest.badge then
        if p.badges[quest.badge] then return end
        p.badges[quest.badge] = true
        p.badges[#p.badges + 1] = quest.badge
      end
      p.xp = p.xp + (quest.xp or 0)
      local news = {}
      if quest.xp then news[#news + 1] = ("%+d XP"):format(quest.xp) end
      if quest.say then news[#news + 1] = quest.say end
      if quest.badge then news[#news + 1] = "badge: " .. quest.badge end
      said[#said + 1] = ("      %-7s %s"):format(p.name, table.concat(news, ", "))
    end
  end
  local router = thinkific.router{ secret = "bench", dedupe = 0 }
  for n, quest in ipairs(RULES) do router:on(quest.on, filter_of(quest), handler_of(n, quest)) end
  return router
end

local stores = 0
local function fresh_quests(rules)
  stores = stores + 1
  local path = dir .. "/quests-" .. stores .. ".db"
  os.remove(path)
  return assert(thinkific.quests{ store = "sqlite:" .. path, rules = rules })
end

-- A bench over the events: start(r) makes its state for round r, step(first, last) scores
-- EVENTS[first..last].
local function bench(key, label, burst, count, start, step)
  local b = { key = key, label = label, burst = burst, total = count }
  local next_event = 1
  function b.start()
    next_event = 1
    start()
  end
  function b.run(n)
    local t0 = now()
    step(next_event, next_event + n - 1)
    next_event = next_event + n
    return n, now() - t0
  end
  return b
end

local memory, attached, attached_router
local scorers = {}
local function batch_bench(key, label, rules)
  return bench(key, label, BATCH, total, function()
    if scorers[key] then scorers[key]:close() end
    scorers[key] = fresh_quests(rules)
  end, function(first, last)
    local q = scorers[key]
    for i = first, last, BATCH do
      assert(q:score({ table.unpack(EVENTS, i, math.min(last, i + BATCH - 1)) }))
    end
  end)
end

local benches = {
  bench("memory", "in-memory handlers (dispatch)", BATCH, total, function() memory = memory_router() end,
    function(first, last)
      for i = first, last do assert(memory:dispatch(EVENTS[i])) end
    end),
  batch_bench("batch", "quests:score, 100 a batch", RULES),
  bench("attached", "quests:attach, a transaction each", 20, ATTACHED, function()
    if attached then attached:close() end
    attached = fresh_quests(RULES)
    attached_router = thinkific.router{ secret = "bench", dedupe = 0 }
    attached:attach(attached_router)
  end, function(first, last)
    for i = first, last do assert(attached_router:dispatch(EVENTS[i])) end
  end),
  batch_bench("file", "quests:score, sandboxed file", FILE),
  batch_bench("when_table", "quests:score, 7 whens, table", WHEN_TABLE),
  batch_bench("when_file", "quests:score, 7 whens, sandboxed", WHEN_FILE),
}

local rates = {}
for _, b in ipairs(benches) do rates[b.key] = {} end
for r = 1, rounds do
  for _, b in ipairs(benches) do b.start() end
  local done, spent = turns.round(benches, r, max_seconds)
  local parts = {}
  for _, b in ipairs(benches) do
    rates[b.key][r] = done[b.key] / spent[b.key]
    parts[#parts + 1] = ("%s %.0f/s"):format(b.key, rates[b.key][r])
  end
  io.stderr:write(("quests round %d/%d: %s\n"):format(r, rounds, table.concat(parts, ", ")))
end
for _, b in ipairs(benches) do
  if b.key ~= "memory" and scorers[b.key] then scorers[b.key]:close() end
end

local medians = stats.print_rows(benches, rates, ", events/s", "events/s")
stats.print_ratio("quests batch / in-memory, events/s", rates.batch, rates.memory, medians.batch,
  medians.memory, RATIO_TARGET)
stats.print_ratio("quests attached / in-memory, events/s", rates.attached, rates.memory, medians.attached,
  medians.memory)
stats.print_ratio("sandboxed file / table, events/s", rates.file, rates.batch, medians.file, medians.batch,
  SANDBOX_TARGET)
stats.print_ratio("sandboxed whens / table whens", rates.when_file, rates.when_table, medians.when_file,
  medians.when_table, SANDBOX_TARGET)
print("note quests: a sandbox cost of at most 1.5x is a file/table ratio of at least 0.67")
