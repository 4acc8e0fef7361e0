-- The inbox's intake on both engines: refusals exactly as router:handle's, 200 only after the
-- commit, duplicates, group commit, every stored field unchanged, 503 while the store is down,
-- and clear errors for stores that cannot be used.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local thinkific = require("thinkific")
local sql = require("thinkific.sql")

local STORED, DUPLICATE = '{"status":"stored"}', '{"status":"duplicate"}'
local ENVELOPE = '{"error":"not a Thinkific event: id, resource, action and payload required"}'

-- A signed body: the raw text given, signed with the spec's secret.
local function signed(body, extra)
  local headers = { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, engines.SECRET) }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return body, headers
end

-- Deliveries the router refuses, each { name, body, headers }.
local function refused_deliveries()
  local good = engines.delivery("1", "order.created")
  local list = {
    { "too large", string.rep(" ", 300) .. good, {} },
    { "no signature", good, { ["X-Thinkific-Topic"] = "order.created" } },
    { "empty signature", good, { ["X-Thinkific-Hmac-Sha256"] = "" } },
    { "wrong signature", good, { ["x-thinkific-hmac-sha256"] = thinkific.sign(good, "other") } },
    { "not JSON", signed("{nope") },
    { "JSON null", signed("null") },
    { "an array", signed("[1, 2]") },
    { "no payload", signed('{"id":"1","resource":"order","action":"created"}') },
    { "an empty id", signed('{"id":"","resource":"order","action":"created","payload":{}}') },
    { "the topic header disagrees", signed(good, { ["X-Thinkific-Topic"] = "user.signup" }) },
  }
  list[1][2], list[1][3] = signed(list[1][2])
  return list
end

