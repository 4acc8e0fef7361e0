-- thinkific.quests on SQLite and PostgreSQL: each award once whatever arrives twice, events out
-- of order, a restart, rebuild after a rule change (also once the inbox purged the events), the
-- cheat guard, settings, the leaderboard's ranking, manual awards and the log. Rules given as
-- a table (the sandboxed rules files: quests_sandbox_lua54_spec.lua).
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local model = require("spec.quests_model")
local thinkific = require("thinkific")

local function quests(url, opts)
  local o = { store = url, rules = model.RULES }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(thinkific.quests(o))
end

-- The whole board of a course, as { {rank, user_id, xp}, … }.
local function board(q, course)
  local rows = assert(q:leaderboard{ course_id = course, limit = 1000 })
  local out = {}
  for i, r in ipairs(rows) do out[i] = { r.rank, r.user_id, r.xp } end
  return out
end

local function boards(q)
  return { board(q, 3), board(q, 4), board(q, 5) }
end

local function sum_xp(results)
  local n = 0
  for _, r in ipairs(results) do n = n + r.xp end
  return n
end

describe("thinkific.quests", function()
  engines.each(function(engine)
    it("gives each award once, whatever is delivered, retried or replayed again", function()
      local events = model.stream(300)
      local q = quests(engine.fresh())
      finally(function() q:close() end)
      local first = assert(q:score(events))
      for _, r in ipairs(first) do assert.is_true(r.scored) end
      local want = model.score(events)
      assert.are.same(want, model.stored(q, want))
      -- The same events again: through score, and through a router's handler.
      local again = assert(q:score(events))
      assert.are.equal(0, sum_xp(again))
      for _, r in ipairs(again) do assert.is_false(r.scored) end
      local router = engines.router()
      q:attach(router)
      for i = 1, 300, 7 do assert.is_true((router:dispatch(events[i]))) end
      -- One list holding an event twice scores it once.
      local late = model.event("late-1", "enrollment.created", model.enrollment(1, 3), 9999)
      local twice = assert(q:score{ late, late })
      assert.are.same({ true, false }, { twice[1].scored, twice[2].scored })
      assert.are.same({ 5, 0 }, { twice[1].xp, twice[2].xp })
      events[#events + 1] = late
      assert.are.same(model.score(events), model.stored(q, want))
    end)

    it("scores events out of order: 100 % before 50 %, a lesson before the enrollment", function()
      local q = quests(engine.fresh())
      finally(function() q:close() end)
      local hundred = model.event("e1", "enrollment.progress", model.enrollment(1, 4, "100.0"), 200)
      local r = assert(q:score(hundred))
      assert.are.same({ "halfway", "conqueror" }, { r[1].awards[1].rule, r[1].awards[2].rule })
      assert.are.equal(70, r[1].xp)
      r = assert(q:score(model.event("e2", "enrollment.progress", model.enrollment(1, 4, "50.0"), 100)))
      assert.are.equal(0, r[1].xp)
      local p = assert(q:player(100001, 4))
      assert.are.equal(70, p.xp)
      assert.are.same({ "Halfway Hero", "Course Conqueror" }, p.badges)
      -- A lesson completed before the enrollment of the same course arrives.
      r = assert(q:score(model.event("e3", "lesson.completed", model.lesson(2, 4, 401), 300)))
      assert.are.equal(35, r[1].xp)
      r = assert(q:score(model.event("e4", "enrollment.created", model.enrollment(2, 4), 100)))
      assert.are.equal(5, r[1].xp)
      assert.are.equal(40, assert(q:player(100002, 4)).xp)
    end)

    it("gives the same board after a restart, and nothing twice after it", function()
      local events = model.stream(200, 11)
      local url = engine.fresh()
      local q = quests(url)
      assert(q:score(events))
      local before = boards(q)
      q:close()
      local reader = assert(thinkific.quests{ store = url }) -- no rules: levels and scope stored
      assert.are.same(before, boards(reader))
      reader:close()
      local again = quests(url)
      finally(function() again:close() end)
      assert.are.equal(0, sum_xp(assert(again:score(events))))
      assert.are.same(before, boards(again))
    end)

    it("rebuilds after a rule change what a fresh run of the new rules gives, inbox purged", function()
      local events = model.stream(150, 5)
      local url = engine.fresh()
      local q = quests(url)
      local router = engines.router()
      q:attach(router)
      local inbox = engines.inbox(url, router)
      finally(function()
        inbox:close()
        q:close()
      end)
      for _, e in ipairs(events) do
        assert.are.equal(200, (inbox:accept(model.delivery(e, engines.SECRET))))
      end
      local done = 0
      while done < #events do done = done + assert(inbox:work{ limit = 200 }) end
      local before = boards(q)
      assert.are.equal(#events, inbox:purge{ older_than = 0 })
      assert.are.equal(0, inbox:stats().done)
      assert(q:award(100001, { xp = 7, reason = "helped a classmate", course_id = 4 }))

      -- New rules: a lesson is worth more, the quiz rule is gone, a rule with a predicate.
      local changed = {}
      for _, rule in ipairs(model.RULES) do
        if rule.name ~= "quiz" then
          local copy = {}
          for k, v in pairs(rule) do copy[k] = v end
          if rule.name == "lesson" then copy.xp = 12 end
          changed[#changed + 1] = copy
        end
      end
      changed[#changed + 1] = { name = "keen", on = "lesson.completed", xp = 3, once_per = "student",
        when = function(_, player) return player.xp >= 50 end }
      local rebuilt = assert(thinkific.quests{ store = url, rules = changed })
      finally(function() rebuilt:close() end)
      assert.are.equal(#events + 1, assert(rebuilt:rebuild()))

      -- A fresh store, the same events (in created_at order, as rebuild reads them), the new rules.
      local fresh = quests(engine.fresh(), { rules = changed })
      finally(function() fresh:close() end)
      for _, e in ipairs(events) do assert(fresh:score(e)) end
      assert(fresh:award(100001, { xp = 7, reason = "helped a classmate", course_id = 4 }))
      assert.are.same(boards(fresh), boards(rebuilt))
      assert.are_not.same(before, boards(rebuilt))
      local log = assert(rebuilt:log{ limit = 1 })
      assert.are.equal("manual", log[1].kind)
    end)

    it("gives at most `count` awards per window: 10 lessons in a minute, limit 5 per hour, give 5", function()
      local rules = { { name = "lesson", on = "lesson.completed", xp = 10,
        limit = { count = 5, per = 3600 } } }
      local q = quests(engine.fresh(), { rules = rules })
      finally(function() q:close() end)
      local events = {}
      for i = 1, 10 do -- 09:20:00 to 09:20:54, in one hour of created_at
        events[i] = model.event("l" .. i, "lesson.completed", model.lesson(1, 4, 400 + i), 1200 + i * 6)
      end
      for i = 1, 10, 2 do assert(q:score{ events[i], events[i + 1] }) end
      assert.are.equal(50, assert(q:player(100001, 4)).xp)
      -- The next hour has its own five; a rebuild gives the same.
      assert(q:score(model.event("l11", "lesson.completed", model.lesson(1, 4, 499), 3600 + 60)))
      assert.are.equal(60, assert(q:player(100001, 4)).xp)
      assert.are.equal(11, assert(q:rebuild()))
      assert.are.equal(60, assert(q:player(100001, 4)).xp)
      local log = assert(q:log{ user_id = 100001, limit = 20 })
      local given = 0
      for _, e in ipairs(log) do given = given + #e.awards end
      assert.are.equal(6, given)
    end)

    it("keeps its settings, and a start with others raises until it rebuilds", function()
      local url = engine.fresh()
      local q = quests(url, { levels = { 0, 10, 40 } })
      assert(q:score(model.event("s1", "lesson.completed", model.lesson(1, 4, 401), 10)))
      assert.are.same({ xp = 35, level = 2, next_level_at = 40 }, (function()
        local p = q:player(100001, 4)
        return { xp = p.xp, level = p.level, next_level_at = p.next_level_at }
      end)())
      q:close()
      local other = quests(url, { levels = { curve = "linear", base = 20, count = 5 } })
      finally(function() other:close() end)
      local ok, err = pcall(other.player, other, 100001, 4)
      assert.is_false(ok)
      assert.truthy(err:find("holds levels {0, 10, 40} and scope \"course\", this start gives "
        .. "levels {0, 20, 40, 60, 80} and scope \"course\": call quests:rebuild()", 1, true), err)
      assert.has_error(function() other:attach(engines.router()) end)
      assert.are.equal(1, assert(other:rebuild()))
      assert.are.equal(2, assert(other:player(100001, 4)).level)
      local site = quests(url, { scope = "site" })
      finally(function() site:close() end)
      assert.has_error(function() site:leaderboard() end)
      assert(site:rebuild())
      assert.are.same({ { 1, 100001, 35 } }, (function()
        local b = assert(site:leaderboard())
        return { { b[1].rank, b[1].user_id, b[1].xp } }
      end)())
      helper.argerror(2, "player", function() site:player(100001, 4) end)
    end)

    it("ranks ties together, listed by who reached the XP first", function()
      local rules = { { name = "points", on = "enrollment.progress", xp = 10 } }
      local q = quests(engine.fresh(), { rules = rules })
      finally(function() q:close() end)
      local function progress(id, n, at)
        return model.event(id, "enrollment.progress", model.enrollment(n, 4, "1.0"), at)
      end
      -- Student 1: 30 XP; 2 and 3: 20 each (3 got there at t = 50, 2 at t = 60); 4: 10.
      assert(q:score{ progress("a", 1, 10), progress("b", 1, 20), progress("c", 1, 30),
        progress("d", 2, 40), progress("e", 2, 60), progress("f", 3, 45), progress("g", 3, 50),
        progress("h", 4, 5) })
      assert.are.same({ { 1, 100001, 30 }, { 2, 100003, 20 }, { 2, 100002, 20 }, { 4, 100004, 10 } },
        board(q, 4))
      local page = assert(q:leaderboard{ course_id = 4, limit = 2, offset = 2 })
      assert.are.same({ 2, 100002 }, { page[1].rank, page[1].user_id })
      assert.are.equal("Student2 Q", page[1].name)
      assert.are.equal(1, page[1].level)
    end)

    it("logs manual awards with their reason, and every scored event, newest first", function()
      local q = quests(engine.fresh())
      finally(function() q:close() end)
      assert(q:score(model.event("m1", "enrollment.created", model.enrollment(1, 4), 10)))
      local p = assert(q:award(100001, { xp = -3, badge = "Helper", reason = "answered in the forum",
        course_id = 4 }))
      assert.are.same({ 2, { "Helper" } }, { p.xp, p.badges })
      assert(q:award(100001, { badge = "Helper", reason = "again", course_id = 4 }))
      assert.are.same({ "Helper" }, assert(q:player(100001, 4)).badges)
      local page, cursor = assert(q:log{ limit = 2 })
      assert.are.equal("again", page[1].reason)
      assert.are.same({ "manual", -3, "Helper", "answered in the forum", 4 },
        { page[2].kind, page[2].xp, page[2].badge, page[2].reason, page[2].course_id })
      local rest = assert(q:log{ after = cursor })
      assert.are.same({ "event", "m1", "enrollment.created", 5, "joined" },
        { rest[1].kind, rest[1].event_id, rest[1].topic, rest[1].xp, rest[1].awards[1].rule })
      assert.are.equal(1, #rest)
      assert.are.equal(0, #assert(q:log{ user_id = 999 }))
      helper.argerror(2, "award", function() q:award(100001, { xp = 1, course_id = 4 }) end)
      helper.argerror(2, "award", function() q:award(100001, { reason = "nothing", course_id = 4 }) end)
      helper.argerror(2, "player", function() q:player(100001) end)
      assert.are.equal(0, assert(q:player(100001, thinkific.null)).xp)
    end)

    it("writes nothing of an event whose rule fails, and the router reports it", function()
      local rules = {
        { name = "first", on = "enrollment.created", xp = 5 },
        { name = "broken", on = "enrollment.created", xp = 1,
          when = function(event) return event.payload.no.such.field end },
      }
      local q = quests(engine.fresh(), { rules = rules })
      finally(function() q:close() end)
      local router = engines.router()
      q:attach(router)
      local ok, errs = router:dispatch(model.event("f1", "enrollment.created", model.enrollment(1, 4), 10))
      assert.is_false(ok)
      assert.truthy(errs[1]:find("rule 'broken': when failed", 1, true), errs[1])
      assert.are.equal(0, assert(q:player(100001, 4)).xp)
      assert.are.equal(0, #assert(q:log{}))
    end)
  end)

  it("refuses bad rules, naming the rule", function()
    local function refused(rules, text)
      local msg = helper.argerror(1, "quests", function()
        thinkific.quests{ store = "sqlite:/nonexistent/x.db", rules = rules }
      end)
      assert.truthy(msg:find(text, 1, true), msg)
    end
    refused({ { on = "enrollment.created", xp = 5 } }, "rule #1: has no name")
    refused({ { name = "a", on = "enrollment.created", xp = 5 },
      { name = "a", on = "lesson.completed", xp = 1 } },
      "rule #2 ('a'): has the name of rule #1")
    refused({ { name = "a", on = "enrollment.created", xpp = 5 } }, "unknown key 'xpp': did you mean 'xp'?")
    refused({ { name = "a", on = "enrollment.created" } }, "gives nothing")
    refused({ { name = "a", on = "enrollment", xp = 1 } }, "topic 'enrollment' is not")
    refused({ { name = "a", on = "lesson.completed", xp = 1, once_per = "day" } }, "once_per must be")
    refused({ { name = "a", on = "lesson.completed", xp = 1, limit = { count = 0, per = 60 } } },
      "limit must be")
    refused({ rules = { { name = "a", on = "lesson.completed", xp = 1 } }, levels = { 0, 100, 50 } },
      "levels must grow: levels[3] = 50 is not above levels[2] = 100")
    helper.argerror(1, "quests", function()
      thinkific.quests{ store = "sqlite:/x.db", levels = { 5, 10 } }
    end)
    helper.argerror(1, "quests", function() thinkific.quests{ store = "sqlite:/x.db", scope = "world" } end)
    helper.argerror(1, "quests", function() thinkific.quests{ store = "sqlite:/x.db", rulez = {} } end)
  end)

  it("computes levels from a list or a curve", function()
    local levels = require("thinkific.quests.levels")
    assert.are.same({ 0, 100, 200, 300 }, levels.thresholds{ curve = "linear", base = 100, count = 4 })
    assert.are.same({ 0, 100, 300, 600, 1000 },
      levels.thresholds{ curve = "snowball", base = 100, count = 5 })
    local list = { 0, 100, 250, 500, 1000 }
    assert.are.same({ 1, 100 }, { levels.level(list, 0) })
    assert.are.same({ 2, 250 }, { levels.level(list, 249) })
    assert.are.same({ 3, 500 }, { levels.level(list, 250) })
    assert.are.same({ 5 }, { levels.level(list, 5000) })
    assert.is_nil((levels.thresholds{ curve = "cubic", base = 1, count = 3 }))
  end)

  it("runs a rules file sandboxed under Lua 5.4, and says why not under LuaJIT", function()
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "w"))
    f:write('return { { name = "joined", on = "enrollment.created", xp = 5 } }')
    f:close()
    local open = function()
      local q, err = thinkific.quests{ store = "sqlite::memory:", rules = path }
      return q, err
    end
    if rawget(_G, "jit") then
      local msg = helper.argerror(1, "quests", open)
      assert.truthy(msg:find("the sandbox needs Lua 5.4; under LuaJIT give the rules as a table "
        .. "(their functions then run without the memory cap or the instruction budget)", 1, true), msg)
    else
      local q = assert(open())
      assert.is_true(q.sandboxed)
      local r = assert(q:score(model.event("j1", "enrollment.created", model.enrollment(1, 4))))
      assert.are.equal(5, r[1].xp)
      q:close()
    end
  end)

  it("raises under nginx", function()
    rawset(_G, "ngx", {})
    finally(function() rawset(_G, "ngx", nil) end)
    local msg = helper.argerror(1, "quests", function() thinkific.quests{ store = "sqlite:/x.db" } end)
    assert.truthy(msg:find("does not run under nginx", 1, true))
  end)
end)
