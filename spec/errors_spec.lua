-- Runtime failures: nil, err with the fields of API.md, the 422 shapes, rate limits and
-- waits, retries per method, HTML pages, timeouts, dropped and refused connections, size
-- limit, bad JSON; all against the sandbox and its faults.
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")
local core = require("thinkific.core")

local WEBHOOKS = "/api/v2/webhooks"
local HOOK = { topic = "order.created", target_url = "https://example.com/hook" }

local function sorted_errors(list)
  local copy = {}
  for i, e in ipairs(list) do copy[i] = e end
  table.sort(copy, function(a, b)
    return (a.field or "") .. "\0" .. a.message < (b.field or "") .. "\0" .. b.message
  end)
  return copy
end

describe("errors", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  -- A client whose waits are recorded, not slept.
  local function recording(opts)
    return helper.recording(sb, opts)
  end

  local function requests()
    return assert(sb:stats()).requests
  end

  local function count_webhooks(c)
    return #assert(c:list_webhooks{ limit = 250 }).items
  end

  describe("HTTP statuses #memory", function()
    it("401 for a wrong key: kind http, the server's message, not retried", function()
      local c, waits = recording{ api_key = "not-the-key" }
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("http", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal("Authentication Error", err.message)
      assert.are.equal("GET", err.method)
      assert.are.equal("/webhooks", err.path)
      assert.are.equal(1, err.attempts)
      assert.are.equal(true, err.sent)
      assert.are.equal(0, #waits)
      assert.is_true(thinkific.is_error(err))
    end)

    it("404 with method, path, status, attempts and a readable tostring", function()
      local c = helper.client(sb)
      local v, err = c:get_webhook("nope")
      assert.is_nil(v)
      assert.are.equal("http", err.kind)
      assert.are.equal(404, err.status)
      assert.are.equal("Record not found.", err.message)
      assert.are.equal("GET", err.method)
      assert.are.equal("/webhooks/nope", err.path)
      assert.are.equal(1, err.attempts)
      assert.are.equal(true, err.sent)
      assert.are.equal('{"error":"Record not found."}', err.body)
      local s = tostring(err)
      for _, part in ipairs{ "GET", "/webhooks/nope", "Record not found.", "404" } do
        assert.truthy(s:find(part, 1, true), s)
      end
      assert.is_nil(s:find("table: 0x", 1, true), s)
    end)

    it("422 from the sandbox: both invalid fields normalised, for create and update", function()
      local c = helper.client(sb)
      local v, err = c:create_webhook{ topic = "order.nope", target_url = "not a url" }
      assert.is_nil(v)
      assert.are.equal(422, err.status)
      assert.are.equal("POST", err.method)
      assert.are.same({ { field = "topic", message = "invalid format" },
        { field = "url", message = "is not valid" } }, sorted_errors(err.errors))
      local s = tostring(err)
      assert.truthy(s:find("invalid format", 1, true), s)

      local w = assert(c:create_webhook(HOOK))
      v, err = c:update_webhook(w.id, { topic = "bogus", target_url = HOOK.target_url })
      assert.is_nil(v)
      assert.are.equal(422, err.status)
      assert.are.equal("PUT", err.method)
      assert.are.same({ { field = "topic", message = "invalid format" } }, err.errors)
    end)

    local SHAPES = {
      { '{"errors":{"topic":"x"}}', { { field = "topic", message = "x" } } },
      { '{"errors":{"topic":["x"]}}', { { field = "topic", message = "x" } } },
      { '{"errors":[{"topic":"x"}]}', { { field = "topic", message = "x" } } },
      { '{"errors":["x"]}', { { message = "x" } } },
      { '{"errors":"x"}', { { message = "x" } } },
      { '{"errors":{"topic":["x","y"],"target_url":"z"}}', { { field = "target_url", message = "z" },
        { field = "topic", message = "x" }, { field = "topic", message = "y" } } },
      { '{"errors":[{"topic":"x"},{"target_url":"z"}]}', { { field = "target_url", message = "z" },
        { field = "topic", message = "x" } } },
      { '{"errors":["x","y"]}', { { message = "x" }, { message = "y" } } },
    }
    for _, case in ipairs(SHAPES) do
      it("422 " .. case[1] .. " is normalised", function()
        local c = helper.client(sb)
        assert(sb:fault{ path = WEBHOOKS, method = "POST", status = 422, body = case[1] })
        local v, err = c:create_webhook(HOOK)
        assert.is_nil(v)
        assert.are.equal("http", err.kind)
        assert.are.equal(422, err.status)
        assert.are.same(case[2], sorted_errors(err.errors))
        assert.are.equal("string", type(err.message))
        assert.truthy(err.message:find("x", 1, true) or err.message:find("z", 1, true), err.message)
        assert.are.equal(1, err.attempts)
      end)
    end

    it("an HTML 502 page: kind http, status 502, the page in body, a short message", function()
      local html = "<html><head><title>502 Bad Gateway</title></head><body>cloudfront</body></html>"
      local c = recording{ retries = 0 }
      assert(sb:fault{ path = WEBHOOKS, status = 502, body = html })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("http", err.kind)
      assert.are.equal(502, err.status)
      assert.are.equal(html, err.body)
      assert.is_nil(err.errors)
      local s = tostring(err)
      assert.truthy(s:find("502", 1, true), s)
      assert.truthy(#s < 200, s)
    end)

    it("a big HTML page is kept in body truncated to 4 KiB", function()
      local html = "<html><body>" .. ("<p>gateway trouble</p>\n"):rep(600) .. "</body></html>"
      assert.truthy(#html > 10000)
      local c = recording{ retries = 0 }
      assert(sb:fault{ path = WEBHOOKS, status = 503, body = html })
      local _, err = c:list_webhooks()
      assert.are.equal(503, err.status)
      assert.are.equal(4096, #err.body)
      assert.are.equal(html:sub(1, 4096), err.body)
      assert.truthy(#tostring(err) < 200)
    end)
  end)

  describe("decode and limit #memory", function()
    it("malformed JSON on a 200: kind decode, status 200, body kept", function()
      local c, waits = recording()
      assert(sb:fault{ path = WEBHOOKS, status = 200, body = '{"items":[{"id":"1"' })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("decode", err.kind)
      assert.are.equal(200, err.status)
      assert.are.equal('{"items":[{"id":"1"', err.body)
      assert.are.equal("GET", err.method)
      assert.are.equal("/webhooks", err.path)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)
    end)

    it("a 200 list without items: kind decode with status and attempts", function()
      local c = helper.client(sb)
      assert(sb:fault{ path = WEBHOOKS, status = 200, body = '{"webhooks":[]}' })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("decode", err.kind)
      assert.are.equal("GET", err.method)
      assert.are.equal(200, err.status)
      assert.are.equal(1, err.attempts)
    end)

    for _, body in ipairs{ '"a string"', "42", "", "[1,2,3]", "[]", "null", "true" } do
      it("a 200 webhook that is not a JSON object (" .. body .. "): kind decode", function()
        local c = helper.client(sb)
        assert(sb:fault{ path = WEBHOOKS .. "/1", status = 200, body = body })
        local v, err = c:get_webhook("1")
        assert.is_nil(v)
        assert.are.equal("decode", err.kind)
        assert.are.equal(200, err.status)
        assert.are.equal(1, err.attempts)
        assert.are.equal("/webhooks/1", err.path)
      end)
    end

    it("an answer over max_response_size: kind limit, not retried", function()
      local c, waits = recording{ max_response_size = 1000 }
      local big = '{"items":[],"pad":"' .. ("x"):rep(5000) .. '"}'
      assert(sb:fault{ path = WEBHOOKS, status = 200, body = big, count = 4 })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("limit", err.kind)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)
      assert.are.equal("GET", err.method)
      -- Under the limit, the same client works.
      assert(sb:clear_faults())
      assert(c:list_webhooks())
    end)

    -- 300 KiB of headers (38 lines of 8,000 bytes) on an answer whose body is small: the cap on
    -- headers (256 KiB) says so, not max_response_size; through each way the core reads answers.
    it("an answer with 300 KiB of headers: kind limit, the header cap named", function()
      local big = {}
      for i = 1, 38 do big["X-Pad-" .. i] = ("h"):rep(8000) end
      local function check(err, what)
        assert.are.equal("limit", err.kind, what)
        assert.are.equal("the response headers are larger than the limit of 262144 bytes",
          err.message, what)
      end
      assert(sb:fault{ path = WEBHOOKS, status = 200, body = '{"items":[]}', headers = big, count = 3 })
      local c = helper.client(sb)
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      check(err, "client")
      assert.are.equal(1, err.attempts)
      assert(sb:fault{ path = "/api/v2/events/1", status = 200, body = "{}", headers = big })
      local results, errs = c:get_events({ "1" }, { concurrency = 1 })
      assert.is_falsy(results[1])
      check(errs[1], "get_events")
      local status
      status, err = core.send{ method = "GET", url = sb.root .. WEBHOOKS, timeout = 10,
        max_response_size = 1024 * 1024 }
      assert.is_nil(status)
      check(err, "core.send")
      c:close()
    end)
  end)

  describe("rate limits and waits #memory", function()
    local function wait_after_429(headers, opts)
      local o = { retries = 1 }
      for k, v in pairs(opts or {}) do o[k] = v end
      local c, waits = recording(o)
      assert(sb:fault{ path = WEBHOOKS, method = "GET", status = 429,
        body = '{"error":"Too Many Requests"}', headers = headers })
      assert(c:list_webhooks())
      assert.are.equal(1, #waits)
      return waits[1]
    end

    it("RateLimit-Reset in epoch milliseconds", function()
      local reset = math.floor((socket.gettime() + 2) * 1000)
      local w = wait_after_429{ ["RateLimit-Reset"] = string.format("%d", reset) }
      assert.truthy(w > 1.0 and w <= 2.05, tostring(w))
    end)

    it("RateLimit-Reset in epoch seconds", function()
      local reset = math.floor(socket.gettime()) + 3
      local w = wait_after_429{ ["RateLimit-Reset"] = string.format("%d", reset) }
      assert.truthy(w > 1.0 and w <= 3.05, tostring(w))
    end)

    it("RateLimit-Reset as a small delay in milliseconds", function()
      local w = wait_after_429{ ["RateLimit-Reset"] = "1500" }
      assert.truthy(math.abs(w - 1.5) < 0.01, tostring(w))
    end)

    it("Retry-After in seconds and as an HTTP date", function()
      local w = wait_after_429{ ["Retry-After"] = "2" }
      assert.truthy(math.abs(w - 2) < 0.01, tostring(w))
      local at = os.date("!%a, %d %b %Y %H:%M:%S GMT", math.floor(socket.gettime()) + 4)
      w = wait_after_429{ ["Retry-After"] = at }
      assert.truthy(w > 2.0 and w <= 4.05, tostring(w))
    end)

    it("each wait is capped by max_retry_wait", function()
      local w = wait_after_429({ ["RateLimit-Reset"] = "50000" }, { max_retry_wait = 1.5 })
      assert.truthy(math.abs(w - 1.5) < 0.01, tostring(w))
      w = wait_after_429({ ["Retry-After"] = "3600" }, { max_retry_wait = 2 })
      assert.truthy(math.abs(w - 2) < 0.01, tostring(w))
      local reset = math.floor((socket.gettime() + 3600) * 1000)
      w = wait_after_429({ ["RateLimit-Reset"] = string.format("%d", reset) }, { max_retry_wait = 1 })
      assert.truthy(math.abs(w - 1) < 0.01, tostring(w))
    end)

    it("gives retry_after (seconds) on the error when retries run out", function()
      local c, waits = recording{ retries = 2 }
      assert(sb:fault{ path = WEBHOOKS, status = 429, count = 3, headers = { ["Retry-After"] = "7" },
        body = '{"error":"Too Many Requests"}' })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal(429, err.status)
      assert.are.equal(7, err.retry_after)
      assert.are.equal(3, err.attempts)
      assert.are.same({ 7, 7 }, waits)
    end)

    it("backs off without a header: starting near 0.5 s, growing, capped", function()
      local c, waits = recording{ retries = 3 }
      assert(sb:fault{ path = WEBHOOKS, status = 503, count = 3, body = "<html>busy</html>" })
      assert(c:list_webhooks())
      assert.are.equal(3, #waits)
      assert.truthy(waits[1] >= 0.25 and waits[1] <= 1.0, tostring(waits[1]))
      assert.truthy(waits[3] > waits[1], table.concat(waits, ", "))
      assert.truthy(waits[3] >= 1.0, table.concat(waits, ", "))

      local capped
      c, capped = recording{ retries = 3, max_retry_wait = 0.6 }
      assert(sb:fault{ path = WEBHOOKS, status = 503, count = 3, body = "<html>busy</html>" })
      assert(c:list_webhooks())
      assert.are.equal(3, #capped)
      for _, w in ipairs(capped) do assert.truthy(w <= 0.6, tostring(w)) end
      assert.truthy(capped[3] > 0.55, tostring(capped[3]))
    end)
  end)

  describe("retries by method #memory", function()
    it("GET after a 500 is retried and succeeds", function()
      local c, waits = recording()
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "GET", status = 500, body = '{"error":"oops"}' })
      local page, err = c:list_webhooks()
      assert.is_nil(err)
      assert.are.same({}, page.items)
      assert.are.equal(2, requests())
      assert.are.equal(1, #waits)
    end)

    it("GET: a 5xx each time gives the last error with attempts = retries + 1", function()
      local c, waits = recording{ retries = 2 }
      assert(sb:fault{ path = WEBHOOKS, method = "GET", status = 500, count = 3, body = '{"error":"oops"}' })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal(500, err.status)
      assert.are.equal("oops", err.message)
      assert.are.equal(3, err.attempts)
      assert.are.equal(2, #waits)
      assert.truthy(tostring(err):find("3 attempts", 1, true), tostring(err))
    end)

    it("PUT and DELETE after a 503 are retried", function()
      local c = recording()
      local w = assert(c:create_webhook(HOOK))
      assert(sb:fault{ path = WEBHOOKS .. "/" .. w.id, status = 503, count = 1 })
      local up = assert(c:update_webhook(w.id, { topic = "user.signup", target_url = HOOK.target_url }))
      assert.are.equal("user.signup", up.topic)
      assert(sb:fault{ path = WEBHOOKS .. "/" .. w.id, status = 503, count = 1 })
      assert.are.equal(true, c:delete_webhook(w.id))
      assert.are.equal(0, count_webhooks(c))
    end)

    it("POST is not repeated after a 500", function()
      local c, waits = recording()
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "POST", status = 500, body = '{"error":"oops"}' })
      local v, err = c:create_webhook(HOOK)
      assert.is_nil(v)
      assert.are.equal(500, err.status)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, requests())
      assert.are.equal(0, #waits)
      assert.are.equal(0, count_webhooks(c))
    end)

    it("POST is retried on 429", function()
      local c, waits = recording()
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "POST", status = 429, headers = { ["Retry-After"] = "1" } })
      local w = assert(c:create_webhook(HOOK))
      assert.are.equal(HOOK.topic, w.topic)
      assert.are.equal(2, requests())
      assert.are.same({ 1 }, waits)
      assert.are.equal(1, count_webhooks(c))
    end)

    it("retries = 0 makes one attempt", function()
      local c, waits = recording{ retries = 0 }
      assert(sb:fault{ path = WEBHOOKS, status = 503, count = 1 })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)
      assert(c:list_webhooks())
    end)
  end)

  describe("dropped and refused connections #memory", function()
    it("a dropped connection is kind network, sent, and retried for GET", function()
      local c, waits = recording{ retries = 0 }
      assert(sb:fault{ path = WEBHOOKS, method = "GET", drop = true })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("network", err.kind)
      assert.is_nil(err.status)
      assert.are.equal("GET", err.method)
      assert.are.equal("/webhooks", err.path)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)

      c, waits = recording{ retries = 1 }
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "GET", drop = true })
      assert(c:list_webhooks())
      assert.are.equal(1, #waits)
      assert.are.equal(2, requests())
    end)

    it("a POST whose connection drops is not sent again (fresh connection)", function()
      local c, waits = recording()
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "POST", drop = true })
      local v, err = c:create_webhook(HOOK)
      assert.is_nil(v)
      assert.are.equal("network", err.kind)
      assert.are_not.equal(false, err.sent)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)
      assert.are.equal(1, requests())
    end)

    it("a POST whose kept-alive connection drops is not sent again", function()
      local c, waits = recording()
      assert(c:list_webhooks()) -- the connection is open and idle now
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "POST", drop = true })
      local v, err = c:create_webhook(HOOK)
      -- The server may have acted on it: sending it again could create a second webhook.
      assert.are.equal(1, requests())
      assert.is_nil(v)
      assert.are.equal("network", err and err.kind)
      assert.are.equal(0, #waits)
      assert.are.equal(0, count_webhooks(c))
    end)

    it("connection refused: kind network, sent == false, retried (also POST)", function()
      local url = "http://127.0.0.1:" .. helper.closed_port() .. "/api/v2"
      local c, waits = recording{ base_url = url, retries = 2 }
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("network", err.kind)
      assert.are.equal(false, err.sent)
      assert.are.equal(3, err.attempts)
      assert.are.equal(2, #waits)
      assert.truthy(tostring(err):find("not sent", 1, true), tostring(err))

      waits[1], waits[2] = nil, nil
      v, err = c:create_webhook(HOOK)
      assert.is_nil(v)
      assert.are.equal(false, err.sent)
      assert.are.equal("POST", err.method)
      assert.are.equal(3, err.attempts)
      assert.are.equal(2, #waits)
    end)

    for _, connection in ipairs{ "fresh", "kept-alive" } do
      it("DELETE: dropped first, then 404 counts as deleted (" .. connection .. " connection)", function()
        local c = recording()
        local w = assert(c:create_webhook(HOOK))
        if connection == "fresh" then c = recording() end
        local path = WEBHOOKS .. "/" .. w.id
        assert(sb:fault{ path = path, method = "DELETE", drop = true })
        assert(sb:fault{ path = path, method = "DELETE", status = 404,
          body = '{"error":"Record not found."}' })
        local ok, err = c:delete_webhook(w.id)
        assert.is_nil(err)
        assert.are.equal(true, ok)
      end)
    end

    it("DELETE: a 404 after an answered 503 is an error (nothing was lost)", function()
      local c = recording()
      assert(sb:fault{ path = WEBHOOKS .. "/123", method = "DELETE", status = 503 })
      local ok, err = c:delete_webhook("123")
      assert.is_nil(ok)
      assert.are.equal(404, err.status)
      assert.are.equal(2, err.attempts)
    end)
  end)

  describe("timeouts", function()
    it("a slow answer gives kind timeout well before the server answers", function()
      local c, waits = recording{ timeout = 0.5, retries = 0 }
      assert(sb:fault{ path = WEBHOOKS, method = "GET", delay_ms = 3000 })
      local t0 = socket.gettime()
      local v, err = c:list_webhooks()
      local took = socket.gettime() - t0
      assert.is_nil(v)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(1, err.attempts)
      assert.are.equal("GET", err.method)
      assert.are_not.equal(false, err.sent)
      assert.truthy(took < 2.5, "took " .. took)
      assert.are.equal(0, #waits)
    end)

    it("GET is retried after a timeout", function()
      local c, waits = recording{ timeout = 0.5, retries = 1 }
      assert(sb:fault{ path = WEBHOOKS, method = "GET", delay_ms = 3000 })
      local t0 = socket.gettime()
      assert(c:list_webhooks())
      assert.truthy(socket.gettime() - t0 < 2.5)
      assert.are.equal(1, #waits)
    end)

    it("POST is not retried after a timeout", function()
      local c, waits = recording{ timeout = 0.5, retries = 2 }
      assert(sb:reset_stats())
      assert(sb:fault{ path = WEBHOOKS, method = "POST", delay_ms = 3000, status = 503 })
      local v, err = c:create_webhook(HOOK)
      assert.is_nil(v)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(1, err.attempts)
      assert.are.equal(0, #waits)
      assert.are.equal(1, requests())
    end)
  end)
end)