describe("thinkific.inbox intake", function()
  it("raises under nginx, where a database call would block the worker", function()
    _G.ngx = {}
    local ok, err = pcall(thinkific.inbox, { store = "sqlite:/nonexistent/x.db", router = engines.router() })
    _G.ngx = nil
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bad argument #1 to 'inbox'", 1, true), err)
    assert.truthy(tostring(err):find("does not run under nginx", 1, true), err)
  end)

  it("raises for bad options before it opens anything", function()
    local router = engines.router()
    for _, opts in ipairs({
      { router = router },
      { store = "sqlite:x.db" },
      { store = "sqlite:x.db", router = {} },
      { store = "sqlite:x.db", router = router, lease = 0 },
      { store = "sqlite:x.db", router = router, max_attempts = 1.5 },
      { store = "sqlite:x.db", router = router, backoff = { base = 2, max = 1 } },
      { store = "sqlite:x.db", router = router, keep = -1 },
      { store = "sqlite:x.db", router = router, workers = 2 },
      { store = "mysql://u:hunter22@h/db", router = router },
    }) do
      local msg = helper.argerror(1, "inbox", function() thinkific.inbox(opts) end)
      engines.shows_none(msg, { "hunter22" })
    end
    helper.argerror(1, "inbox", function() thinkific.inbox("sqlite:x.db") end)
  end)

  engines.each(function(engine)
    local inbox, router, url
    before_each(function()
      url = engine.fresh()
      router = engines.router{ max_body = 300 }
      router:on("*", function() error("no handler runs at intake") end)
      inbox = engines.inbox(url, router)
    end)
    after_each(function() inbox:close() end)

    it("refuses what router:handle refuses, with its status and body, and stores nothing", function()
      for _, case in ipairs(refused_deliveries()) do
        local want_status, want_body = router:handle(case[2], case[3])
        assert.is_true(want_status >= 400, case[1])
        local status, body = inbox:accept(case[2], case[3])
        assert.are.same({ want_status, want_body }, { status, body }, case[1])
      end
      assert.are.same({}, inbox:list{})
      helper.argerror(1, "accept", function() inbox:accept({}, {}) end)
      helper.argerror(2, "accept", function() inbox:accept("{}", "headers") end)
    end)

    it("refuses, as 400, bodies no JSON text can be: a raw NUL, bytes that are not UTF-8", function()
      local good = engines.delivery("9", "order.created")
      for _, case in ipairs({
        { good .. "\0", '{"error":"body is not JSON"}' },
        { good:gsub('"id":"9"', '"id":"9","x":"\xff"'), '{"error":"body is not JSON"}' },
        { good:gsub('"id":"9"', '"id":"9\\u0000"'), ENVELOPE },
        { good:gsub('"resource":"order"', '"resource":"ord\\u0000er"'), ENVELOPE },
      }) do
        local body = case[1]
        local status, rbody = inbox:accept(signed(body))
        assert.are.equal(400, status, ("%q"):format(body))
        if case[2] then assert.are.equal(case[2], rbody) end
      end
      -- \u0000 inside a string is JSON, and stored as sent.
      local body = good:gsub('"id":1', '"id":1,"note":"a\\u0000b"')
      assert.are.equal(200, (inbox:accept(signed(body, { ["X-Thinkific-Topic"] = "order.created" }))))
      assert.are.equal(body, inbox._db:first("SELECT body FROM thinkific_inbox").body)
      assert.are.equal(1, #inbox:list{})
    end)

    it("answers 200 only once the event is committed: another connection sees it as accept returns",
      function()
        local watcher = assert(sql.open(url))
        local body, headers = engines.delivery("1001", "order.created", { n = 1 })
        local status, rbody, event = inbox:accept(body, headers)
        local row = watcher:first("SELECT state, body FROM thinkific_inbox WHERE event_id = ?", "1001")
        assert.are.same({ 200, STORED, "1001" }, { status, rbody, event.id })
        assert.are.same({ state = "pending", body = body }, row)
        status, rbody = inbox:accept(body, headers)
        assert.are.same({ 200, DUPLICATE }, { status, rbody })
        -- The same id in another body (Thinkific's copies are equal): still one event, the first.
        local other = engines.delivery("1001", "order.created", { n = 2 })
        status, rbody = inbox:accept(signed(other))
        assert.are.same({ 200, DUPLICATE }, { status, rbody })
        local rows = watcher:query("SELECT body FROM thinkific_inbox")
        assert.are.same({ { body = body } }, rows)
        watcher:close()
      end)

    it("commits a group of deliveries in one transaction and answers each after it", function()
      local watcher = assert(sql.open(url))
      local a, ha = engines.delivery("1101")
      local b = engines.delivery("1102")
      local c, hc = engines.delivery("1103", "user.signup")
      local results = inbox:accept_many({
        { body = a, headers = ha },
        { body = b, headers = {} },
        { body = c, headers = hc },
        { body = a, headers = ha },
      })
      local count = watcher:first({ "SELECT count(*) AS n FROM thinkific_inbox", n = "integer" }).n
      assert.are.equal(2, count)
      assert.are.same({ 200, STORED, "1101" }, { results[1].status, results[1].body, results[1].event.id })
      assert.are.same({ 401, '{"error":"missing signature"}' }, { results[2].status, results[2].body })
      assert.are.same({ 200, STORED }, { results[3].status, results[3].body })
      assert.are.same({ 200, DUPLICATE }, { results[4].status, results[4].body })
      assert.are.same({ 200, DUPLICATE }, { inbox:accept_many({ { body = c, headers = hc } })[1].status,
        inbox:accept_many({ { body = c, headers = hc } })[1].body })
      assert.are.same({}, inbox:accept_many({}))
      helper.argerror(1, "accept_many", function() inbox:accept_many({ "body" }) end)
      watcher:close()
    end)

    it("tells the stored ids of a group from the new ones wherever they are in it", function()
      local watcher = assert(sql.open(url))
      local d, hd = engines.delivery("1201")
      assert.are.equal(STORED, inbox:accept_many({ { body = d, headers = hd } })[1].body)
      local group, want = {}, {}
      for i = 1, 70 do -- (past one INSERT's rows)
        local body, headers = engines.delivery(tostring(1300 + i))
        group[i], want[i] = { body = body, headers = headers }, STORED
      end
      table.insert(group, 40, { body = d, headers = hd })
      table.insert(want, 40, DUPLICATE)
      local results = inbox:accept_many(group)
      local got = {}
      for i, r in ipairs(results) do got[i] = r.body end
      assert.are.same(want, got)
      local function count()
        return watcher:first({ "SELECT count(*) AS n FROM thinkific_inbox", n = "integer" }).n
      end
      assert.are.equal(71, count())
      -- All new, in two INSERTs: all stored.
      for i = 1, 70 do
        local body, headers = engines.delivery(tostring(1400 + i))
        group[i] = { body = body, headers = headers }
      end
      group[71] = nil
      for _, r in ipairs(inbox:accept_many(group)) do assert.are.equal(STORED, r.body) end
      assert.are.equal(141, count())
      watcher:close()
    end)

    it("stores every field unchanged: quotes, backslashes, SQL, UTF-8 and 2^53", function()
      local NASTY = { "'", "\\", "\\'", "''", "a'b\\c\"d", "'; DROP TABLE thinkific_inbox; --",
        "Ünïcødé ✓ 😀", "%s ? {serial} $1" }
      local big = math.tointeger and math.tointeger(2 ^ 53) or 2 ^ 53
      router = engines.router()
      router:on("*", function(event) error(event.payload.text, 0) end)
      inbox:close()
      inbox = engines.inbox(url, router, { max_attempts = 1 })
      for i, s in ipairs(NASTY) do
        local id = s .. "#" .. i
        local body = assert(thinkific.encode({ id = id, resource = "order" .. s, action = s .. "x",
          payload = { text = s, big = big, list = { s, big } } }))
        local status = inbox:accept(signed(body, { ["X-Thinkific-Subdomain"] = s }))
        assert.are.equal(200, status, s)
      end
      assert.are.equal(#NASTY, inbox:work{ worker = "worker '; DROP TABLE x; -- ✓" })
      local items = inbox:list{}
      assert.are.equal(#NASTY, #items)
      for i, s in ipairs(NASTY) do
        local id = s .. "#" .. i
        local it = assert(inbox:get(id))
        assert.are.same({ id, "order" .. s .. "." .. s .. "x", "dead", "worker '; DROP TABLE x; -- ✓" },
          { it.event_id, it.topic, it.state, it.worker })
        assert.are.equal(s .. "\nstack traceback:", it.last_error:sub(1, #s + 17))
        assert.are.same({ text = s, big = big, list = { s, big } }, it.event.payload)
        -- (2^53 decodes as a float, by the decoder's rule; its digits are in the body as sent.)
        assert.truthy(inbox._db:first("SELECT body FROM thinkific_inbox WHERE event_id = ?", id).body
          :find('"big":9007199254740992', 1, true))
        assert.are.equal(s, it.headers["x-thinkific-subdomain"])
        assert.are.equal(id, items[i].event_id)
      end
      assert.are.equal(1, inbox:retry(NASTY[6] .. "#6"))
      assert.are.equal(2, inbox:replay{ event_ids = { NASTY[1] .. "#1", NASTY[7] .. "#7" } })
      assert.are.equal(3, inbox:stats().pending)
    end)

    it("refuses a store whose inbox schema is newer than this lua-thinkific", function()
      inbox:close()
      local db = assert(sql.open(url))
      assert.are.equal(1, db:exec("UPDATE thinkific_schema SET version = 99 WHERE component = 'inbox'"))
      db:close()
      local again, err = thinkific.inbox{ store = url, router = router }
      assert.is_nil(again)
      assert.are.equal("store", err.kind)
      assert.truthy(err.message:find("the inbox schema is version 99, newer than this lua-thinkific "
        .. "knows (1)", 1, true), err.message)
      engines.shows_none(tostring(err), engine.secrets)
      inbox = engines.inbox(engine.fresh(), router) -- for after_each
    end)

    if engine.name == "postgres" then
      it("answers 503 while PostgreSQL is down, acknowledging nothing, and stores again once it is up",
        function()
          local failures = {}
          inbox:close()
          router = engines.router()
          local ran = {}
          router:on("*", function(event) ran[#ran + 1] = event.id end)
          inbox = engines.inbox(url, router, { on_error = function(err) failures[#failures + 1] = err end })
          local server = engine.server()
          server:stop()
          finally(function() server:start() end)
          local body, headers = engines.delivery("1201")
          local status, rbody, event, extra = inbox:accept(body, headers)
          assert.are.same({ 503, '{"error":"store unavailable"}', "1201", { ["Retry-After"] = "5" } },
            { status, rbody, event.id, extra })
          local results = inbox:accept_many({ { body = body, headers = headers } })
          assert.are.equal(503, results[1].status)
          local n, err = inbox:work{}
          assert.is_nil(n)
          assert.are.equal("store", err.kind)
          for name, call in pairs({
            stats = function() return inbox:stats() end,
            list = function() return inbox:list{} end,
            get = function() return inbox:get("1201") end,
            retry = function() return inbox:retry("1201") end,
            replay = function() return inbox:replay{} end,
            purge = function() return inbox:purge{ older_than = 0 } end,
          }) do
            local none, why = call()
            assert.is_nil(none, name)
            assert.are.equal("store", why.kind, name)
            assert.is_nil(tostring(why):find("\n"), name .. ": one line")
          end
          assert.is_true(#failures >= 3)
          for _, f in ipairs(failures) do
            assert.are.equal("store", f.kind)
            engines.shows_none(tostring(f), engine.secrets)
          end
          server:start()
          status, rbody = inbox:accept(body, headers)
          assert.are.same({ 200, STORED }, { status, rbody })
          assert.are.equal(1, inbox:work{})
          assert.are.same({ "1201" }, ran)
        end)

      it("gives a refused password as nil, err at start, never the password", function()
        local server = engine.server()
        local wrong = "wr'ong\\pass"
        local none, err = thinkific.inbox{ store = server:url(wrong), router = router }
        assert.is_nil(none)
        assert.are.equal("store", err.kind)
        assert.truthy(err.message:find("password authentication failed", 1, true), err.message)
        engines.shows_none(tostring(err), { wrong, "wr%27ong", server.password })
        assert.truthy(tostring(inbox):find("thinkific.Inbox (postgres://thinkific_spec:***@", 1, true))
        engines.shows_none(tostring(inbox), engine.secrets)
      end)
    else
      it("gives a path it cannot write as nil, err at start", function()
        local none, err = thinkific.inbox{ store = "sqlite:/nonexistent/thinkific/inbox.db", router = router }
        assert.is_nil(none)
        assert.are.equal("store", err.kind)
        assert.truthy(err.message:find("cannot open: unable to open database file", 1, true), err.message)
      end)
    end
  end)
end)
