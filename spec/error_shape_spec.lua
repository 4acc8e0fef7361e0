-- The error convention holds everywhere: every public function that can fail at run time
-- returns (or yields, for the webhooks iterator) an error table with a `kind`, a message and
-- a one-line tostring, never a plain string. The spec walks the public names: a method added
-- without a case here fails it.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local core = require("thinkific.core")

local KINDS = { network = true, timeout = true, tls = true, http = true, decode = true,
  limit = true, encode = true, store = true, rules = true }

-- Asserts that err is an error of the shape API.md states; `what` names the call.
local function assert_shape(err, what)
  assert.is_true(thinkific.is_error(err), what .. ": an error table, got " .. type(err))
  assert.is_true(KINDS[err.kind] == true, what .. ": kind " .. tostring(err.kind))
  assert.are.equal("string", type(err.message), what .. ": message")
  local text = tostring(err)
  assert.are.equal("string", type(text), what)
  assert.is_nil(text:find("\n"), what .. ": tostring is one line: " .. text)
end

-- Runs fn; asserts it returned nil (or false), err with err of the right shape.
local function assert_fails(what, fn)
  local value, err = fn()
  assert.is_falsy(value, what .. " succeeded")
  assert_shape(err, what)
  return err
end

-- Every public name of t: each must be a key of cases (a function that makes it fail) or of
-- never_fails (it cannot fail at run time, or only raises on misuse).
local function assert_covered(t, cases, never_fails, what)
  for name in pairs(t) do
    if type(name) == "string" and not name:find("^_") then
      assert.is_true(cases[name] ~= nil or never_fails[name] ~= nil,
        what .. "." .. name .. " has no case in spec/error_shape_spec.lua")
    end
  end
end

