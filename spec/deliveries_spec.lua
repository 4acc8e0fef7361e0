-- Deliveries from the sandbox, over real HTTP on 127.0.0.1: signed as Thinkific signs them,
-- retried with backoff, recorded attempt by attempt; end to end with the router and
-- thinkific.listen, 2,000 at a time. Every wait is bounded (socket timeouts, deadlines).
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")
local httpc = require("thinkific.sandbox.httpc")

local TIMEOUT = 5

-- A tiny receiver on plain LuaSocket, independent of the library's HTTP code: it accepts one
-- connection at a time, blocking with a timeout (the sandbox is another process).
local function receiver()
  local srv = assert(socket.bind("127.0.0.1", 0))
  srv:settimeout(TIMEOUT)
  local _, port = srv:getsockname()
  return srv, ("http://127.0.0.1:%d/hooks/thinkific"):format(port)
end

-- One HTTP/1.1 request read from a connected socket (plain or TLS): { line (the request
-- line), method, target, headers (lower-case names), body (raw bytes, by Content-Length) }.
local function read_request(c)
  local line = assert(c:receive("*l"))
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.1$")
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    headers[name:lower()] = value
  end
  local body = assert(c:receive(tonumber(headers["content-length"])))
  return { line = line, method = method, target = target, headers = headers, body = body }
end

-- The next delivery: conn, the request (read_request).
local function accept(srv)
  local c = assert(srv:accept())
  c:settimeout(TIMEOUT)
  return c, read_request(c)
end

