-- Nothing acknowledged is lost, with real processes: `thinkific listen --inbox` killed with
-- SIGKILL while the sandbox delivers 2,000 events, then started again on the same port (both
-- engines); PostgreSQL stopped in the middle of a run, then started again. The sandbox retries
-- what was not answered 2xx (its attempts and backoff outlast the outage); at the end every
-- event it saw a 2xx for is stored, and the handlers completed exactly the events it sent.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local P = require("spec.inbox_processes")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")

local EVENTS = 2000

-- The sandbox's attempts, summed up: the ids it got a 2xx for, and how many attempts had
-- another status (by status, "error" for none).
local function outcomes(sb)
  local attempts = assert(sb:deliveries())
  local ok, other = {}, {}
  for _, a in ipairs(attempts) do
    local status = a.status ~= thinkific.null and a.status or nil
    if status and status >= 200 and status < 300 then
      ok[a.event_id] = true
    else
      local key = status and tostring(status) or "error"
      other[key] = (other[key] or 0) + 1
    end
  end
  return ok, other
end

-- Checks the end: every acknowledged event stored, every event done (waiting up to 60 s: an
-- event whose outcome could not be written runs again once its lease ends), and the set of ids
-- the handlers completed is the set sent.
local function check_nothing_lost(url, sent, acknowledged, log)
  local inbox = engines.inbox(url)
  assert.is_true(helper.wait_until(function() return inbox:stats().done == P.count(sent) end, 60),
    "every event done")
  for id in pairs(acknowledged) do
    local it = inbox:get(id)
    assert.is_truthy(it, "acknowledged event " .. id .. " is not stored")
  end
  local ended = P.ended(log)
  for id in pairs(sent) do assert.is_truthy(ended[id], "event " .. id .. " never completed") end
  for id in pairs(ended) do assert.is_truthy(sent[id], "an event that was never sent: " .. id) end
  assert.are.equal(P.count(sent), inbox:stats().done)
  inbox:close()
end

describe("nothing lost #lua54", function()
  local dir, rules
  helper.scratch_dir(function(d)
    dir = d
    rules = P.rules(d)
  end)

  engines.each(function(engine)
    it("listen killed with SIGKILL while the sandbox delivers 2,000 events, started again", function()
      local url, log = engine.fresh(), dir .. "/" .. engine.name .. "-kill.log"
      local env = P.env(log, url)
      local port = helper.closed_port()
      local sb = helper.sandbox({ port = 0, secret = P.SECRET, delivery_attempts = 12,
        delivery_backoff = 0.2 })
      local listen = P.listen(rules, port, env)
      finally(function()
        listen:stop(1)
        sb:stop()
      end)
      helper.create_webhook(sb, "order.created", "http://127.0.0.1:" .. port .. "/")
      local sent = {}
      local function trigger(from, to)
        for i = from, to do
          sent[assert(sb:trigger("order.created", { id = i })).event_id] = true
        end
      end
      trigger(1, 600)
      local workers
      assert.is_true(helper.wait_until(function()
        workers = P.workers(listen:getpid())
        return #workers == 1
      end, 10), "its worker")
      assert.are.equal(0, helper.execute("kill -KILL " .. listen:getpid()))
      assert.is_true(process.wait_exit(listen:getpid(), 5))
      listen:stop(1)
      trigger(601, 800) -- while nothing listens
      for _, pid in ipairs(workers) do
        assert.is_true(process.wait_exit(pid, 30), "the killed listener's worker stopped")
      end
      listen = P.listen(rules, port, env)
      trigger(801, EVENTS)

      local delivered = sb:wait_deliveries(EVENTS, 120)
      assert.is_truthy(delivered, "the sandbox delivered every event")
      assert.is_true(P.wait_log(log, EVENTS, 120), "the handlers completed every event")
      local acknowledged, other = outcomes(sb)
      assert.are.equal(EVENTS, P.count(acknowledged))
      assert.is_true((other.error or 0) > 0, "some attempts found no listener")
      check_nothing_lost(url, sent, acknowledged, log)
    end)

    if engine.name == "postgres" then
      it("PostgreSQL stopped mid-run: 503, the sandbox retries, nothing acknowledged is lost", function()
        local url, log = engine.fresh(), dir .. "/pg-stop.log"
        local sb = helper.sandbox({ port = 0, secret = P.SECRET, delivery_attempts = 12,
          delivery_backoff = 0.3 })
        local listen, hooks = P.listen(rules, 0, P.env(log, url, { SPEC_LEASE = "3" }))
        local server = engine.server()
        finally(function()
          server:start()
          listen:stop(1)
          sb:stop()
        end)
        helper.create_webhook(sb, "order.created", hooks)
        local sent = {}
        local function trigger(from, to)
          for i = from, to do
            sent[assert(sb:trigger("order.created", { id = i })).event_id] = true
          end
        end
        trigger(1, 150)
        assert.is_truthy(sb:wait_deliveries(50, 30))
        server:stop()
        trigger(151, 300)
        assert.is_true(helper.wait_until(function()
          local _, other = outcomes(sb)
          return (other["503"] or 0) >= 20
        end, 30), "the listener answers 503 while the store is down")
        P.sleep(1.5) -- long enough for the worker to meet the outage too
        server:start()
        assert.is_truthy(sb:wait_deliveries(300, 120), "every event was delivered")
        if not P.wait_log(log, 300, 120) then
          local ok, other = outcomes(sb)
          local ended = {}
          for _, l in ipairs(P.read_log(log)) do
            if l.what == "end" then ended[l.id] = true end
          end
          local missing = {}
          for id in pairs(sent) do
            if not ended[id] then missing[#missing + 1] = id .. (ok[id] and " (acknowledged)" or "") end
          end
          error(("the handlers completed %d of 300 events; not: %s; answers other than 2xx: %s; "
            .. "inbox: %s; listen's stderr: %s"):format(P.count(ended), table.concat(missing, ", "),
            thinkific.encode(other), thinkific.encode(engines.inbox(url):stats()), listen:stderr()))
        end
        local acknowledged = outcomes(sb)
        check_nothing_lost(url, sent, acknowledged, log)
        assert.is_true(process.alive(listen:getpid()), "the listener lived through it")
        local err = listen:stderr()
        assert.truthy(err:find("thinkific work: ", 1, true), "stderr: " .. err)
        engines.shows_none(err .. process.read_file(listen.out), engine.secrets)
      end)
    end
  end)
end)
