-- Rules files run in the C sandbox (src/rules.c): a rule that loops, builds a 1 GB string, runs
-- a pattern that backtracks for minutes, reaches for os, io, require, load, string.dump or
-- collectgarbage, or writes into the event is refused or stopped within a second, with an error
-- naming the rule and the limit; the event's awards are not written; the process goes on and
-- its memory comes back. Lua 5.4 only (LuaJIT has no sandbox: quests_spec.lua checks what it
-- says). #memory: these run under valgrind in `make check` (where time limits are relaxed).
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local model = require("spec.quests_model")
local thinkific = require("thinkific")
local socket = require("socket")

local VALGRIND = os.getenv("THINKIFIC_FORCE_GC") ~= nil
local SECOND = VALGRIND and 60 or 1 -- under valgrind everything is some 50 times slower

-- Resident memory of this process, in KiB.
local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4
end

local function lua_kb()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count")
end

-- Whether a is back within share of b: at most that much above it (less is fine: a collection
-- may give back more than the warm-up held).
local function within(a, b, share)
  return a <= b * (1 + share)
end

describe("rules files #memory", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  local files = 0
  -- A rules file with the given rules (Lua source of the list's entries); returns its path.
  local function rules_file(body)
    files = files + 1
    return helper.write(dir, "rules" .. files .. ".lua", "return {\n" .. body .. "\n}\n")
  end

  -- A quests object on rules file path, in a store of its own (SQLite unless opts.store).
  local function quests(path, opts)
    local o = { store = "sqlite:" .. dir .. "/q" .. files .. ".db", rules = path }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(thinkific.quests(o))
  end

  local HOSTILE = {
    { "loop", "while true do end", "over the instruction budget (1000000 instructions per event)" },
    { "recursion", "local function f(n) return 1 + f(n + 1) end return f(1)", "" },
    { "gigabyte", "local s = ('x'):rep(2^30) return #s > 0", "over the memory cap (16 MiB)" },
    { "doubling", "local s = 'x' for i = 1, 40 do s = s .. s end return #s > 0",
      "over the memory cap (16 MiB)" },
    { "tables", "local t = {} for i = 1, 1e9 do t[i] = {} end", "stopped: over the" },
    { "pattern", "return string.find(('a'):rep(40), ('a*'):rep(12) .. 'b')",
      "string.find: this pattern over a subject of 40 bytes may take up to" },
    { "pattern-method", "return (('a'):rep(40)):match(('a*'):rep(12) .. 'b')", "string.match: this pattern" },
    { "gmatch", "for w in (('a'):rep(400)):gmatch('a-a-a-b') do end", "string.gmatch: this pattern" },
    { "empty-rep", "return #(''):rep(1e15) == 0 and #('x'):rep(1e15, '') > 0",
      "string.rep: the result would not fit" },
    -- (#t is 2^40 here: table.insert and table.remove in C would shift for hours)
    { "insert", "local t = {} for i = 40, 0, -1 do t[1 << i] = 1 end table.insert(t, 1, 0)",
      "stopped: over the instruction budget" },
    { "remove", "local t = {} for i = 40, 0, -1 do t[1 << i] = 1 end table.remove(t, 1)",
      "stopped: over the instruction budget" },
    { "os", "return os.execute('true')", "attempt to index a nil value (global 'os')" },
    { "io", "return io.open('/etc/passwd')", "attempt to index a nil value (global 'io')" },
    { "require", "return require('os')", "attempt to call a nil value (global 'require')" },
    { "load", "return load('return 1')()", "attempt to call a nil value (global 'load')" },
    { "dump", "return string.dump(function() end)", "attempt to call a nil value (field 'dump')" },
    { "dump-method", "return ('x'):dump()", "attempt to call a nil value (method 'dump')" },
    { "collectgarbage", "return collectgarbage('count')",
      "attempt to call a nil value (global 'collectgarbage')" },
    { "debug", "return debug.getinfo(1)", "attempt to index a nil value (global 'debug')" },
    { "setmetatable", "return setmetatable({}, {})", "attempt to call a nil value (global 'setmetatable')" },
    { "write-event", "event.payload.user.id = 1 return true", "attempt to change a read-only table" },
    { "add-to-event", "event.extra = 1 return true", "attempt to change a read-only table" },
    { "write-player", "player.xp = 1e9 return true", "attempt to change a read-only table" },
    { "global", "counter = (counter or 0) + 1 return true", "attempt to change a read-only table" },
    { "library", "string.find = nil return true", "attempt to change a read-only table" },
  }

  -- The stop and its rollback, and the inbox's retries, on both engines.
  engines.each(function(engine)
    for _, case in ipairs(HOSTILE) do
      local name, code, says = case[1], case[2], case[3]
      it("stops a rule that does '" .. name .. "' within a second, names it, and writes nothing", function()
        local path = rules_file(([[
    { name = "joined", on = "enrollment.created", xp = 5 },
    { name = %q, on = "enrollment.created", xp = 1, when = function(event, player) %s end },
    { name = "lesson", on = "lesson.completed", xp = 2,
      when = function(event) return event.payload.lesson.id > 0 end },]]):format(name, code))
        local q = quests(path, { store = engine.fresh() })
        finally(function() q:close() end)
        local router = engines.router()
        q:attach(router)
        local event = model.event("h1", "enrollment.created", model.enrollment(1, 4), 10)
        -- Warm up with an event the rule does not see (the first event loads the store's
        -- pages), then measure.
        assert.is_true((router:dispatch(model.event("h0", "lesson.completed", model.lesson(1, 4, 400), 5))))
        local state = q.runner.state
        local sandbox_before, lua_before, rss_before = state:memory(true), lua_kb(), rss()
        local t0 = socket.gettime()
        local ok, errs = router:dispatch(event)
        local took = socket.gettime() - t0
        assert.is_false(ok)
        assert.truthy(errs[1]:find("rule '" .. name .. "': ", 1, true), errs[1])
        assert.truthy(errs[1]:find(says, 1, true), errs[1])
        assert.is_true(took < SECOND, ("took %.3f s"):format(took))
        -- Nothing of the event was written: not even the first rule's award.
        assert.are.equal(2, assert(q:player(100001, 4)).xp)
        assert.are.same({ "h0" }, { assert(q:log{})[1].event_id, assert(q:log{})[2] })
        -- The same sandbox goes on with other events, and its memory came back.
        assert.is_true((router:dispatch(model.event("h2", "lesson.completed", model.lesson(1, 4, 401), 20))))
        assert.are.equal(4, assert(q:player(100001, 4)).xp)
        assert.is_true(within(state:memory(true), sandbox_before, 0.10),
          ("sandbox: %d bytes, %d before"):format(state:memory(true), sandbox_before))
        assert.is_true(within(lua_kb(), lua_before, 0.10),
          ("Lua: %.0f KiB, %.0f before"):format(lua_kb(), lua_before))
        if not VALGRIND then
          assert.is_true(within(rss(), rss_before, 0.10),
            ("RSS: %d KiB, %d before"):format(rss(), rss_before))
        end
      end)
    end

    it("sends an event whose rule is stopped through the inbox's retries, then dead; others go on", function()
      local path = rules_file([[
    { name = "joined", on = "enrollment.created", xp = 5 },
    { name = "trap", on = "lesson.completed", xp = 1,
      when = function(event) if event.payload.lesson.id == 99 then while true do end end return true end },]])
      local url = engine.fresh()
      local q = quests(path, { store = url })
      local router = engines.router()
      q:attach(router)
      local inbox = engines.inbox(url, router, { max_attempts = 2, backoff = { base = 0.01, max = 0.02 } })
      finally(function()
        inbox:close()
        q:close()
      end)
      local good1 = model.event("g1", "enrollment.created", model.enrollment(1, 4), 10)
      local bad = model.event("b1", "lesson.completed", model.lesson(1, 4, 99), 20)
      local good2 = model.event("g2", "lesson.completed", model.lesson(1, 4, 98), 30)
      -- router:handle answers 500 for it (Thinkific would deliver it again).
      assert.are.equal(500, (router:handle(model.delivery(bad, engines.SECRET))))
      for _, e in ipairs({ good1, bad, good2 }) do
        assert.are.equal(200, (inbox:accept(model.delivery(e, engines.SECRET))))
      end
      assert.are.equal(3, assert(inbox:work{ limit = 3 }))
      local item = assert(inbox:get("b1"))
      assert.are.equal("retrying", item.state)
      assert.truthy(item.last_error:find("rule 'trap': stopped: over the instruction budget", 1, true),
        item.last_error)
      assert.is_true(helper.wait_until(function()
        inbox:work{}
        return inbox:get("b1").state == "dead"
      end, 5 * SECOND))
      assert.are.equal(2, inbox:stats().done)
      assert.are.equal(6, assert(q:player(100001, 4)).xp) -- good1 and good2, never b1
    end)
  end)

  it("gives rules what they need: read-only views to read and iterate, the safe libraries", function()
    local path = rules_file([[
  { name = "reader", on = "lesson.completed", xp = 3, when = function(event, player)
      local p = event.payload
      local fields = {}
      for k in pairs(p.lesson) do table.insert(fields, k) end
      table.sort(fields)
      local removed = table.remove(fields, 1)
      local domain = p.user.email:match("@(.+)$")
      return domain == "example.com" and removed == "id" and #fields == 3 and #player.badges == 0
        and player.xp == 0 and player.level == 1 and math.floor(2.5) == 2 and utf8.len("héllo") == 5
        and ("ab"):rep(3, "-") == "ab-ab-ab" and p.completed_at == nil and tostring(null):find("userdata")
        and select("#", 1, 2) == 2 and string.format("%05.1f", 3.14159) == "003.1"
        and type(math.random) == "nil" and next({}) == nil
    end },
  { name = "nulls", on = "enrollment.created", xp = 4, when = function(event)
      return event.payload.completed_at == null and #event.payload.user.first_name > 0
    end },]])
    local q = quests(path)
    finally(function() q:close() end)
    local r = assert(q:score{ model.event("r1", "lesson.completed", model.lesson(1, 4, 401), 10),
      model.event("r2", "enrollment.created", model.enrollment(1, 4), 20) })
    assert.are.same({ 3, 4 }, { r[1].xp, r[2].xp })
  end)

  it("refuses a rules file that does not load, naming the file", function()
    local function refused(text, says)
      files = files + 1
      local path = helper.write(dir, "bad" .. files .. ".lua", text)
      local msg = helper.argerror(1, "quests", function() quests(path) end)
      assert.truthy(msg:find(says, 1, true), msg)
    end
    refused("return {", "bad" .. files + 1 .. ".lua:1:")
    refused(string.dump(function() return {} end), "attempt to load a binary chunk")
    refused("while true do end", "stopped: over the instruction budget")
    refused("return 5", "rules must be a list of rules")
    refused("return { { name = 'x', on = 'enrollment.created', xp = 1, when = 5 } }",
      "when must be a function")
    refused(("-- x\n"):rep(300000), "a rules file may hold at most 1 MiB")
    local msg = helper.argerror(1, "quests", function() quests(dir .. "/missing.lua") end)
    assert.truthy(msg:find("No such file", 1, true), msg)
  end)

  it("copies a rules file's tables out whole: shared tables, cycles, nested functions", function()
    local core = require("thinkific.core")
    local state = core.rules_new(1024 * 1024, 100000)
    finally(function() state:close() end)
    local value = assert(state:load([[
      local shared = { 1, 2 }
      local t = { a = shared, b = shared, f = function() return true end }
      t.self = t
      return t]], "=t"))
    assert.are.equal(value.a, value.b)
    assert.are.equal(value, value.self)
    assert.is_number(core.rules_function(value.f))
    assert.is_nil(core.rules_function({}))
    assert.is_true(state:begin({ payload = {} }, {}))
    assert.is_true(state:call(core.rules_function(value.f)))
    state:finish()
    local _, err = state:load("local t = {} for i = 1, 200 do t = { t } end return t", "=deep")
    assert.truthy(err:find("nested deeper than 100", 1, true), err)
    local deep = {}
    for _ = 1, 200 do deep = { deep } end
    local ok, why, kind = state:begin({ payload = deep }, {})
    assert.are.same({ nil, "error" }, { ok, kind })
    assert.truthy(why:find("nested deeper than 100", 1, true), why)
    state:close()
    assert.has_error(function() state:load("return 1", "=x") end, "thinkific.Rules: the sandbox is closed")
    assert.has_error(function() core.rules_new(1000, 100000) end)
    assert.has_error(function() core.rules_new(1024 * 1024, 10) end)
  end)

  it("takes limits", function()
    local path = rules_file([[
  { name = "busy", on = "enrollment.created", xp = 1,
    when = function() local n = 0 for i = 1, 20000 do n = n + i end return n > 0 end },]])
    local tight = quests(path, { limits = { instructions = 10000 } })
    finally(function() tight:close() end)
    local _, err = tight:score(model.event("t1", "enrollment.created", model.enrollment(1, 4), 1))
    assert.truthy(tostring(err):find("over the instruction budget (10000 instructions per event)", 1, true),
      tostring(err))
    local roomy = quests(path, { limits = { instructions = 1000000, memory = 1048576 } })
    finally(function() roomy:close() end)
    assert(roomy:score(model.event("t1", "enrollment.created", model.enrollment(1, 4), 1)))
    helper.argerror(1, "quests", function() quests(path, { limits = { memory = 1 } }) end)
    helper.argerror(1, "quests", function() quests(path, { limits = { cpu = 1 } }) end)
  end)
end)
