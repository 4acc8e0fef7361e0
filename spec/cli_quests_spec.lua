-- `thinkific quests check|play|board|player|log` as a child process: check names each problem
-- of a rules file on one line (unknown topics with a suggestion, where fields no sample payload
-- has, names, levels), play scores events without a store, board/player/log read a store from
-- --store or THINKIFIC_QUESTS (with its levels and scope), usage errors exit 2, and no output
-- shows a store's password.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local model = require("spec.quests_model")
local thinkific = require("thinkific")

local EXAMPLE = helper.repo .. "/examples/quests"

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

describe("thinkific quests #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)
  local run = helper.cli({}, { "s3cr3t-pass" })

  it("check: the example's rules file has no problem", function()
    local code, out, err = run({ "quests", "check", EXAMPLE .. "/quests.lua" })
    assert.are.same({ 0, EXAMPLE .. "/quests.lua: 8 rules, no problems\n", "" }, { code, out, err })
  end)

  it("check: one line per problem, naming the rule; exit 1", function()
    local path = helper.write(dir, "bad.lua", [[
return {
  levels = { 0, 100, 50 },
  rules = {
    { name = "typo", on = "lesson.complete", xp = 1 },
    { on = "enrollment.created", xp = 5 },
    { name = "typo", on = "enrollment.created", xp = 2 },
    { name = "field", on = "lesson.completed", xp = 2, where = { ["lesson.typ"] = "Quiz" } },
    { name = "nowhere", on = "order.created", xp = 2, where = { ["lesson.type"] = "Quiz" } },
    { name = "fine", on = "enrollment.completed", badge = "W", where = { course_id = 4 } },
    { name = "keyless", on = "enrollment.created", xp = 3, once_per = "lesson" },
  },
}]])
    local code, out, err = run({ "quests", "check", path })
    assert.are.equal(1, code, err)
    assert.are.same({
      path .. ": levels: levels must grow: levels[3] = 50 is not above levels[2] = 100",
      path .. ": rule 'typo': unknown topic 'lesson.complete': did you mean 'lesson.completed'? "
        .. "(see thinkific topics)",
      path .. ": rule #2: has no name (name = \"…\": it keys the awards, so it must be there and unique)",
      path .. ": rule #3 ('typo'): has the name of rule #1: names key the awards and must be unique",
      path .. ": rule 'field': where field 'lesson.typ' is in no sample payload of lesson.completed: "
        .. "did you mean 'lesson.type'?",
      path .. ": rule 'nowhere': where field 'lesson.type' is in no sample payload of order.created",
      path .. ": rule 'keyless': once_per = \"lesson\" but no sample payload of enrollment.created has "
        .. "lesson.id: it never fires there",
    }, lines(out))
    local _, json = run({ "quests", "check", path, "--json" })
    local report = assert(thinkific.decode(json))
    assert.are.same({ path, 7, 7 }, { report.file, report.rules, #report.problems })
    assert.are.same({ rule = "rule 'typo'", message = "unknown topic 'lesson.complete': did you mean "
      .. "'lesson.completed'? (see thinkific topics)" }, report.problems[2])
  end)

  it("check: a file that cannot run is one line, exit 1", function()
    local cases = {
      { "return {", "bad1.lua:1:" },
      { "while true do end", "stopped: over the instruction budget" },
      { "return os.exit(3)", "attempt to index a nil value (global 'os')" },
    }
    for i, case in ipairs(cases) do
      local path = helper.write(dir, "bad" .. i .. ".lua", case[1])
      local code, out, err = run({ "quests", "check", path })
      assert.are.same({ 1, "" }, { code, out })
      assert.are.equal(1, #lines(err), err)
      assert.truthy(err:find(case[2], 1, true), err)
    end
  end)

  it("play: per event each rule that fired, then the total; no store", function()
    local events = EXAMPLE .. "/events"
    local code, out, err = run({ "quests", "play", EXAMPLE .. "/quests.lua",
      events .. "/03-lesson.completed.json", events .. "/04-lesson.completed.json",
      events .. "/03-lesson.completed.json" })
    assert.are.equal(0, code, err)
    assert.are.same({
      "20240304000000000000003\tlesson.completed\tuser 123457\tcourse 4",
      "  lesson                 +10 XP  finished a lesson",
      "  first-lesson           +25 XP  first lesson bonus",
      "  night-owl               +5 XP  studied at night",
      "  total                  +40 XP",
      "20240304000000000000004\tlesson.completed\tuser 123457\tcourse 4",
      "  lesson                 +10 XP  finished a lesson",
      "  quiz                   +15 XP  passed a quiz",
      "  total                  +25 XP  level 1 -> 2",
      "20240304000000000000003\tlesson.completed\tuser 123457\tcourse 4",
      "  (scored before: the same event id)",
    }, lines(out))
    -- A list of events in one file, as JSON.
    local list = {}
    for i = 1, 3 do list[i] = model.event("p" .. i, "enrollment.created", model.enrollment(i, 4), i) end
    local file = helper.write(dir, "events.json", thinkific.encode(list))
    local code2, json = run({ "quests", "play", EXAMPLE .. "/quests.lua", file, "--json" })
    assert.are.equal(0, code2)
    local results = assert(thinkific.decode(json))
    assert.are.same({ 3, 5, "joined", 1 },
      { #results, results[1].xp, results[1].awards[1].rule, results[1].level })
    -- Nothing was stored anywhere: play makes no file.
    assert.are.equal("", (helper.capture("cd '" .. dir .. "' && ls | grep -v '\\.lua$\\|\\.json$' || true")))
  end)

  it("play: a file that is not an event is a usage error", function()
    local not_json = helper.write(dir, "nope.json", "{")
    local code, out, err = run({ "quests", "play", EXAMPLE .. "/quests.lua", not_json })
    assert.are.same({ 2, "" }, { code, out })
    assert.truthy(err:find("nope.json: invalid JSON", 1, true), err)
    local not_event = helper.write(dir, "list.json", '[{"id": "1"}]')
    code, out, err = run({ "quests", "play", EXAMPLE .. "/quests.lua", not_event })
    assert.are.equal("", out)
    assert.are.equal(2, code)
    assert.truthy(err:find("list.json: entry 1 is not an event", 1, true), err)
  end)

  -- board, player and log on both engines.
  engines.each(function(engine)
    local url
    lazy_setup(function()
      url = engine.fresh()
      local q = assert(thinkific.quests{ store = url, rules = model.RULES, levels = { 0, 20, 100 } })
      assert(q:score{
        model.event("b1", "enrollment.created", model.enrollment(1, 4), 10),
        model.event("b2", "lesson.completed", model.lesson(1, 4, 401, "Quiz"), 20),
        model.event("b3", "enrollment.created", model.enrollment(2, 4), 30),
        model.event("b4", "enrollment.progress", model.enrollment(2, 4, "60.0"), 40),
        model.event("b5", "enrollment.created", model.enrollment(3, 5), 50),
      })
      assert(q:award(100003, { xp = 4, reason = "kind words", course_id = 5 }))
      q:close()
    end)

    it("board: rank, student, XP, level, name; --json", function()
      local code, out, err = run({ "quests", "board", "--course", "4", "--store", url })
      assert.are.equal(0, code, err)
      assert.are.same({ "1\t100001\t55\t2\tStudent1 Q", "2\t100002\t25\t2\tStudent2 Q" }, lines(out))
      local _, json = run({ "quests", "board", "--course", "5", "--json" }, { THINKIFIC_QUESTS = url })
      assert.are.same({ { rank = 1, user_id = 100003, xp = 9, level = 1, name = "Student3 Q" } },
        thinkific.decode(json))
      local code2, out2, err2 = run({ "quests", "board", "--course", "6", "--store", url })
      assert.are.same({ 0, "", "no players\n" }, { code2, out2, err2 })
      engines.shows_none(out .. err .. json, engine.secrets)
    end)

    it("player and log", function()
      local code, out = run({ "quests", "player", "100002", "--course", "4", "--store", url })
      assert.are.equal(0, code)
      assert.are.same({ "user_id\t100002", "name\tStudent2 Q", "xp\t25", "level\t2",
        "next_level_at\t100", "badges\tHalfway Hero" }, lines(out))
      local _, json = run({ "quests", "player", "100001", "--course", "4", "--json" },
        { THINKIFIC_QUESTS = url })
      assert.are.same({ user_id = 100001, name = "Student1 Q", xp = 55, level = 2, next_level_at = 100,
        badges = {} }, thinkific.decode(json))
      local code2, log = run({ "quests", "log", "--user", "100003", "--store", url })
      assert.are.equal(0, code2)
      local entries = lines(log)
      assert.are.equal(2, #entries)
      assert.truthy(entries[1]:find("\tuser 100003\tcourse 5\tmanual\t+4 XP\tkind words", 1, true),
        entries[1])
      assert.truthy(entries[2]:find("\tuser 100003\tcourse 5\tb5 enrollment.created\t+5 XP\tjoined", 1, true),
        entries[2])
      local _, all = run({ "quests", "log", "--json", "--limit", "2" }, { THINKIFIC_QUESTS = url })
      assert.are.equal(2, #thinkific.decode(all))
    end)
  end)

  describe("on a SQLite store", function()
    local url
    lazy_setup(function()
      url = "sqlite:" .. dir .. "/store.db"
      assert(thinkific.quests{ store = url, rules = model.RULES }):close()
    end)

    it("needs a store, and --course under scope \"course\"", function()
      local cases = {
        { { "quests", "board" }, "thinkific quests: no store: pass --store STORE or set THINKIFIC_QUESTS" },
        { { "quests", "board", "--store", url }, "--course ID required: the store's scope is \"course\"" },
        { { "quests", "board", "--store", "mysql://x" }, "unknown scheme 'mysql'" },
        { { "quests", "board", "--course", "4", "--limit", "0", "--store", url },
          "--limit must be a number" },
        { { "quests", "player", "--store", url }, "thinkific quests: " },
        { { "quests" }, "thinkific quests: an action is required" },
        { { "quests", "boad" }, "thinkific quests: unknown action 'boad': did you mean 'board'?" },
      }
      for _, case in ipairs(cases) do
        local code, out, err = run(case[1])
        assert.are.same({ 2, "" }, { code, out }, table.concat(case[1], " "))
        assert.truthy(err:find(case[2], 1, true), err)
      end
      local code, out = run({ "quests", "board", "--course", "none", "--store", url })
      assert.are.same({ 0, "" }, { code, out })
    end)

    it("never shows a store's password", function()
      local code, out, err = run({ "quests", "board", "--course", "4", "--store",
        "postgres://quests:s3cr3t-pass@127.0.0.1:" .. helper.closed_port() .. "/db" })
      assert.are.same({ 1, "" }, { code, out })
      assert.truthy(err:find("postgres://quests:***@127.0.0.1", 1, true), err)
    end)
  end)

  it("has help for each action", function()
    for _, case in ipairs({
      { { "help", "quests" }, "Usage: thinkific quests <action>" },
      { { "quests", "--help" }, "Usage: thinkific quests <action>" },
      { { "quests", "check", "--help" }, "Usage: thinkific quests check" },
      { { "quests", "play", "-h" }, "Usage: thinkific quests play" },
      { { "quests", "board", "--help" }, "THINKIFIC_QUESTS" },
      { { "quests", "player", "--help" }, "--course" },
      { { "quests", "log", "--help" }, "--user" },
      { { "--help" }, "quests" },
    }) do
      local code, out = run(case[1])
      assert.are.equal(0, code)
      assert.truthy(out:find(case[2], 1, true), out)
    end
  end)
end)
