-- The inbox's processing on both engines: the state machine, retries with equal jitter, dead
-- events and their retry, lease takeover, keep, list, get, replay and purge.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local inbox_module = require("thinkific.inbox")
local socket = require("socket")

local gettime = socket.gettime

-- A named function, so that its name shows in the traceback of the error it raises.
local function failing_handler(message)
  error(message, 0)
end

describe("thinkific.inbox processing", function()
  it("draws each retry delay uniformly within [d/2, d], d = min(max, base * 2^(n-1))", function()
    local backoff = { base = 2, max = 30 }
    for n = 1, 7 do
      local d = math.min(30, 2 * 2 ^ (n - 1))
      local low, high = math.huge, 0
      for _ = 1, 400 do
        local x = inbox_module._delay(backoff, n)
        assert.is_true(x >= d / 2 and x <= d, ("attempt %d: %g outside [%g, %g]"):format(n, x, d / 2, d))
        low, high = math.min(low, x), math.max(high, x)
      end
      -- 400 draws cover the range: none of the ends is left unvisited by more than a tenth of it.
      assert.is_true(low < d / 2 + d / 20 and high > d - d / 20, ("attempt %d: %g..%g"):format(n, low, high))
    end
  end)

  engines.each(function(engine)
    local inbox, router, url
    before_each(function()
      url = engine.fresh()
      router = engines.router()
      inbox = engines.inbox(url, router)
    end)
    after_each(function() inbox:close() end)

    local function accept(id, topic, payload, target)
      local body, headers = engines.delivery(id, topic, payload)
      local status, rbody = (target or inbox):accept(body, headers)
      assert.are.same({ 200, '{"status":"stored"}' }, { status, rbody })
    end

    -- Runs work{wait = 0.05} until pred() holds, for at most `seconds`; returns whether it did.
    local function work_until(pred, seconds, target)
      return helper.wait_until(function()
        assert((target or inbox):work{ wait = 0.05 })
        return pred()
      end, seconds or 10)
    end

    it("moves an event pending -> running -> done, runs its handler once, oldest received first", function()
      local seen = {}
      router:on("*", function(event, ctx)
        seen[#seen + 1] = { id = event.id, ctx = ctx, state = inbox:get(ctx.event_id).state }
      end)
      local t0 = gettime()
      accept("101")
      accept("102", "enrollment.completed")
      accept("103")
      local it = inbox:get("101")
      assert.are.equal("pending", it.state)
      assert.are.equal(0, it.attempts)
      assert.is_true(it.received_at >= t0 - 0.001 and it.received_at <= gettime())
      assert.is_true(it.next_attempt_at <= gettime())
      assert.are.equal("101", it.event.id)
      local stats = inbox:stats()
      assert.are.same({ 3, 0, 0, 0, 0 },
        { stats.pending, stats.running, stats.retrying, stats.dead, stats.done })
      assert.is_true(stats.oldest_pending_age >= 0 and stats.oldest_pending_age < 5)

      assert.are.equal(1, inbox:work{ limit = 1 })
      assert.are.equal(2, inbox:work{})
      assert.are.same({ "101", "102", "103" }, { seen[1].id, seen[2].id, seen[3].id })
      local ctx = seen[1].ctx
      assert.are.equal("running", seen[1].state)
      assert.are.same({ "101", 1, "order.created", "acme", "order.created" },
        { ctx.event_id, ctx.attempt, ctx.topic, ctx.subdomain, ctx.headers["x-thinkific-topic"] })
      assert.is_nil(ctx.headers["X-Thinkific-Topic"])
      assert.are.equal(it.received_at, ctx.received_at)

      it = inbox:get("101")
      assert.are.same({ "done", 1 }, { it.state, it.attempts })
      assert.is_nil(it.next_attempt_at)
      assert.is_true(it.finished_at >= it.received_at)
      stats = inbox:stats()
      assert.are.same({ 0, 0, 0, 0, 3, 0 }, { stats.pending, stats.running, stats.retrying, stats.dead,
        stats.done, stats.oldest_pending_age })
      assert.are.equal(0, inbox:work{ wait = 0.1 })
      assert.are.equal(3, #seen)
    end)

    it("retries a handler that fails three times: 4 attempts, each delay within the jitter bounds, done",
      function()
        inbox:close()
        local backoff = { base = 0.1, max = 10 }
        inbox = engines.inbox(url, router, { backoff = backoff })
        local started, failed = {}, {}
        router:on("order.created", function(_, ctx)
          started[#started + 1] = { attempt = ctx.attempt, at = gettime() }
          if ctx.attempt <= 3 then
            failed[ctx.attempt] = gettime()
            error("boom " .. ctx.attempt)
          end
        end)
        accept("201")
        local due = {}
        assert.is_true(work_until(function()
          local it = inbox:get("201")
          if it.state == "retrying" then due[it.attempts] = it.next_attempt_at end
          return it.state == "done"
        end))
        assert.are.same({ 1, 2, 3, 4 }, { started[1].attempt, started[2].attempt, started[3].attempt,
          started[4].attempt })
        assert.are.equal(4, #started)
        for n = 1, 3 do
          local d = math.min(backoff.max, backoff.base * 2 ^ (n - 1))
          local delay = due[n] - failed[n]
          -- due is set just after the handler failed: a few ms late at most, never early.
          assert.is_true(delay >= d / 2 and delay <= d + 0.05,
            ("delay before attempt %d: %.3f s, want [%.3f, %.3f]"):format(n + 1, delay, d / 2, d))
          assert.is_true(started[n + 1].at >= due[n], "attempt " .. (n + 1) .. " ran before it was due")
        end
        local it = inbox:get("201")
        assert.are.same({ "done", 4 }, { it.state, it.attempts })
        assert.truthy(it.last_error:find("boom 3", 1, true), it.last_error)
      end)

    it("marks an event that always fails dead after max_attempts, with the error and traceback; "
      .. "retry runs it again", function()
      inbox:close()
      inbox = engines.inbox(url, router, { max_attempts = 3, backoff = { base = 0.01, max = 0.02 } })
      local runs, fixed = 0, false
      router:on("order.created", function(event, ctx)
        runs = runs + 1
        if not fixed then failing_handler("always fails: " .. event.id .. " attempt " .. ctx.attempt) end
      end)
      accept("301")
      accept("302")
      assert.is_true(work_until(function() return inbox:stats().dead == 2 end))
      assert.are.equal(6, runs)
      local it = inbox:get("301")
      assert.are.same({ "dead", 3 }, { it.state, it.attempts })
      assert.is_nil(it.next_attempt_at)
      assert.truthy(it.last_error:find("always fails: 301 attempt 3", 1, true), it.last_error)
      assert.truthy(it.last_error:find("stack traceback:", 1, true), it.last_error)
      assert.truthy(it.last_error:find("failing_handler", 1, true), it.last_error)
      local dead = inbox:list{ state = "dead" }
      assert.are.same({ "301", "302" }, { dead[1].event_id, dead[2].event_id })
      assert.truthy(dead[1].last_error:find("attempt 3", 1, true))
      assert.are.equal(0, inbox:work{ wait = 0.1 })

      fixed = true
      assert.are.equal(1, inbox:retry("301"))
      it = inbox:get("301")
      assert.are.same({ "pending", 0 }, { it.state, it.attempts })
      assert.are.equal(1, inbox:work{})
      assert.are.same({ "done", 1 }, { inbox:get("301").state, inbox:get("301").attempts })
      assert.are.equal(0, inbox:retry("301")) -- done: not retried
      assert.are.equal(1, inbox:retry{ state = "dead" })
      assert.are.equal(1, inbox:work{})
      assert.are.equal(2, inbox:stats().done)
      assert.are.equal(8, runs)
    end)

    it("records any error a handler raises: a table, a NUL, bytes that are not UTF-8, a long text", function()
      inbox:close()
      inbox = engines.inbox(url, router, { max_attempts = 1 })
      -- (A string's traceback stops at its NUL, in Lua itself: an object's text keeps it.)
      local function object(text) return setmetatable({}, { __tostring = function() return text end }) end
      local raised = { ["311"] = object("a table"), ["312"] = object("nul\0and\xff\xfe"),
        ["313"] = string.rep("é", 20000) }
      router:on("order.created", function(event) error(raised[event.id], 0) end)
      for id in pairs(raised) do accept(id) end
      assert.are.equal(3, inbox:work{})
      assert.are.equal("a table", inbox:get("311").last_error)
      assert.are.equal("nul\\0and??", inbox:get("312").last_error)
      local long = inbox:get("313").last_error
      assert.is_true(#long <= 16384 + 10 and long:find("^éé") ~= nil)
      assert.are.equal(3, inbox:stats().dead)
    end)

    it("lets another worker take over an event whose lease expired, and drops the late outcome", function()
      inbox:close()
      inbox = engines.inbox(url, router, { lease = 0.3 })
      local router_b = engines.router()
      local other = engines.inbox(url, router_b, { lease = 30 })
      local log = {}
      router:on("order.created", function(_, ctx)
        log[#log + 1] = "A starts attempt " .. ctx.attempt
        socket.sleep(0.4) -- past the lease: A still runs when B looks
        local ran = assert(other:work{ worker = "B" })
        log[#log + 1] = "B ran " .. ran
        log[#log + 1] = "A ends"
      end)
      router_b:on("order.created", function(_, ctx)
        log[#log + 1] = "B runs attempt " .. ctx.attempt
        error("B failed")
      end)
      accept("401")
      assert.are.equal(1, inbox:work{ worker = "A" })
      assert.are.same({ "A starts attempt 1", "B runs attempt 2", "B ran 1", "A ends" }, log)
      local it = inbox:get("401")
      -- A succeeded after its lease had passed to B: B's outcome stands.
      assert.are.same({ "retrying", 2, "B" }, { it.state, it.attempts, it.worker })
      assert.truthy(it.last_error:find("B failed", 1, true))
      other:close()
    end)

    it("marks an event dead when the worker of its last attempt stopped without an outcome", function()
      inbox:close()
      inbox = engines.inbox(url, router, { lease = 0.2, max_attempts = 1 })
      local other = engines.inbox(url, router, { lease = 0.2, max_attempts = 1 })
      local runs = 0
      router:on("order.created", function()
        runs = runs + 1
        if runs == 1 then
          socket.sleep(0.3)
          assert.are.equal(1, other:work{}) -- takes it over: no attempt is left
        end
      end)
      accept("402")
      inbox:work{}
      other:close()
      local it = inbox:get("402")
      assert.are.equal(1, runs)
      assert.are.equal("dead", it.state)
      assert.truthy(it.last_error:find("attempt 1 of 1 ended without an outcome", 1, true), it.last_error)
    end)

    it("starts a claimed event only while half its lease is left, and gives the rest back", function()
      inbox:close()
      inbox = engines.inbox(url, router, { lease = 0.4 })
      local attempts, left = {}, {}
      router:on("order.created", function(event, ctx)
        attempts[event.id] = ctx.attempt
        left[#left + 1] = inbox:get(ctx.event_id).next_attempt_at - gettime()
        socket.sleep(0.15)
      end)
      for i = 1, 4 do accept("50" .. i) end
      -- One claim takes all four (handlers look quick until one has run); the third would start
      -- 0.3 s into a 0.4 s lease, so it and the fourth go back to pending and are claimed again.
      assert.are.equal(4, inbox:work{})
      assert.are.same({ ["501"] = 1, ["502"] = 1, ["503"] = 1, ["504"] = 1 }, attempts)
      for i, seconds in ipairs(left) do
        assert.is_true(seconds >= 0.2 - 0.05,
          ("event %d started with %.3f s of its lease left"):format(i, seconds))
      end
      for i = 1, 4 do assert.are.equal(1, inbox:get("50" .. i).attempts) end
    end)

    it("deletes done events older than keep, at most once a minute", function()
      inbox:close()
      inbox = engines.inbox(url, router, { keep = 0, max_attempts = 1 })
      router:on("order.created", function(event) if event.id == "602" then error("dead") end end)
      accept("601")
      accept("602")
      assert.are.equal(2, inbox:work{})
      assert.are.equal(0, inbox:work{})
      assert.are.equal("done", inbox:get("601").state) -- purged a moment ago: not again so soon
      inbox._purged_at = gettime() - 61
      assert.are.equal(0, inbox:work{})
      assert.is_nil(inbox:get("601"))
      assert.are.equal("dead", inbox:get("602").state) -- dead events stay
    end)

    it("lists by state and topic pattern, a page at a time", function()
      accept("701")
      accept("702", "order_transaction.succeeded")
      accept("703", "enrollment.completed")
      accept("704", "subscription.canceled")
      accept("705")
      local function ids(items)
        local out = {}
        for i, item in ipairs(items) do out[i] = item.event_id end
        return out
      end
      local page, cursor = inbox:list{ limit = 2 }
      assert.are.same({ "701", "702" }, ids(page))
      page, cursor = inbox:list{ limit = 2, after = cursor }
      assert.are.same({ "703", "704" }, ids(page))
      page, cursor = inbox:list{ limit = 2, after = cursor }
      assert.are.same({ "705" }, ids(page))
      assert.is_nil(cursor)
      assert.are.same({ "701", "705" }, ids(inbox:list{ topic = "order.*" }))
      assert.are.same({ "702" }, ids(inbox:list{ topic = "order_transaction.*" }))
      assert.are.same({ "704" }, ids(inbox:list{ topic = "subscription.canceled" }))
      assert.are.same({ "704" }, ids(inbox:list{ topic = "subscription.cancelled", state = "pending" }))
      assert.are.same({}, ids(inbox:list{ state = "done" }))
      assert.are.equal(5, #inbox:list{ topic = "*" })
      local item = inbox:list{ topic = "enrollment.completed" }[1]
      assert.are.same({ "703", "enrollment.completed", "pending", 0 },
        { item.event_id, item.topic, item.state, item.attempts })
      helper.argerror(1, "list", function() inbox:list{ state = "lost" } end)
      helper.argerror(1, "list", function() inbox:list{ topic = "order" } end)
      helper.argerror(1, "list", function() inbox:list{ limit = 0 } end)
      helper.argerror(1, "list", function() inbox:list{ after = "later" } end)
    end)

    it("replays done and dead events by topic, time and id; purges done ones", function()
      local runs = {}
      router:on("*", function(event) runs[event.id] = (runs[event.id] or 0) + 1 end)
      accept("801")
      accept("802", "enrollment.completed")
      accept("803")
      assert.are.equal(3, inbox:work{})
      assert.are.equal(0, inbox:replay{ since = gettime() + 60 })
      assert.are.equal(2, inbox:replay{ topic = "order.*" })
      assert.are.same({ "pending", 0 }, { inbox:get("801").state, inbox:get("801").attempts })
      assert.are.equal(2, inbox:work{})
      assert.are.equal(1, inbox:replay{ event_ids = { "802", "nope" } })
      assert.are.equal(1, inbox:work{})
      assert.are.same({ ["801"] = 2, ["802"] = 2, ["803"] = 2 }, runs)
      assert.are.equal(0, inbox:replay{ event_ids = {} })
      assert.are.equal(0, inbox:purge{ older_than = 3600 })
      assert.are.equal(3, inbox:purge{ older_than = 0 })
      assert.are.equal(0, inbox:stats().done)
      helper.argerror(1, "replay", function() inbox:replay{ since = "yesterday" } end)
      helper.argerror(1, "purge", function() inbox:purge{} end)
      helper.argerror(1, "retry", function() inbox:retry{ state = "done" } end)
    end)

    it("keys an integer id by its digits", function()
      accept(2 ^ 53)
      assert.are.equal("9007199254740992", inbox:get(2 ^ 53).event_id)
      assert.are.equal(2 ^ 53, inbox:get("9007199254740992").event.id)
      assert.is_nil(inbox:get("unknown"))
      helper.argerror(1, "get", function() inbox:get({}) end)
    end)
  end)
end)
