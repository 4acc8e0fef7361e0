-- `thinkific inbox status|list|show|retry|replay|purge` on both engines, text and --json, each
-- flag, the store from --inbox or THINKIFIC_INBOX, usage errors (2) and failures (1); no
-- output ever shows the store's password. Also the usage errors of `listen --inbox` and `work`.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local thinkific = require("thinkific")

-- Lines of text, without the last newline.
local function lines(text)
  local list = {}
  for line in text:gmatch("([^\n]*)\n") do list[#list + 1] = line end
  return list
end

describe("thinkific inbox #lua54", function()
  engines.each(function(engine)
    local url, run
    -- The store: 8003 dead, 8004 retrying, 8002 done, 8001 pending, received in that order.
    before_each(function()
      url = engine.fresh()
      run = helper.cli({ THINKIFIC_INBOX = url }, engine.secrets)
      local router = engines.router()
      router:on("*", function(event)
        if event.payload.fail then error("boom " .. event.id) end
      end)
      local function inbox(opts)
        return engines.inbox(url, router, opts)
      end
      local function accept(ib, id, topic, payload)
        assert.are.equal(200, (ib:accept(engines.delivery(id, topic, payload))))
      end
      local once = inbox({ max_attempts = 1 })
      accept(once, "8003", "user.signup", { fail = true })
      assert.are.equal(1, once:work{ limit = 1 })
      once:close()
      local slow = inbox({ max_attempts = 3, backoff = { base = 3600, max = 3600 } })
      accept(slow, "8004", "order.created", { fail = true })
      assert.are.equal(1, slow:work{ limit = 1 })
      accept(slow, "8002", "enrollment.created", {})
      assert.are.equal(1, slow:work{ limit = 1 })
      accept(slow, "8001", "order.created", {})
      slow:close()
    end)

    local function state_of(id)
      local ib = engines.inbox(url)
      local it = ib:get(id)
      ib:close()
      return it and it.state, it and it.attempts
    end

    it("status: the count of each state and the oldest pending event's age", function()
      local code, out, err = run({ "inbox", "status" })
      assert.are.same({ 0, "" }, { code, err })
      local l = lines(out)
      assert.are.same({ "pending   1", "running   0", "retrying  1", "dead      1", "done      1" },
        { table.unpack(l, 1, 5) })
      assert.matches("^oldest pending: %d+%.%d s ago$", l[6])
      assert.are.equal(6, #l)
      code, out = run({ "inbox", "status", "--json" })
      assert.are.equal(0, code)
      local stats = thinkific.decode(out)
      assert.are.same({ 1, 0, 1, 1, 1 }, { stats.pending, stats.running, stats.retrying, stats.dead,
        stats.done })
      assert.is_true(stats.oldest_pending_age >= 0 and stats.oldest_pending_age < 60)
    end)

    it("list: every event in the order received, by state, by topic, --limit, --json", function()
      local code, out, err = run({ "inbox", "list" })
      assert.are.same({ 0, "" }, { code, err })
      local l = lines(out)
      assert.are.equal(4, #l)
      local ids, states = {}, {}
      for i, line in ipairs(l) do
        local id, topic, state, attempts, at, last = line:match(
          "^(%d+)\t([%w_.]+)\t(%a+)\t(%d+)\t(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ)\t(.*)$")
        assert.truthy(id, line)
        ids[i], states[i] = id, state
        if id == "8003" then
          assert.are.same({ "user.signup", "1" }, { topic, attempts })
          assert.matches("boom 8003$", last)
        elseif id == "8001" then
          assert.are.same({ "0", "-" }, { attempts, last })
        end
        assert.truthy(at)
      end
      assert.are.same({ "8003", "8004", "8002", "8001" }, ids)
      assert.are.same({ "dead", "retrying", "done", "pending" }, states)

      local function ids_of(argv)
        local c, o, e = run(argv)
        assert.are.equal(0, c, e)
        local found = {}
        for _, line in ipairs(lines(o)) do found[#found + 1] = line:match("^(%d+)\t") end
        return found, e
      end
      assert.are.same({ "8003" }, (ids_of({ "inbox", "list", "--state", "dead" })))
      assert.are.same({ "8004", "8001" }, (ids_of({ "inbox", "list", "--topic", "order.*" })))
      assert.are.same({ "8001" }, (ids_of({ "inbox", "list", "--topic", "order.created", "--state",
        "pending" })))
      local found, e = ids_of({ "inbox", "list", "--limit", "2" })
      assert.are.same({ { "8003", "8004" }, "thinkific inbox: more events than --limit 2\n" }, { found, e })
      found, e = ids_of({ "inbox", "list", "--state", "running" })
      assert.are.same({ {}, "no events\n" }, { found, e })

      code, out = run({ "inbox", "list", "--json", "--state", "dead" })
      assert.are.equal(0, code)
      local items = thinkific.decode(out)
      assert.are.equal(1, #items)
      assert.are.same({ "8003", "user.signup", "dead", 1 }, { items[1].event_id, items[1].topic,
        items[1].state, items[1].attempts })
      assert.truthy(items[1].last_error:find("boom 8003", 1, true))
      assert.truthy(items[1].last_error:find("stack traceback", 1, true))
      code, out = run({ "inbox", "list", "--json", "--state", "running" })
      assert.are.same({ 0, "[]\n" }, { code, out })
    end)

    it("show: one event with its error, headers and body; --json; an unknown id", function()
      local code, out, err = run({ "inbox", "show", "8003" })
      assert.are.same({ 0, "" }, { code, err })
      assert.matches("^event_id        8003\ntopic           user%.signup\nstate           dead\n"
        .. "attempts        1\nreceived_at     %d%d%d%d%-[%d:T-]+Z\nnext_attempt_at %-\n"
        .. "finished_at     [%d:T-]+Z\nworker          [^\n]+\nlast_error      [^\n]*boom 8003\n", out)
      assert.truthy(out:find("\n                stack traceback:\n", 1, true), out)
      assert.truthy(out:find('\nheaders         {[^\n]*"x%-thinkific%-topic":"user%.signup"'), out)
      assert.truthy(out:find('\nevent           {[^\n]*"id":"8003"'), out)
      code, out = run({ "inbox", "show", "8003", "--json" })
      assert.are.equal(0, code)
      local it = thinkific.decode(out)
      assert.are.same({ "8003", "dead", true, "acme" }, { it.event_id, it.state,
        it.event.payload.fail, it.headers["x-thinkific-subdomain"] })
      code, out, err = run({ "inbox", "show", "9999" })
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^thinkific inbox: no event 9999 in [^\n]+\n$", err)
    end)

    it("retry: one dead or retrying event by id, or every dead one; other states refused", function()
      local code, out, err = run({ "inbox", "retry", "8003" })
      assert.are.same({ 0, "retried 1 event\n", "" }, { code, out, err })
      assert.are.same({ "pending", 0 }, { state_of("8003") })
      code, out = run({ "inbox", "retry", "8004", "--json" })
      assert.are.same({ 0, '{"retried":1}\n' }, { code, out })
      assert.are.same({ "pending", 0 }, { state_of("8004") })
      code, out, err = run({ "inbox", "retry", "8002" })
      assert.are.same({ 1, "", "thinkific inbox: event 8002 is done: retry takes dead and retrying "
        .. "events (replay runs done ones again)\n" }, { code, out, err })
      code, out, err = run({ "inbox", "retry", "9999" })
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^thinkific inbox: no event 9999 in ", err)
      code, out = run({ "inbox", "retry", "--dead" })
      assert.are.same({ 0, "retried 0 dead events\n" }, { code, out })
    end)

    it("retry --dead: every dead event", function()
      local code, out = run({ "inbox", "retry", "--dead", "--json" })
      assert.are.same({ 0, '{"retried":1}\n' }, { code, out })
      assert.are.same({ "pending", 0 }, { state_of("8003") })
      assert.are.equal("retrying", (state_of("8004")))
    end)

    it("replay: done and dead events by topic and time", function()
      local code, out = run({ "inbox", "replay", "--since", "2999-01-01T00:00:00Z" })
      assert.are.same({ 0, "replayed 0 events\n" }, { code, out })
      code, out = run({ "inbox", "replay", "--topic", "enrollment.*", "--since", "2000-01-01" })
      assert.are.same({ 0, "replayed 1 event\n" }, { code, out })
      assert.are.same({ "pending", 0 }, { state_of("8002") })
      code, out = run({ "inbox", "replay", "--json" })
      assert.are.same({ 0, '{"replayed":1}\n' }, { code, out }) -- 8003, dead
      assert.are.equal("pending", (state_of("8003")))
    end)

    it("purge: done events older than a duration", function()
      local code, out = run({ "inbox", "purge", "--older-than", "7d" })
      assert.are.same({ 0, "purged 0 done events\n" }, { code, out })
      code, out = run({ "inbox", "purge", "--older-than", "0s", "--json" })
      assert.are.same({ 0, '{"purged":1}\n' }, { code, out })
      assert.is_nil((state_of("8002")))
      assert.are.equal("dead", (state_of("8003")))
    end)

    it("takes the store from --inbox over THINKIFIC_INBOX", function()
      local code, _, err = run({ "inbox", "status", "--inbox", url }, { THINKIFIC_INBOX = "nope:x" })
      assert.are.same({ 0, "" }, { code, err })
      code, _, err = run({ "inbox", "status" }, { THINKIFIC_INBOX = "nope:x" })
      assert.are.equal(2, code)
      assert.matches("thinkific inbox: %-%-inbox: unknown scheme 'nope'", err)
    end)
  end)

  describe("usage", function()
    local dir
    helper.scratch_dir(function(d) dir = d end)
    local run = helper.cli({})

    it("prints the help of listen, work and inbox and their actions, exit 0", function()
      for _, case in ipairs({
        { { "--help" }, "Usage: thinkific <command>", { "  work ", "  inbox " } },
        { { "listen", "--help" }, "Usage: thinkific listen", { "--inbox", "--workers",
          "--no-group-commit", "THINKIFIC_INBOX" } },
        { { "work", "--help" }, "Usage: thinkific work", { "<rules>", "--inbox", "THINKIFIC_INBOX" } },
        { { "help", "work" }, "Usage: thinkific work" },
        { { "inbox", "--help" }, "Usage: thinkific inbox <action>", { "status", "list [--state S]",
          "show ID", "retry ID | retry --dead", "replay [--topic T] [--since ISO8601]",
          "purge --older-than DURATION", "THINKIFIC_INBOX" } },
        { { "help", "inbox", "list" }, "Usage: thinkific inbox list", { "--state", "--topic",
          "--limit", "--json", "--inbox" } },
        { { "inbox", "show", "--help" }, "Usage: thinkific inbox show", { "<id>", "--json" } },
        { { "inbox", "retry", "--help" }, "Usage: thinkific inbox retry", { "--dead" } },
        { { "inbox", "replay", "--help" }, "Usage: thinkific inbox replay", { "--since" } },
        { { "inbox", "purge", "--help" }, "Usage: thinkific inbox purge", { "--older-than" } },
        { { "inbox", "status", "--help" }, "Usage: thinkific inbox status", { "--json" } },
      }) do
        local what = table.concat(case[1], " ")
        local code, out, err = run(case[1])
        assert.are.same({ 0, "" }, { code, err }, what)
        assert.are.equal(case[2], out:sub(1, #case[2]), what .. ": " .. out)
        for _, word in ipairs(case[3] or {}) do
          assert.truthy(out:find(word, 1, true), what .. " mentions " .. word .. ":\n" .. out)
        end
      end
      local code, out = run({ "work", "--help" })
      assert.are.equal(0, code)
      assert.is_nil(out:find("--parent-pipe", 1, true), "an internal flag stays out of the help")
    end)

    it("refuses bad actions, options and values with exit 2, before it opens a store", function()
      local store = { THINKIFIC_INBOX = "sqlite:" .. "/nonexistent/x.db" }
      for _, case in ipairs({
        { { "inbox" }, "an action is required (status, list, show, retry, replay, purge)" },
        { { "inbox", "stats" }, "unknown action 'stats': did you mean 'status'?" },
        { { "inbox", "list", "--state", "ded" }, "unknown state 'ded': did you mean 'dead'? " },
        { { "inbox", "list", "--limit", "0" }, "--limit must be a number >= 1" },
        { { "inbox", "retry" }, "retry takes an event ID or --dead, one of them" },
        { { "inbox", "retry", "1", "--dead" }, "retry takes an event ID or --dead, one of them" },
        { { "inbox", "replay", "--since", "yesterday" }, "--since must be an ISO 8601 date or time" },
        { { "inbox", "purge" }, "thinkific inbox: missing option '--older-than'" },
        { { "inbox", "purge", "--older-than", "7" }, "--older-than must be a number and a unit" },
        { { "inbox", "show" }, "missing argument 'id'" },
        { { "inbox", "status", "--bogus" }, "unknown option '--bogus'" },
      }) do
        local code, out, err = run(case[1], store)
        local what = table.concat(case[1], " ")
        assert.are.same({ 2, "" }, { code, out }, what)
        assert.truthy(err:find(case[2], 1, true), what .. ": " .. err)
      end
      for _, argv in ipairs({ { "inbox", "status" }, { "work", "rules.lua" } }) do
        local code, _, err = run(argv)
        assert.are.equal(2, code)
        assert.truthy(err:find("no inbox store: pass --inbox STORE or set THINKIFIC_INBOX", 1, true), err)
      end
    end)

    it("does not make a SQLite inbox that is not there", function()
      local path = dir .. "/missing.db"
      local code, out, err = run({ "inbox", "status", "--inbox", "sqlite:" .. path })
      assert.are.same({ 1, "", "thinkific inbox: sqlite:" .. path .. ": no such inbox (thinkific "
        .. "listen --inbox or thinkific work makes it)\n" }, { code, out, err })
      assert.is_nil(io.open(path))
    end)

    it("listen: --workers and --no-group-commit need an inbox; --workers is 0..64", function()
      local rules = helper.write(dir, "rules.lua", "return require('thinkific').router{ secret = 's' }")
      for _, case in ipairs({
        { { "listen", rules, "--workers", "2" }, "--workers and --no-group-commit go with --inbox STORE" },
        { { "listen", rules, "--no-group-commit" }, "--workers and --no-group-commit go with --inbox" },
        { { "listen", rules, "--inbox", "sqlite:x", "--workers", "65" }, "--workers must be a number 0..64" },
        { { "listen", rules, "--inbox", "sqlite:x", "--workers", "two" }, "--workers must be" },
      }) do
        local code, out, err = run(case[1])
        assert.are.same({ 2, "" }, { code, out }, table.concat(case[1], " "))
        assert.truthy(err:find(case[2], 1, true), err)
      end
    end)

    it("listen and work: a rules file's inbox options are checked", function()
      local store = { THINKIFIC_INBOX = "sqlite:" .. dir .. "/opts.db" }
      for _, case in ipairs({
        { "return require('thinkific').router{ secret = 's' }, 5",
          "its second value must be a table of inbox options, got number" },
        { "return require('thinkific').router{ secret = 's' }, { workers = 2 }",
          "unknown inbox option 'workers' (lease, max_attempts, backoff, keep)" },
        { "return require('thinkific').router{ secret = 's' }, { lease = -1 }",
          "inbox options: lease must be a positive number of seconds" },
      }) do
        local rules = helper.write(dir, "opts.lua", case[1])
        for _, command in ipairs({ "listen", "work" }) do
          local code, out, err = run({ command, rules }, store)
          assert.are.same({ 1, "" }, { code, out }, command .. " " .. case[1])
          assert.truthy(err:find(case[2], 1, true), err)
        end
      end
    end)
  end)
end)
