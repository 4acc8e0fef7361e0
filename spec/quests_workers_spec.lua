-- Two worker processes score into one quests store (one SQLite file; one PostgreSQL database),
-- each working an inbox of its own: 1,000 enrollment events, every fifth delivered to both
-- inboxes at once (so both workers score it at the same time), and 30 % delivered again later,
-- to either inbox. Each player's XP and badges must be what the spec's own model computes from
-- the unique events; after a restart of every process and a replay of every event, the boards
-- are the same.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local model = require("spec.quests_model")
local process = require("thinkific.sandbox.process")
local sql = require("thinkific.sql")
local socket = require("socket")

local WORKER = helper.repo .. "/spec/quests_worker.lua"
local EVENTS = 1000

-- The deliveries, in order: { inbox = 1 | 2, event }.
local function plan(events)
  local list, later = {}, {}
  for i, e in ipairs(events) do
    local home = i % 2 + 1
    list[#list + 1] = { inbox = home, event = e }
    if i % 5 == 0 then list[#list + 1] = { inbox = 3 - home, event = e } end -- both at once
    if i % 10 <= 2 then later[i + 40] = { inbox = (i % 3 == 0) and home or 3 - home, event = e } end
    if later[i] then list[#list + 1] = later[i] end
  end
  for i = EVENTS + 1, EVENTS + 40 do
    if later[i] then list[#list + 1] = later[i] end
  end
  return list
end

describe("quests in two worker processes on one store", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  engines.each(function(engine)
    it("give each player the XP of the unique events, once", function()
      local quests_url, inbox_urls
      if engine.name == "sqlite" then
        quests_url = "sqlite:" .. dir .. "/quests.db"
        inbox_urls = { "sqlite:" .. dir .. "/inbox-1.db", "sqlite:" .. dir .. "/inbox-2.db" }
      else -- the second inbox in a database of its own (an inbox's table has one name)
        quests_url = engine.fresh()
        local db = assert(sql.open(quests_url))
        assert(db:exec("DROP DATABASE IF EXISTS inbox_two"))
        assert(db:exec("CREATE DATABASE inbox_two"))
        db:close()
        inbox_urls = { quests_url, (quests_url:gsub("/[^/]+$", "/inbox_two")) }
      end
      local events = model.stream(EVENTS, 3)
      local deliveries = plan(events)
      assert.is_true(#deliveries >= EVENTS * 1.45, "every fifth twice and 30 % again")

      local inboxes = { engines.inbox(inbox_urls[1]), engines.inbox(inbox_urls[2]) }
      local path, cpath = helper.lua54_paths()
      local workers = {}
      finally(function()
        for _, w in ipairs(workers) do w:stop() end
        for _, inbox in ipairs(inboxes) do inbox:close() end
      end)
      -- Starts the two workers (they exit once their inbox was idle for 2 s).
      local function start_workers()
        for k = 1, 2 do
          if workers[k] then workers[k]:stop() end
          workers[k] = process.start(string.format("lua5.4 %s %s %s %s 2", process.quote(WORKER),
            process.quote(inbox_urls[k]), process.quote(quests_url), process.quote(engines.SECRET)),
            { LUA_PATH_5_4 = path, LUA_CPATH_5_4 = cpath })
        end
        for _, w in ipairs(workers) do assert.are.equal("ready", w:first_line(30), w:stderr()) end
      end
      local function wait_workers()
        for _, w in ipairs(workers) do
          assert.is_true(process.wait_exit(w:getpid(), 120), "a worker did not finish")
          assert.are.equal("", w:stderr())
        end
      end
      start_workers()

      for n, d in ipairs(deliveries) do
        local status = inboxes[d.inbox]:accept(model.delivery(d.event, engines.SECRET))
        assert.are.equal(200, status)
        if n % 50 == 0 then socket.sleep(0.01) end -- let the workers take turns with us
      end
      wait_workers()
      for k, inbox in ipairs(inboxes) do
        local stats = inbox:stats()
        assert.are.same({ 0, 0, 0 }, { stats.pending, stats.retrying, stats.dead }, "inbox " .. k)
        assert.is_true(stats.done > EVENTS / 3, "inbox " .. k .. " did its share")
      end

      local want = model.score(events)
      local quests = assert(require("thinkific").quests{ store = quests_url })
      finally(function() quests:close() end)
      assert.are.same(want, model.stored(quests, want))
      local db = assert(sql.open(quests_url))
      finally(function() db:close() end)
      local logged = assert(db:first({ "SELECT count(*) AS n FROM thinkific_quests_log", n = "integer" }))
      assert.are.equal(EVENTS, logged.n)

      -- Every process stopped; new workers, and every event replayed to both inboxes: the
      -- boards are the same, and nothing was given twice.
      local courses, boards = {}, {}
      for k in pairs(want) do courses[tonumber(k:match("^(%d+):"))] = true end
      local function board(course) return assert(quests:leaderboard{ course_id = course, limit = 1000 }) end
      for course in pairs(courses) do boards[course] = board(course) end
      assert.is_true(next(boards) ~= nil)
      for _, inbox in ipairs(inboxes) do assert.is_true(assert(inbox:replay{}) > EVENTS / 3) end
      start_workers()
      wait_workers()
      for course in pairs(boards) do
        assert.are.same(board(course), boards[course], "course " .. course)
      end
      assert.are.same(want, model.stored(quests, want))
    end)
  end)
end)
