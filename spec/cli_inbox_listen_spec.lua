-- `thinkific listen --inbox` and `thinkific work` as real processes, on both engines: the
-- inbox stores only what the router would accept; clear errors at start for stores that
-- cannot be used; Ctrl-C lets running handlers finish and stops the workers (130); workers
-- stop when their listener is gone; a worker killed mid-handler loses its event to another
-- after the lease, and the event completes once; retries with backoff, then dead, through the
-- command line; two workers and the listener never run one event twice at once.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local P = require("spec.inbox_processes")
local process = require("thinkific.sandbox.process")
local thinkific = require("thinkific")

local STORED = '{"status":"stored"}'

describe("thinkific listen --inbox and thinkific work #lua54", function()
  local dir, rules
  helper.scratch_dir(function(d)
    dir = d
    rules = P.rules(d)
  end)

  local children
  before_each(function() children = {} end)
  after_each(function()
    for _, child in ipairs(children) do child:stop(1) end
  end)
  local function keep(child)
    children[#children + 1] = child
    return child
  end

  local logs = 0
  local function new_log()
    logs = logs + 1
    return dir .. "/log" .. logs
  end

  engines.each(function(engine)
    local run
    before_each(function()
      run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = P.SECRET }, engine.secrets)
    end)

    -- The inbox on url, as the spec's own process sees it.
    local function open(url)
      return engines.inbox(url)
    end

    it("stores, over HTTP, nothing the router would refuse (401, 400, 413), and what it accepts",
      function()
        local url, log = engine.fresh(), new_log()
        local listen, hooks = P.listen(rules, 0, P.env(log, url, { SPEC_MAX_BODY = "2048" }),
          { "--workers", "0" })
        keep(listen)
        local good, headers = P.delivery("7001", { id = 1 })
        local function signed(body, more)
          local h = { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, P.SECRET) }
          for k, v in pairs(more or {}) do h[k] = v end
          return body, h
        end
        local big = assert(thinkific.encode({ id = "7002", resource = "order", action = "created",
          payload = { pad = string.rep("x", 3000) } }))
        for _, case in ipairs({
          { 401, good, { ["X-Thinkific-Topic"] = "order.created" } },
          { 401, good, { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(good, "not the secret") } },
          { 400, signed("{nope") },
          { 400, signed('{"id":"7003","resource":"order","action":"created"}') },
          { 400, signed(good, { ["X-Thinkific-Topic"] = "user.signup" }) },
          { 413, signed(big) },
        }) do
          local status = P.post(hooks, case[2], case[3])
          assert.are.equal(case[1], status)
        end
        local code, out = run({ "inbox", "status", "--json" }, { THINKIFIC_INBOX = url })
        assert.are.equal(0, code)
        assert.are.same({ pending = 0, running = 0, retrying = 0, dead = 0, done = 0,
          oldest_pending_age = 0 }, thinkific.decode(out))
        local status, body = P.post(hooks, good, headers)
        assert.are.same({ 200, STORED }, { status, body })
        status, body = P.post(hooks, good, headers)
        assert.are.same({ 200, '{"status":"duplicate"}' }, { status, body })
        code, out = run({ "inbox", "list" }, { THINKIFIC_INBOX = url })
        assert.are.equal(0, code)
        assert.matches("^7001\torder%.created\tpending\t0\t", out)
        assert.are.equal(1, select(2, out:gsub("\n", "")))
        -- Its lines: the URL, then one per delivery read (topic, id, status, time); the 413
        -- came from the Content-Length, before the body was read.
        assert.is_true(helper.wait_until(function()
          return select(2, (process.read_file(listen.out) or ""):gsub("\n", "")) >= 8
        end, 5), process.read_file(listen.out))
        local lines = process.read_file(listen.out)
        assert.truthy(lines:find("\norder.created 7001 200 ", 1, true), lines)
        assert.truthy(lines:find("\n- - 401 ", 1, true), lines)
        assert.are.equal("", listen:stderr())
      end)

    it("refuses, at start, a store it cannot use: one line, never the password", function()
      local cases = {
        { { "--inbox", "mysql://u:hunter22@h/db" }, 2, "--inbox: unknown scheme 'mysql'" },
        { { "--inbox", "postgres:nohost" }, 2, "--inbox: a PostgreSQL store is postgres://" },
      }
      if engine.name == "postgres" then
        local wrong = engine.server():url("wr'ong\\pass")
        cases[#cases + 1] = { { "--inbox", wrong }, 1, "password authentication failed",
          { "wr'ong", "wr%27ong" } }
        cases[#cases + 1] = { {}, 1, "password authentication failed", { "wr'ong", "wr%27ong" },
          { THINKIFIC_INBOX = wrong } }
      else
        local where = helper.capture("id -u") == "0\n" and "/proc/inbox.db" or "/nonexistent/inbox.db"
        -- (listen and work: "cannot open: …"; inbox status: "no such inbox", it makes none)
        cases[#cases + 1] = { { "--inbox", "sqlite:" .. where }, 1, "sqlite:" .. where .. ": " }
      end
      for _, case in ipairs(cases) do
        for _, command in ipairs({ { "listen", rules }, { "work", rules }, { "inbox", "status" } }) do
          local argv = { table.unpack(command) }
          for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
          local env = { SPEC_LOG = dir .. "/unused.log" }
          for k, v in pairs(case[5] or {}) do env[k] = v end
          local code, out, err = run(argv, env)
          local what = table.concat(argv, " ")
          assert.are.equal(case[2], code, what .. ": " .. err)
          assert.are.equal("", out, what)
          local last = err:match("([^\n]*)\n$")
          assert.truthy(last and last:find(case[3], 1, true), what .. ": " .. err)
          assert.truthy(last:find("^thinkific %a+: "), what .. ": " .. err)
          engines.shows_none(err, { "hunter22", table.unpack(case[4] or {}) })
          if case[2] == 1 then assert.are.equal(err, last .. "\n", what .. ": one line") end
        end
      end
    end)

    it("Ctrl-C on listen --workers 2: the running handler finishes, the workers stop, 130", function()
      local url, log = engine.fresh(), new_log()
      local listen, hooks = P.listen(rules, 0, P.env(log, url), { "--workers", "2" })
      keep(listen)
      -- Two workers, each (once its shell has exec'd setsid) in a session and a process group
      -- of its own, which the Ctrl-C below does not reach.
      local workers
      assert.is_true(helper.wait_until(function()
        workers = P.workers(listen:getpid())
        for _, pid in ipairs(workers) do
          local stat = process.read_file("/proc/" .. pid .. "/stat") or ""
          local pgrp, session = stat:match("^%d+ %b() %a %d+ (%d+) (%d+)")
          if tonumber(pgrp) ~= pid or tonumber(session) ~= pid then return false end
        end
        return #workers == 2
      end, 10), "two workers in sessions of their own")
      local status = P.post(hooks, P.delivery("7101", { sleep = 1.5 }))
      assert.are.equal(200, status)
      assert.is_true(P.wait_log(log, 1, 10, "start"), "the handler started")
      P.signal_group(listen, "INT") -- as a terminal does: the listener's whole process group
      assert.are.equal(130, P.exit_status(listen, 20))
      for _, pid in ipairs(workers) do assert.is_false(process.alive(pid), "worker " .. pid) end
      assert.are.same({ ["7101"] = 1 }, P.ended(log))
      local inbox = open(url)
      assert.are.equal("done", inbox:get("7101").state)
      inbox:close()
      local err = listen:stderr()
      assert.are.equal("", err)
    end)

    it("Ctrl-C on work: the running handler finishes, 130", function()
      local url, log = engine.fresh(), new_log()
      local inbox = open(url)
      assert.are.equal(200, (inbox:accept(P.delivery("7201", { sleep = 1 }))))
      local work = keep(P.start({ "work", rules }, P.env(log, url)))
      assert.are.equal("working on " .. inbox.store, work:first_line(20))
      assert.is_true(P.wait_log(log, 1, 10, "start"), "the handler started")
      P.signal_group(work, "INT")
      assert.are.equal(130, P.exit_status(work, 10))
      assert.are.same({ ["7201"] = 1 }, P.ended(log))
      assert.are.equal("done", inbox:get("7201").state)
      assert.are.equal("", work:stderr())
      inbox:close()
    end)

    it("stops the workers when their listener is killed", function()
      local url, log = engine.fresh(), new_log()
      local listen = P.listen(rules, 0, P.env(log, url), { "--workers", "2" })
      keep(listen)
      local workers
      assert.is_true(helper.wait_until(function()
        workers = P.workers(listen:getpid())
        return #workers == 2
      end, 10))
      assert.are.equal(0, helper.execute("kill -KILL " .. listen:getpid()))
      for _, pid in ipairs(workers) do
        assert.is_true(process.wait_exit(pid, 10), "worker " .. pid .. " still running")
      end
    end)

    if engine.name == "sqlite" then
      it("starts a worker again when one exits", function()
        local url, log = engine.fresh(), new_log()
        local listen, hooks = P.listen(rules, 0, P.env(log, url))
        keep(listen)
        local first
        assert.is_true(helper.wait_until(function()
          first = P.workers(listen:getpid())[1]
          return first ~= nil
        end, 10))
        assert.are.equal(0, helper.execute("kill -KILL " .. first))
        local second
        assert.is_true(helper.wait_until(function()
          second = P.workers(listen:getpid())[1]
          return second ~= nil and second ~= first
        end, 15), "another worker; listen's stderr: " .. listen:stderr())
        local ok, status = pcall(P.post, hooks, P.delivery("7501", {}))
        assert(ok, tostring(status) .. "; listen's stderr: " .. listen:stderr())
        assert.are.equal(200, status)
        assert.is_true(P.wait_log(log, 1, 10), "the new worker runs the handlers")
        local err = listen:stderr()
        assert.truthy(err:find("thinkific listen: worker " .. first .. " exited (signal 9)\n", 1, true), err)
        assert.truthy(err:find("thinkific listen: worker %d+ started\n"), err)
      end)
    end

    it("gives the event of a worker killed mid-handler to another after the lease: done once", function()
      local url, log = engine.fresh(), new_log()
      local inbox = open(url)
      assert.are.equal(200, (inbox:accept(P.delivery("7301", { sleep_first = 30 }))))
      local env = P.env(log, url, { SPEC_LEASE = "3" })
      local a = keep(P.start({ "work", rules }, env))
      assert.is_true(P.wait_log(log, 1, 20, "start"), "worker A started the handler")
      local b = keep(P.start({ "work", rules }, env))
      assert.truthy(b:first_line(20))
      assert.are.equal(0, helper.execute("kill -KILL " .. a:getpid()))
      assert.is_true(P.wait_log(log, 1, 20), "another worker completed the event")
      P.sleep(0.5)
      local lines = P.read_log(log)
      local starts, ends = {}, {}
      for _, l in ipairs(lines) do
        if l.what == "start" then starts[#starts + 1] = l end
        if l.what == "end" then ends[#ends + 1] = l end
      end
      assert.are.equal(2, #starts)
      assert.are.same({ a:getpid(), 1 }, { starts[1].pid, starts[1].attempt })
      assert.are.same({ b:getpid(), 2 }, { starts[2].pid, starts[2].attempt })
      assert.is_true(starts[2].at - starts[1].at >= 3 - 0.5, "not before the lease ended")
      assert.are.equal(1, #ends)
      assert.are.equal(b:getpid(), ends[1].pid)
      local it = inbox:get("7301")
      assert.are.same({ "done", 2 }, { it.state, it.attempts })
      inbox:close()
    end)

    it("retries a failing handler with backoff, then marks an always failing one dead; "
      .. "inbox list and retry through the command line", function()
      local url, log = engine.fresh(), new_log()
      local inbox = open(url)
      assert.are.equal(200, (inbox:accept(P.delivery("7401", { fail_until = 3 }))))
      assert.are.equal(200, (inbox:accept(P.delivery("7402", { fail_until = 99 }, "user.signup"))))
      local env = P.env(log, url, { SPEC_BACKOFF = "0.4", SPEC_MAX_ATTEMPTS = "4" })
      keep(P.start({ "work", rules }, env))
      assert.is_true(P.wait_log(log, 1, 30), "7401 done")
      assert.is_true(helper.wait_until(function() return inbox:get("7402").state == "dead" end, 30))
      -- 7401: attempts 1-3 fail, the 4th ends; each start within [d/2, d] of the failure
      -- before it (d = 0.4 * 2^(n-1)), plus what a worker takes to notice (it polls).
      local fails, starts = {}, {}
      for _, l in ipairs(P.read_log(log)) do
        if l.id == "7401" and l.what == "fail" then fails[l.attempt] = l.at end
        if l.id == "7401" and l.what == "start" then starts[l.attempt] = l.at end
      end
      assert.are.equal(4, #starts)
      for n = 1, 3 do
        local d, waited = 0.4 * 2 ^ (n - 1), starts[n + 1] - fails[n]
        assert.is_true(waited >= d / 2 and waited <= d + 0.6,
          ("delay %d: %.3f s, not within [%.2f, %.2f]"):format(n, waited, d / 2, d))
      end
      local code, out, err = run({ "inbox", "show", "7401", "--json" }, { THINKIFIC_INBOX = url })
      assert.are.equal(0, code, err)
      local it = thinkific.decode(out)
      assert.are.same({ "done", 4 }, { it.state, it.attempts })

      code, out = run({ "inbox", "list", "--state", "dead" }, { THINKIFIC_INBOX = url })
      assert.are.equal(0, code)
      assert.matches("^7402\tuser%.signup\tdead\t4\t[%dT:Z-]+\t[^\n]*spec: attempt 4 fails\n$", out)
      local before = #P.read_log(log)
      code, out = run({ "inbox", "retry", "7402" }, { THINKIFIC_INBOX = url })
      assert.are.same({ 0, "retried 1 event\n" }, { code, out })
      assert.is_true(helper.wait_until(function()
        local again = 0
        for i, l in ipairs(P.read_log(log)) do
          if i > before and l.id == "7402" and l.what == "fail" then again = again + 1 end
        end
        return again == 4 and inbox:get("7402").state == "dead"
      end, 30), "7402 ran again, from attempt 1, and is dead again")
      inbox:close()
    end)

    it("never runs one event in two workers at once: listen --workers 2 under load", function()
      local url, log = engine.fresh(), new_log()
      local listen, hooks = P.listen(rules, 0, P.env(log, url), { "--workers", "2" })
      keep(listen)
      local sb = helper.sandbox({ port = 0, secret = P.SECRET, delivery_concurrency = 16 })
      finally(function() sb:stop() end)
      helper.create_webhook(sb, "order.created", hooks)
      local N = 300
      for i = 1, N do assert(sb:trigger("order.created", { id = i, sleep = 0.004 })) end
      assert(sb:wait_deliveries(N, 60))
      assert.is_true(P.wait_log(log, N, 60), "every event ran")
      local open_runs, pids, runs = {}, {}, 0
      for _, l in ipairs(P.read_log(log)) do
        if l.what == "start" then
          assert.is_nil(open_runs[l.id], "event " .. l.id .. " started while it ran in " ..
            tostring(open_runs[l.id]))
          open_runs[l.id] = l.pid
          pids[l.pid] = true
          runs = runs + 1
        elseif l.what == "end" then
          assert.are.equal(l.pid, open_runs[l.id])
          open_runs[l.id] = nil
        end
      end
      assert.are.equal(N, runs, "each event ran once")
      assert.are.equal(2, P.count(pids), "both workers ran events")
    end)
  end)
end)