local function answer(c, status, body)
  body = body or ""
  c:send(("HTTP/1.1 %d Whatever\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
    :format(status, #body, body))
  c:close()
end

-- The raw text of GET /api/v2/events/{id}.
local function event_text(sb, id)
  local res = assert(httpc.request({ url = sb.url .. "/events/" .. id, timeout = TIMEOUT,
    headers = { Authorization = "Bearer " .. sb.api_key } }))
  assert.are.equal(200, res.status)
  return res.body
end

local function webhook(sb, topic, url)
  local c = helper.client(sb)
  local wh = assert(c:create_webhook{ topic = topic, target_url = url })
  c:close()
  return wh
end

-- An order.created payload as JSON text, with the traps: integers, a 20-digit number, an empty
-- array, nulls, a float, unicode.
local ORDER = '{"id":19796,"amount_cents":5000,"amount_dollars":50,"big":123456789012345678901,'
  .. '"items":[],"coupon":null,"rate":0.5,"billing_name":"Ren\\u00e9e \\"R\\" Smith",'
  .. '"user":{"id":123456,"email":"ninjas@thinkific.com"}}'

describe("sandbox deliveries", function()
  local sb
  helper.with_sandbox(function(s) sb = s end,
    { secret = "delivery-secret", delivery_attempts = 3, delivery_backoff = 0.2,
      delivery_timeout = 0.5 })

  describe("signed exactly as Thinkific signs #memory", function()
    it("POSTs the recorded envelope's bytes with the three headers and the HMAC", function()
      local srv, url = receiver()
      local wh = webhook(sb, "order.created", url)
      local result = assert(sb:trigger("order.created", ORDER))
      assert.are.equal(1, result.webhooks)
      assert.is_true(#result.event_id == 23 and result.event_id:find("^%d+$") ~= nil)

      local c, req = accept(srv)
      answer(c, 200, '{"status":"ok"}')
      srv:close()
      assert.are.equal("POST", req.method)
      assert.are.equal("/hooks/thinkific", req.target)
      local h = req.headers
      assert.are.equal("application/json", h["content-type"])
      assert.are.equal("order.created", h["x-thinkific-topic"])
      assert.are.equal("sandbox", h["x-thinkific-subdomain"])
      assert.truthy(h["user-agent"])
      assert.matches("^%x+$", h["x-thinkific-hmac-sha256"])
      assert.are.equal(64, #h["x-thinkific-hmac-sha256"])
      assert.are.equal(thinkific.sign(req.body, "delivery-secret"), h["x-thinkific-hmac-sha256"])
      assert.is_true(thinkific.verify(req.body, h["x-thinkific-hmac-sha256"], "delivery-secret"))
      assert.is_false(thinkific.verify(req.body, h["x-thinkific-hmac-sha256"], sb.api_key))
      -- No secret travels with it.
      assert.is_nil(req.body:find("delivery-secret", 1, true))

      -- The body is the recorded event, byte for byte, shaped as Thinkific's envelope.
      assert.are.equal(event_text(sb, result.event_id), req.body)
      local env = assert(thinkific.decode(req.body))
      assert.are.equal(result.event_id, env.id)
      assert.are.equal("order", env.resource)
      assert.are.equal("created", env.action)
      assert.are.equal("string", type(env.tenant_id))
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", env.created_at)
      assert.truthy(req.body:find(',"payload":' .. ORDER .. "}", 1, true), req.body)
      assert.are.equal("integer", helper.number_type(env.payload.amount_cents))
      assert.matches('^{"id":"%d+","resource":"order","action":"created","tenant_id":"%d+",'
        .. '"created_at":"[^"]+","payload":{', req.body)

      local list = assert(sb:wait_deliveries(1, TIMEOUT))
      assert.are.equal(1, #list)
      local d = list[1]
      assert.are.equal(result.event_id, d.event_id)
      assert.are.equal(wh.id, d.webhook_id)
      assert.are.equal(url, d.target_url)
      assert.are.equal(1, d.attempt)
      assert.are.equal(200, d.status)
      assert.are.equal(thinkific.null, d.error)
      assert.are.equal("string", type(d.at))
    end)

    it("delivers to every webhook of the topic, and canceled reaches cancelled", function()
      local srv, url = receiver()
      webhook(sb, "subscription.cancelled", url)
      webhook(sb, "subscription.cancelled", url .. "?copy=2")
      webhook(sb, "order.created", url .. "?other")
      local result = assert(sb:trigger("subscription.canceled", { id = 7 }))
      assert.are.equal(2, result.webhooks)
      local targets = {}
      for _ = 1, 2 do
        local c, req = accept(srv)
        answer(c, 204)
        targets[#targets + 1] = req.target
        assert.are.equal("subscription.canceled", req.headers["x-thinkific-topic"])
        assert.is_true(thinkific.verify(req.body, req.headers["x-thinkific-hmac-sha256"],
          sb.secret))
      end
      srv:close()
      table.sort(targets)
      assert.are.same({ "/hooks/thinkific", "/hooks/thinkific?copy=2" }, targets)
      assert(sb:wait_deliveries(2, TIMEOUT))
      assert.are.equal(0, assert(sb:trigger("lead.created", {})).webhooks)
    end)

    it("takes a whole envelope, keeps its id and adds tenant_id", function()
      local srv, url = receiver()
      webhook(sb, "enrollment.created", url)
      local text = '{"id":"my-event-1","resource":"enrollment","action":"created",'
        .. '"created_at":"2024-01-01T00:00:00.000Z","payload":{"percentage_completed":"24.0"}}'
      local result = assert(sb:trigger(text))
      assert.are.equal("my-event-1", result.event_id)
      local c, req = accept(srv)
      answer(c, 200)
      srv:close()
      local env = assert(thinkific.decode(req.body))
      assert.are.equal("my-event-1", env.id)
      assert.are.equal("string", type(env.tenant_id))
      assert.are.equal("24.0", env.payload.percentage_completed)
      assert.are.equal(event_text(sb, "my-event-1"), req.body)
      assert.truthy(req.body:find('"payload":{"percentage_completed":"24.0"}', 1, true))
    end)

    it("refuses triggers it cannot build with 400, and POST /sandbox/events delivers nothing",
      function()
        local srv, url = receiver()
        webhook(sb, "order.created", url)
        for _, body in ipairs({ '{"topic":"order","payload":{}}', '{"topic":"order.created"}',
          '{"topic":"order.created","payload":[1]}', '{"resource":"order","payload":{}}',
          '{"topic":"order.created","payload":{},"id":5}', '{"topic":5,"payload":{}}' }) do
          local none, err = sb:trigger(body)
          assert.is_nil(none, body)
          assert.are.equal(400, err.status, body)
        end
        assert(sb:record_event({ resource = "order", action = "created", payload = { id = 1 } }))
        srv:settimeout(0.3)
        assert.is_nil(srv:accept())
        srv:close()
        assert.are.same({}, assert(sb:deliveries()))
        assert.has_error(function() sb:trigger(42) end)
        assert.has_error(function() sb:trigger("order.created", 5) end)
        assert.has_error(function() sb:trigger("order.created") end)
      end)
  end)

  describe("retries", function()
    it("a 500 first, then 200: two attempts, the second after the backoff", function()
      local srv, url = receiver()
      local wh = webhook(sb, "order.created", url)
      local result = assert(sb:trigger("order.created", ORDER))
      local c, first = accept(srv)
      local t0 = socket.gettime()
      answer(c, 500, "<html>oops</html>")
      local c2, second = accept(srv)
      local waited = socket.gettime() - t0
      answer(c2, 200)
      srv:close()
      assert.are.equal(first.body, second.body)
      assert.are.equal(first.headers["x-thinkific-hmac-sha256"],
        second.headers["x-thinkific-hmac-sha256"])
      assert.is_true(waited >= 0.15, "waited " .. waited)
      local list = assert(sb:wait_deliveries(1, TIMEOUT))
      assert.are.equal(2, #list)
      for i, d in ipairs(list) do
        assert.are.equal(result.event_id, d.event_id)
        assert.are.equal(wh.id, d.webhook_id)
        assert.are.equal(i, d.attempt)
      end
      assert.are.equal(500, list[1].status)
      assert.are.equal(200, list[2].status)
      local s = assert(sb:delivery_summary())
      assert.are.same({ attempts = 2, succeeded = 1, failed = 1, given_up = 0, pending = 0 }, s)
    end)

    it("a refused target: retried, then given up after the bound", function()
      local url = ("http://127.0.0.1:%d/gone"):format(helper.closed_port())
      webhook(sb, "order.created", url)
      local t0 = socket.gettime()
      assert(sb:trigger("order.created", { id = 1 }))
      assert.is_true(helper.wait_until(function()
        return assert(sb:delivery_summary()).given_up == 1
      end, TIMEOUT))
      local elapsed = socket.gettime() - t0
      assert.is_true(elapsed >= 0.55, "backoff 0.2 s then 0.4 s, took " .. elapsed)
      socket.sleep(0.5)
      local list = assert(sb:deliveries())
      assert.are.equal(3, #list)
      for i, d in ipairs(list) do
        assert.are.equal(i, d.attempt)
        assert.are.equal(thinkific.null, d.status)
        assert.are.equal("connection refused", d.error)
      end
      assert.are.same({ attempts = 3, succeeded = 0, failed = 3, given_up = 1, pending = 0 },
        assert(sb:delivery_summary()))
      local none, err = sb:wait_deliveries(1, 0.2)
      assert.is_nil(none)
      assert.are.equal("timeout", err.kind)
    end)

    it("a slow target times out and is retried, and the sandbox serves meanwhile", function()
      local srv, url = receiver()
      webhook(sb, "order.created", url)
      assert(sb:trigger("order.created", { id = 2 }))
      local slow = accept(srv)       -- read, never answered
      local t0 = socket.gettime()
      assert(sb:deliveries())        -- the server loop is not blocked by the slow delivery
      assert.is_true(socket.gettime() - t0 < 0.3)
      local c = accept(srv)          -- after the 0.5 s timeout and the 0.2 s backoff
      answer(c, 200)
      slow:close()
      srv:close()
      local list = assert(sb:wait_deliveries(1, TIMEOUT))
      assert.are.equal(2, #list)
      assert.are.equal(thinkific.null, list[1].status)
      assert.are.equal("timeout", list[1].error)
      assert.are.equal(200, list[2].status)
    end)

    it("reset forgets attempts and deliveries under way", function()
      local url = ("http://127.0.0.1:%d/gone"):format(helper.closed_port())
      webhook(sb, "order.created", url)
      assert(sb:trigger("order.created", { id = 3 }))
      assert(helper.wait_until(function() return #assert(sb:deliveries()) >= 1 end, TIMEOUT))
      assert(sb:reset())
      socket.sleep(0.7)
      assert.are.same({}, assert(sb:deliveries()))
    end)
  end)

  describe("https targets", function()
    local dir, cert, key
    helper.scratch_dir(function(d) dir = d end)

    lazy_setup(function()
      cert, key = helper.certificate(dir, "localhost", "/CN=localhost")
    end)

    it("are reached without verifying the certificate (loopback test servers)", function()
      local ssl = require("ssl")
      local ctx = assert(ssl.newcontext({ mode = "server", protocol = "any",
        certificate = cert, key = key }))
      local srv = assert(socket.bind("127.0.0.1", 0))
      srv:settimeout(TIMEOUT)
      local _, port = srv:getsockname()
      webhook(sb, "order.created", ("https://127.0.0.1:%d/tls"):format(port))
      assert(sb:trigger("order.created", ORDER))
      local tcp = assert(srv:accept())
      local c = assert(ssl.wrap(tcp, ctx))
      c:settimeout(TIMEOUT)
      assert(c:dohandshake())
      local req = read_request(c)
      answer(c, 200)
      srv:close()
      assert.are.equal("POST /tls HTTP/1.1", req.line)
      assert.is_true(thinkific.verify(req.body, req.headers["x-thinkific-hmac-sha256"], sb.secret))
      local list = assert(sb:wait_deliveries(1, TIMEOUT))
      assert.are.equal(1, #list)
      assert.are.equal(200, list[1].status)
    end)
  end)

  describe("end to end with the router", function()
    it("a failing handler gives 500, the retry succeeds, the success runs once", function()
      local router = thinkific.router{ secret = sb.secret }
      local calls, successes, errors = 0, {}, {}
      router:on("order.created", function(event)
        calls = calls + 1
        if calls == 1 then error("the database is down") end
        successes[event.id] = (successes[event.id] or 0) + 1
      end)
      router:on_error(function(err) errors[#errors + 1] = err end)
      local lines = {}
      local server = assert(listen.serve{ router = router, port = 0,
        log = function(line) lines[#lines + 1] = line end })
      webhook(sb, "order.created", server.url .. "webhooks")
      local id = assert(sb:trigger("order.created", ORDER)).event_id
      local list
      assert.is_true(server:run_until(function()
        if successes[id] ~= 1 then return false end
        list = assert(sb:deliveries())
        return #list == 2
      end, TIMEOUT))
      assert.are.equal(500, list[1].status)
      assert.are.equal(200, list[2].status)
      assert.are.equal(1, #errors)
      assert.matches("the database is down", errors[1])
      -- The same event delivered again: a duplicate, the handler does not run again.
      assert(sb:trigger(event_text(sb, id)))
      assert.is_true(server:run_until(function() return #assert(sb:deliveries()) == 3 end, TIMEOUT))
      server:close()
      assert.are.equal(1, successes[id])
      assert.are.equal(2, calls)
      assert.are.equal(3, #lines)
      assert.matches("^order%.created " .. id .. " 500 %d+%.%d ms$", lines[1])
      assert.matches("^order%.created " .. id .. " 200 %d+%.%d ms$", lines[2])
      for _, line in ipairs(lines) do assert.is_nil(line:find(sb.secret, 1, true)) end
    end)
  end)
end)

describe("2,000 deliveries through the sandbox to thinkific.listen", function()
  local sb
  helper.with_sandbox(function(s) sb = s end, { reset = false })

  it("handles every event exactly once and loses none", function()
    local N = 2000
    local router = thinkific.router{ secret = sb.secret }
    local handled, total = {}, 0
    router:on("order.created", function(event)
      handled[event.id] = (handled[event.id] or 0) + 1
      total = total + 1
    end)
    local server = assert(listen.serve{ router = router, port = 0, log = false })
    webhook(sb, "order.created", server.url)
    local ids, triggered = {}, 0
    local t0 = socket.gettime()
    -- Triggers go out a few at a time between the receiver's rounds.
    local done = server:run_until(function()
      for _ = 1, 20 do
        if triggered == N then break end
        triggered = triggered + 1
        local r = assert(sb:trigger("order.created", ('{"id":%d,"amount_cents":%d}')
          :format(triggered, triggered * 100)))
        assert.are.equal(1, r.webhooks)
        ids[#ids + 1] = r.event_id
      end
      return total >= N
    end, 120)
    local elapsed = socket.gettime() - t0
    assert.is_true(done, ("%d of %d handled in %.1f s"):format(total, N, elapsed))
    -- The sandbox sees every answer (the last ones are still being read: keep serving).
    local summary
    assert.is_true(server:run_until(function()
      summary = assert(sb:delivery_summary())
      return summary.succeeded >= N and summary.pending == 0
    end, 30))
    server:close()
    assert.are.equal(N, #ids)
    assert.are.equal(N, total)
    local triggered_set, distinct = {}, 0
    for _, id in ipairs(ids) do
      assert.are.equal(1, handled[id], id)
      assert.is_nil(triggered_set[id], "one id per trigger")
      triggered_set[id] = true
    end
    for id in pairs(handled) do
      assert.is_true(triggered_set[id], id)
      distinct = distinct + 1
    end
    assert.are.equal(N, distinct)
    assert.are.equal(N, summary.succeeded)
    assert.are.equal(0, summary.given_up)
    local per_event = {}
    for _, d in ipairs(assert(sb:deliveries())) do
      if d.status ~= thinkific.null and d.status < 300 then
        per_event[d.event_id] = (per_event[d.event_id] or 0) + 1
      end
    end
    for _, id in ipairs(ids) do assert.are.equal(1, per_event[id], id) end
    if os.getenv("THINKIFIC_SPEC_TIMINGS") then
      io.stderr:write(("\n[2,000 deliveries: handled in %.2f s, %d attempts]\n")
        :format(elapsed, summary.attempts))
    end
  end)
end)

describe("delivery options", function()
  local process = require("thinkific.sandbox.process")
  local REPO = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec") .. "/.."

  -- The command is Lua 5.4 whatever runs the specs.
  local function run(args)
    local path, cpath = helper.lua54_paths()
    local cmd = string.format("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s timeout 20 lua5.4 %s/bin/thinkific "
      .. "sandbox %s </dev/null >/dev/null 2>&1", process.quote(path), process.quote(cpath),
      REPO, args)
    return helper.execute(cmd)
  end

  it("are checked by spawn (raise) and the command (exit 2)", function()
    local sandbox = require("thinkific.sandbox")
    for _, opts in ipairs({ { delivery_attempts = 0 }, { delivery_attempts = 2.5 },
      { delivery_timeout = 0 }, { delivery_backoff = -1 }, { delivery_concurrency = 0 },
      { delivery_attempts = "3" }, { subdomain = "a b" } }) do
      assert.has_error(function() sandbox.spawn(opts) end)
    end
    for _, args in ipairs({ "--delivery-attempts 0", "--delivery-attempts x",
      "--delivery-timeout 0", "--delivery-backoff -1", "--delivery-concurrency 1.5",
      "--subdomain 'a b'" }) do
      assert.are.equal(2, run(args), args)
    end
  end)

  it("reach the child: subdomain and attempts", function()
    local sb = helper.sandbox({ subdomain = "acme-academy", delivery_attempts = 1,
      delivery_backoff = 0.01 })
    local ok, err = pcall(function()
      local srv, url = receiver()
      webhook(sb, "user.signup", url)
      assert(sb:trigger("user.signup", { id = 1 }))
      local c, req = accept(srv)
      answer(c, 503)
      srv:close()
      assert.are.equal("acme-academy", req.headers["x-thinkific-subdomain"])
      assert.is_true(helper.wait_until(function()
        return assert(sb:delivery_summary()).given_up == 1
      end, TIMEOUT))
      assert.are.equal(1, #assert(sb:deliveries()))
    end)
    sb:stop()
    assert(ok, err)
  end)
end)

describe("waiting for deliveries to a receiver in the same process", function()
  it("wait_deliveries serves the receiver through its step function", function()
    local sb = helper.sandbox()
    local ok, err = pcall(function()
      local router = thinkific.router{ secret = sb.secret }
      local handled = 0
      router:on("order.created", function() handled = handled + 1 end)
      local server = assert(listen.serve{ router = router, port = 0, log = false })
      webhook(sb, "order.created", server.url)
      assert(sb:trigger("order.created", { id = 1 }))
      assert(sb:trigger("order.created", { id = 2 }))
      local list = assert(sb:wait_deliveries(2, TIMEOUT, function(dt) server:step(dt) end))
      server:close()
      assert.are.equal(2, handled)
      assert.are.equal(2, #list)
      assert.has_error(function() sb:wait_deliveries(1, 1, "not a function") end)
    end)
    sb:stop()
    assert(ok, err)
  end)
end)
