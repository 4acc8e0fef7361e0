-- thinkific.router: the order of checks of handle, routing, filters, dedupe, failures.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local SECRET = "router-secret"
local ORDER = helper.fixture("payloads/order.created.json")
local ENROLLMENT = helper.fixture("payloads/enrollment.created.json")

local function signed(body, secret)
  return { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, secret or SECRET) }
end

local function envelope(resource, action, payload, id)
  return assert(thinkific.encode{ id = id or "1", resource = resource, action = action,
    tenant_id = "3", created_at = "2024-01-01T00:00:00Z", payload = payload or {} })
end

describe("router #memory", function()
  describe("construction", function()
    it("raises with neither secret nor secrets, both, or bad options", function()
      for _, opts in ipairs{ {}, { secrets = {} }, { secret = "" }, { secret = "a", secrets = { "b" } },
                             { secret = "a", foo = 1 }, { secret = "a", max_body = 0 },
                             { secret = "a", dedupe = -1 }, { secret = "a", dedupe = {} },
                             { secrets = { "a", 42 } } } do
        assert.has_error(function() thinkific.router(opts) end)
      end
      assert.has_error(function() thinkific.router() end)
    end)

    it("names the caller's line and never the secret in its errors", function()
      local ok, err = pcall(function() local r = thinkific.router{ secret = "s3cr3t", x = 1 } return r end)
      assert.is_false(ok)
      assert.truthy(err:find("router_spec.lua:%d+: bad argument #1 to 'router'"), err)
      assert.is_nil(err:find("s3cr3t", 1, true))
    end)
  end)

  describe("handle, in the order of its checks", function()
    local router, calls
    before_each(function()
      calls = 0
      router = thinkific.router{ secret = SECRET, max_body = 4096 }
      router:on("*", function() calls = calls + 1 end)
    end)

    it("raises for a table body (signatures are over the raw bytes)", function()
      assert.has_error(function() router:handle({}, {}) end)
      assert.has_error(function() router:handle(nil, {}) end)
    end)

    it("413 for a body over max_body, before the signature is checked", function()
      local status, body = router:handle(("x"):rep(4097), {})
      assert.are.equal(413, status)
      assert.truthy(thinkific.decode(body).error)
      assert.are.equal(0, calls)
    end)

    it("a 10 MB body gets 413 at once, without being parsed", function()
      local r = thinkific.router{ secret = SECRET }
      local big = '{"id":"1","resource":"order","action":"created","payload":{"x":"'
        .. ("a"):rep(10 * 1024 * 1024) .. '"}}'
      assert.are.equal(413, (r:handle(big, signed(big))))
    end)

    it("401 for a missing, empty, wrong, truncated or non-hex signature", function()
      local sig = thinkific.sign(ORDER, SECRET)
      for _, headers in ipairs{ {}, { ["X-Thinkific-Hmac-Sha256"] = "" },
                                signed(ORDER, "wrong-secret"),
                                { ["X-Thinkific-Hmac-Sha256"] = sig:sub(1, 32) },
                                { ["X-Thinkific-Hmac-Sha256"] = sig:sub(1, 62) .. "zz" },
                                { ["X-Thinkific-Hmac-Sha256"] = sig .. "00" } } do
        assert.are.equal(401, (router:handle(ORDER, headers)))
      end
      assert.are.equal(0, calls)
    end)

    it("401 for a tampered body", function()
      local headers = signed(ORDER)
      local tampered = ORDER:gsub("5000", "5001", 1)
      assert.are.equal(401, (router:handle(tampered, headers)))
      assert.are.equal(0, calls)
    end)

    it("accepts header names in any case, and list values", function()
      local sig = thinkific.sign(ORDER, SECRET)
      assert.are.equal(200, (router:handle(ORDER, { ["x-thinkific-hmac-sha256"] = sig })))
      local r2 = thinkific.router{ secret = SECRET, dedupe = 0 }
      assert.are.equal(200, (r2:handle(ORDER, { ["X-THINKIFIC-HMAC-SHA256"] = { sig } })))
    end)

    it("400 for JSON that is not an envelope, and for very deep nesting", function()
      for _, body in ipairs{ "not json", "[]", '"x"', "null", '{"id":"1","resource":"order"}',
                             '{"id":"1","resource":"order","action":"created","payload":"x"}',
                             '{"resource":"order","action":"created","payload":{}}',
                             ("["):rep(100000) .. ("]"):rep(100000) } do
        local r = thinkific.router{ secret = SECRET, max_body = 1048576 }
        local status = r:handle(body, signed(body))
        assert.are.equal(400, status, body:sub(1, 40))
      end
      assert.are.equal(0, calls)
    end)

    it("400 when X-Thinkific-Topic disagrees with resource.action", function()
      local headers = signed(ORDER)
      headers["X-Thinkific-Topic"] = "order.deleted"
      assert.are.equal(400, (router:handle(ORDER, headers)))
      headers["X-Thinkific-Topic"] = "order.created"
      assert.are.equal(200, (router:handle(ORDER, headers)))
    end)

    it("gives the decoded event as a third result once it was verified", function()
      local _, _, event = router:handle(ORDER, signed(ORDER))
      assert.are.equal("20180126172320940835610", event.id)
      local status, _, none = router:handle(ORDER, signed(ORDER, "wrong"))
      assert.are.equal(401, status)
      assert.is_nil(none)
    end)

    it("200 once, then 200 duplicate without running the handlers again", function()
      local status, body = router:handle(ORDER, signed(ORDER))
      assert.are.equal(200, status)
      assert.are.same({ status = "ok" }, thinkific.decode(body))
      status, body = router:handle(ORDER, signed(ORDER))
      assert.are.equal(200, status)
      assert.are.same({ status = "duplicate" }, thinkific.decode(body))
      assert.are.equal(1, calls)
    end)

    it("verifies with any of several secrets (rotation)", function()
      local r = thinkific.router{ secrets = { "new", "old" } }
      assert.are.equal(200, (r:handle(ORDER, signed(ORDER, "old"))))
      assert.are.equal(200, (r:handle(ENROLLMENT, signed(ENROLLMENT, "new"))))
      assert.are.equal(401, (r:handle(ORDER, signed(ORDER, "older"))))
    end)
  end)

  describe("routing", function()
    local function deliver(router, body)
      return router:handle(body, signed(body))
    end

    it("runs exact, resource.*, * and list registrations in registration order", function()
      local router = thinkific.router{ secret = SECRET }
      local order = {}
      router:on("*", function() order[#order + 1] = "star" end)
      router:on("order.created", function() order[#order + 1] = "exact" end)
      router:on("enrollment.*", function() order[#order + 1] = "enrollment.*" end)
      router:on("order.*", function() order[#order + 1] = "order.*" end)
      router:on({ "user.signup", "order.created" }, function() order[#order + 1] = "list" end)
      assert.are.equal(200, (deliver(router, ORDER)))
      assert.are.same({ "star", "exact", "order.*", "list" }, order)
    end)

    it("gives the handler the decoded event and ctx", function()
      local router = thinkific.router{ secret = SECRET }
      local got_event, got_ctx
      router:on("order.created", function(event, ctx) got_event, got_ctx = event, ctx end)
      local headers = signed(ORDER)
      headers["X-Thinkific-Subdomain"] = "acme"
      headers["X-Thinkific-Topic"] = "order.created"
      assert.are.equal(200, (router:handle(ORDER, headers)))
      assert.are.equal("20180126172320940835610", got_event.id)
      assert.are.equal("integer", helper.number_type(got_event.payload.amount_cents))
      assert.are.equal(thinkific.null, got_event.payload.affiliate_referral_code)
      assert.are.equal("order.created", got_ctx.topic)
      assert.are.equal("acme", got_ctx.subdomain)
      assert.are.equal(headers, got_ctx.headers)
    end)

    it("filters on payload fields, dotted paths and null", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 0 }
      local hits = {}
      router:on("enrollment.created", { course_id = 4 }, function() hits[#hits + 1] = "course 4" end)
      router:on("enrollment.created", { course_id = 5 }, function() hits[#hits + 1] = "course 5" end)
      router:on("enrollment.*", { ["user.email"] = "ninjas@thinkific.com" },
        function() hits[#hits + 1] = "email" end)
      router:on("*", { completed_at = thinkific.null }, function() hits[#hits + 1] = "null" end)
      router:on("*", { ["course.name"] = "Introduction to Webhooks", free_trial = false },
        function() hits[#hits + 1] = "two fields" end)
      router:on("*", { ["missing.deep.path"] = 1 }, function() hits[#hits + 1] = "missing" end)
      assert.are.equal(200, (deliver(router, ENROLLMENT)))
      assert.are.same({ "course 4", "email", "null", "two fields" }, hits)
    end)

    it("filters with a predicate", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 0 }
      local hits = 0
      router:on("order.created", function(event) return event.payload.amount_cents >= 5000 end,
        function() hits = hits + 1 end)
      router:on("order.created", function(event) return event.payload.amount_cents > 5000 end,
        function() hits = hits + 10 end)
      assert.are.equal(200, (deliver(router, ORDER)))
      assert.are.equal(1, hits)
    end)

    it("treats canceled and cancelled as one", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 0 }
      local hits = 0
      router:on("subscription.cancelled", function() hits = hits + 1 end)
      router:on("subscription.canceled", function() hits = hits + 10 end)
      local body = envelope("subscription", "canceled", { id = 1 })
      local headers = signed(body)
      headers["X-Thinkific-Topic"] = "subscription.cancelled"
      assert.are.equal(200, (router:handle(body, headers)))
      body = envelope("subscription", "cancelled", { id = 1 }, "2")
      assert.are.equal(200, (deliver(router, body)))
      assert.are.equal(22, hits)
    end)

    it("off removes a registration", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 0 }
      local hits = 0
      local h = router:on("order.created", function() hits = hits + 1 end)
      assert.are.equal(200, (deliver(router, ORDER)))
      assert.is_true(router:off(h))
      assert.is_false(router:off(h))
      assert.are.equal(200, (deliver(router, ORDER)))
      assert.are.equal(1, hits)
    end)

    it("answers 200 when no handler matches", function()
      local router = thinkific.router{ secret = SECRET }
      router:on("user.signup", function() error("not this one") end)
      assert.are.equal(200, (deliver(router, ORDER)))
    end)

    it("raises for bad registrations", function()
      local router = thinkific.router{ secret = SECRET }
      for _, args in ipairs{ { "order", print }, { "order.created.x", print }, { "", print },
                             { {}, print }, { "order.created" }, { "order.created", 42, print },
                             { "order.created", {}, "not a function" }, { 42, print } } do
        assert.has_error(function() router:on(args[1], args[2], args[3]) end)
      end
      assert.has_error(function() router.on(nil, "*", print) end)
    end)
  end)

  describe("failures", function()
    it("one failing handler never stops the others; 500; on_error per failure", function()
      local router = thinkific.router{ secret = SECRET }
      local ran, reported = {}, {}
      router:on("order.created", function() ran[#ran + 1] = 1 end)
      router:on("order.created", function() error("first failure") end)
      router:on("order.created", function() ran[#ran + 1] = 3 end)
      router:on("order.*", function() error({ code = 42 }) end)
      router:on_error(function(err, event, ctx)
        reported[#reported + 1] = { err = err, id = event.id, topic = ctx.topic }
      end)
      local status = router:handle(ORDER, signed(ORDER))
      assert.are.equal(500, status)
      assert.are.same({ 1, 3 }, ran)
      assert.are.equal(2, #reported)
      assert.truthy(tostring(reported[1].err):find("first failure", 1, true))
      assert.truthy(tostring(reported[1].err):find("stack traceback", 1, true))
      assert.are.equal("20180126172320940835610", reported[1].id)
      assert.are.equal("order.created", reported[1].topic)
    end)

    it("forgets the id of a failed delivery, so the redelivery runs the handlers", function()
      local router = thinkific.router{ secret = SECRET }
      local attempts, done = 0, 0
      router:on("order.created", function()
        attempts = attempts + 1
        if attempts == 1 then error("temporary") end
        done = done + 1
      end)
      assert.are.equal(500, (router:handle(ORDER, signed(ORDER))))
      assert.are.equal(200, (router:handle(ORDER, signed(ORDER))))
      local _, body = router:handle(ORDER, signed(ORDER))
      assert.are.same({ status = "duplicate" }, thinkific.decode(body))
      assert.are.equal(1, done)
    end)

    it("a failing predicate is a failure, and a failing on_error changes nothing", function()
      local router = thinkific.router{ secret = SECRET }
      router:on("order.created", function() error("bad predicate") end, function() end)
      router:on_error(function() error("bad error handler") end)
      assert.are.equal(500, (router:handle(ORDER, signed(ORDER))))
    end)

    it("dispatch runs handlers without signature or dedupe and returns ok, errs", function()
      local router = thinkific.router{ secret = SECRET }
      local hits = 0
      router:on("order.created", function() hits = hits + 1 end)
      local event = thinkific.decode(ORDER)
      assert.is_true((router:dispatch(event)))
      assert.is_true((router:dispatch(event, { topic = "order.created", headers = {} })))
      assert.are.equal(2, hits)
      router:on("order.created", function() error("x") end)
      local ok, errs = router:dispatch(event)
      assert.is_false(ok)
      assert.are.equal(1, #errs)
      assert.has_error(function() router:dispatch("not a table") end)
    end)

    it("a handler may yield (as under nginx)", function()
      local router = thinkific.router{ secret = SECRET }
      local resumed = false
      router:on("order.created", function()
        coroutine.yield("paused")
        resumed = true
      end)
      local co = coroutine.wrap(function() return router:handle(ORDER, signed(ORDER)) end)
      assert.are.equal("paused", co())
      assert.are.equal(200, co())
      assert.is_true(resumed)
    end)
  end)

  describe("dedupe", function()
    it("remembers at most dedupe ids", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 2 }
      local hits = 0
      router:on("*", function() hits = hits + 1 end)
      local bodies = {}
      for i = 1, 3 do bodies[i] = envelope("order", "created", { id = i }, tostring(i)) end
      for i = 1, 3 do assert.are.equal(200, (router:handle(bodies[i], signed(bodies[i])))) end
      assert.are.equal(3, hits)
      router:handle(bodies[3], signed(bodies[3])) -- remembered: duplicate
      assert.are.equal(3, hits)
      router:handle(bodies[1], signed(bodies[1])) -- forgotten: runs again
      assert.are.equal(4, hits)
    end)

    it("tells numeric ids apart by every digit", function()
      local router = thinkific.router{ secret = SECRET }
      local seen = {}
      router:on("*", function(event) seen[#seen + 1] = event.id end)
      for _, id in ipairs{ 9007199254740991, 9007199254740990, 123456789012345, 123456789012346 } do
        local body = envelope("order", "created", { id = 1 }, id)
        local status, answer = router:handle(body, signed(body))
        assert.are.equal(200, status)
        assert.are.equal('{"status":"ok"}', answer)
      end
      assert.are.equal(4, #seen)
    end)

    it("dedupe = 0 turns it off", function()
      local router = thinkific.router{ secret = SECRET, dedupe = 0 }
      local hits = 0
      router:on("*", function() hits = hits + 1 end)
      for _ = 1, 3 do router:handle(ORDER, signed(ORDER)) end
      assert.are.equal(3, hits)
    end)

    it("uses a user store: add claims before the handlers run, delete on failure, set on success",
      function()
        local log = {}
        local store = { ids = {} }
        function store.add(self, id, value, ttl)
          log[#log + 1] = ("add %s %s %s"):format(id, value, ttl)
          if self.ids[id] then return false, "exists" end
          self.ids[id] = value
          return true
        end
        function store.set(self, id, value, ttl)
          log[#log + 1] = ("set %s %s %s"):format(id, value, ttl)
          self.ids[id] = value
          return true
        end
        function store.get(self, id)
          log[#log + 1] = "get " .. id
          return self.ids[id]
        end
        function store.delete(self, id)
          log[#log + 1] = "delete " .. id
          self.ids[id] = nil
        end
        local router = thinkific.router{ secret = SECRET, dedupe = store, lease = 30, keep = 3600 }
        local fail = true
        router:on("*", function(event)
          log[#log + 1] = "handler, claimed: " .. tostring(store.ids[event.id])
          if fail then error("x") end
        end)
        assert.are.equal(500, (router:handle(ORDER, signed(ORDER))))
        fail = false
        assert.are.equal(200, (router:handle(ORDER, signed(ORDER))))
        assert.are.equal(200, (router:handle(ORDER, signed(ORDER))))
        local id = "20180126172320940835610"
        assert.are.same({ "add " .. id .. " running 30", "handler, claimed: running", "delete " .. id,
                          "add " .. id .. " running 30", "handler, claimed: running",
                          "set " .. id .. " done 3600",
                          "add " .. id .. " running 30", "get " .. id }, log)
      end)

    it("raises for a store without add, set, get or delete, naming what is missing", function()
      local function noop() end
      local msg = helper.argerror(1, "router", function()
        thinkific.router{ secret = SECRET, dedupe = { add = noop, delete = noop } }
      end)
      assert.truthy(msg:find("no method set or get", 1, true), msg)
      msg = helper.argerror(1, "router", function()
        thinkific.router{ secret = SECRET, dedupe = { add = noop, set = noop, get = noop, delete = 1 } }
      end)
      assert.truthy(msg:find("no method delete ", 1, true), msg)
      helper.argerror(1, "router", function() thinkific.router{ secret = SECRET, dedupe = "x" } end)
    end)

    it("lease and keep: defaults 60 and 604800, readable; bad values raise", function()
      local router = thinkific.router{ secret = SECRET }
      assert.are.equal(60, router.lease)
      assert.are.equal(604800, router.keep)
      router = thinkific.router{ secret = SECRET, lease = 0.5, keep = 0 }
      assert.are.equal(0.5, router.lease)
      assert.are.equal(0, router.keep)
      for _, opts in ipairs{ { lease = 0 }, { lease = -1 }, { lease = "60" }, { lease = 0 / 0 },
                             { lease = math.huge }, { keep = -1 }, { keep = math.huge } } do
        opts.secret = SECRET
        helper.argerror(1, "router", function() thinkific.router(opts) end)
      end
    end)
  end)
end)