-- The client's methods that talk to the API, each made to fail.
local CLIENT_CASES = {
  list_webhooks = function(c) return c:list_webhooks{ limit = 1 } end,
  webhooks = function(c) return c:webhooks{ limit = 1 }() end,
  create_webhook = function(c)
    return c:create_webhook{ topic = "order.created", target_url = "https://example.com/h" }
  end,
  get_webhook = function(c) return c:get_webhook("1") end,
  update_webhook = function(c)
    return c:update_webhook("1", { topic = "order.created", target_url = "https://example.com/h" })
  end,
  delete_webhook = function(c) return c:delete_webhook("1") end,
  get_event = function(c) return c:get_event("1") end,
  get_events = function(c)
    local results, errs = c:get_events({ "1", "2" }, { concurrency = 2 })
    assert.are.equal(2, #results)
    assert_shape(errs[2], "get_events errs[2]")
    return results[1], errs[1]
  end,
  sync_webhooks = function(c)
    return c:sync_webhooks({ { topic = "order.created", target_url = "https://example.com/h" } })
  end,
}
-- close cannot fail; budget fails only with its store (its case is below).
local CLIENT_NEVER_FAILS = { close = true, budget = true }

describe("the error convention", function()
  it("thinkific.decode and thinkific.encode", function()
    assert_fails("decode", function() return thinkific.decode("{") end)
    assert_fails("decode of trailing text", function() return thinkific.decode("[1] x") end)
    assert_fails("encode", function() return thinkific.encode({ f = print }) end)
  end)

  it("thinkific.inbox with a store it cannot open (its methods: spec/inbox_intake_spec.lua)", function()
    local err = assert_fails("inbox", function()
      return thinkific.inbox{ store = "sqlite:/nonexistent/thinkific/inbox.db",
        router = thinkific.router{ secret = "x" } }
    end)
    assert.are.equal("store", err.kind)
  end)

  it("thinkific.quests: a store it cannot open, a rule that fails", function()
    local err = assert_fails("quests", function()
      return thinkific.quests{ store = "sqlite:/nonexistent/thinkific/quests.db" }
    end)
    assert.are.equal("store", err.kind)
    local quests = assert(thinkific.quests{ store = "sqlite::memory:", rules = {
      { name = "broken", on = "enrollment.created", xp = 1, when = function() error("no way") end } } })
    err = assert_fails("quests:score", function()
      return quests:score{ id = "1", resource = "enrollment", action = "created",
        payload = { user = { id = 1 }, course_id = 4 } }
    end)
    quests:close()
    assert.are.equal("rules", err.kind)
    assert.truthy(err.message:find("rule 'broken'", 1, true), err.message)
  end)

  it("covers every public name of the facade", function()
    local cases = { decode = true, encode = true, new = true, inbox = true, quests = true }
    -- sign and verify only raise on misuse; the rest are values, constructors and checks.
    local never = { _VERSION = true, null = true, array = true, is_error = true, sign = true,
      verify = true, router = true, topics = true }
    assert_covered(thinkific, cases, never, "thinkific")
  end)

  describe("client methods", function()
    it("cover every public method", function()
      assert_covered(core.client_methods, CLIENT_CASES, CLIENT_NEVER_FAILS, "client")
    end)

    it("client:budget and the calls with a rate_limit_store it cannot open: kind store", function()
      local c = thinkific.new{ api_key = "k", base_url = "http://127.0.0.1:" .. helper.closed_port()
        .. "/api/v2", rate_limit = 5, rate_limit_store = "sqlite:/nonexistent/thinkific/budget.db",
        retries = 0, sleep = function() end }
      assert.are.equal("store", assert_fails("budget", function() return c:budget() end).kind)
      for name, case in pairs(CLIENT_CASES) do
        assert.are.equal("store", assert_fails(name, function() return case(c) end).kind, name)
      end
      c:close()
    end)

    it("over libcurl, with nothing listening: kind network, sent false", function()
      local c = thinkific.new{ api_key = "k", base_url = "http://127.0.0.1:" .. helper.closed_port()
        .. "/api/v2", retries = 0, sleep = function() end }
      for name, case in pairs(CLIENT_CASES) do
        local err = assert_fails(name, function() return case(c) end)
        assert.are.equal("network", err.kind, name)
        assert.is_false(err.sent, name)
      end
      c:close()
    end)

    describe("against the sandbox with a wrong key", function()
      local sb
      helper.with_sandbox(function(s) sb = s end)

      it("kind http, status 401", function()
        local c = helper.client(sb, { api_key = "not-the-key", retries = 0 })
        for name, case in pairs(CLIENT_CASES) do
          local err = assert_fails(name, function() return case(c) end)
          assert.are.same({ "http", 401 }, { err.kind, err.status }, name)
        end
        c:close()
      end)
    end)

    it("through a transport that fails: the transport's error comes back as it is", function()
      local c = thinkific.new{ api_key = "k", retries = 0, transport = function()
        return nil, core.error{ kind = "timeout", message = "too slow", sent = true }
      end }
      for name, case in pairs(CLIENT_CASES) do
        local err = assert_fails(name, function() return case(c) end)
        assert.are.equal("timeout", err.kind, name)
      end
      c:close()
    end)
  end)

  it("listen.serve on a port in use: kind network", function()
    local listen = require("thinkific.listen")
    local first = assert(listen.serve{ router = thinkific.router{ secret = "x" }, port = 0,
      log = false })
    local port = assert(first.url:match(":(%d+)/$"))
    assert_fails("listen.serve", function()
      return listen.serve{ router = thinkific.router{ secret = "x" }, port = tonumber(port),
        log = false }
    end)
    first:close()
  end)

  describe("the spawned sandbox's control calls, once its process is gone", function()
    local SB_CASES = {
      trigger = function(sb) return sb:trigger("order.created", { id = 1 }) end,
      deliveries = function(sb) return sb:deliveries() end,
      delivery_summary = function(sb) return sb:delivery_summary() end,
      wait_deliveries = function(sb) return sb:wait_deliveries(1, 1) end,
      fault = function(sb) return sb:fault{ path = "/api/v2", status = 500 } end,
      clear_faults = function(sb) return sb:clear_faults() end,
      reset = function(sb) return sb:reset() end,
      stats = function(sb) return sb:stats() end,
      reset_stats = function(sb) return sb:reset_stats() end,
      record_event = function(sb)
        return sb:record_event{ id = "1", resource = "order", action = "created", payload = {} }
      end,
    }

    it("cover every public method, and each fails with an error table", function()
      local sb = helper.sandbox{ port = 0, timeout = 2 }
      assert_covered(getmetatable(sb).__index, SB_CASES, { stop = true }, "sb")
      assert(os.execute("kill -9 " .. sb.pid .. " 2>/dev/null"))
      assert(helper.wait_until(function()
        return not require("thinkific.sandbox.process").alive(sb.pid)
      end, 5), "the sandbox's process ended")
      for name, case in pairs(SB_CASES) do
        assert_fails("sb:" .. name, function() return case(sb) end)
      end
      sb:stop()
    end)
  end)
end)
