-- The sandbox's faults: queued answers (status, body, headers), delays and dropped connections
-- for the API requests they match, over real HTTP.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local socket = require("socket")

local api, request, connect, HOOK = wire.api, wire.request, wire.connect, wire.HOOK

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  describe("faults", function()
    after_each(function()
      assert(sb:clear_faults())
    end)

    it("answer with a status, a JSON body and headers, count times", function()
      assert.are.equal(2, sb:fault({ path = "/api/v2/webhooks", status = 429, count = 2,
        body = { error = "slow down" }, headers = { ["RateLimit-Reset"] = "1500" } }))
      for _ = 1, 2 do
        local status, headers, _, body = api(sb, "GET", "/webhooks")
        assert.are.equal(429, status)
        assert.are.equal("1500", headers["ratelimit-reset"])
        assert.are.equal("application/json", headers["content-type"])
        assert.are.same({ error = "slow down" }, body)
      end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("send a raw HTML body as text/html, and given headers win", function()
      sb:fault({ path = "/api/v2", status = 502, body = "<html>Bad gateway</html>" })
      local status, headers, body = api(sb, "GET", "/webhooks")
      assert.are.equal(502, status)
      assert.are.equal("text/html", headers["content-type"])
      assert.are.equal("<html>Bad gateway</html>", body)
      sb:fault({ path = "/api/v2", status = 503, body = "oops",
        headers = { ["content-type"] = "text/plain" } })
      status, headers, body = api(sb, "GET", "/webhooks")
      assert.are.equal(503, status)
      assert.are.equal("text/plain", headers["content-type"])
      assert.are.equal("oops", body)
    end)

    it("match by path prefix and method, in queue order", function()
      sb:fault({ path = "/api/v2/events", status = 500 })
      sb:fault({ path = "/api/v2/webhooks", method = "POST", status = 503 })
      sb:fault({ path = "/api/v2/webhooks", status = 504 })
      assert.are.equal(504, (api(sb, "GET", "/webhooks")))
      assert.are.equal(503, (api(sb, "POST", "/webhooks", { body = HOOK })))
      assert.are.equal(201, (api(sb, "POST", "/webhooks", { body = HOOK })))
      assert.are.equal(500, (api(sb, "GET", "/events/" .. sb.seeded_events[1])))
      assert.are.equal(200, (api(sb, "GET", "/events/" .. sb.seeded_events[1])))
      assert.are.equal(0, select(4, request(sb, "GET", "/sandbox/faults")).faults)
    end)

    it("delay the real answer with delay_ms alone", function()
      sb:fault({ path = "/api/v2/webhooks", delay_ms = 300 })
      local t0 = socket.gettime()
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      assert.is_true(socket.gettime() - t0 >= 0.28)
      sb:fault({ path = "/api/v2/webhooks", delay_ms = 200, status = 500 })
      t0 = socket.gettime()
      assert.are.equal(500, (api(sb, "GET", "/webhooks")))
      assert.is_true(socket.gettime() - t0 >= 0.18)
    end)

    it("drop the connection without an answer", function()
      sb:fault({ path = "/api/v2/webhooks", drop = true })
      local c = connect(sb)
      local status, err = c:request("GET", "/api/v2/webhooks")
      assert.is_nil(status)
      assert.are.equal("closed", err)
      c:close()
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("can be cleared, and invalid ones are refused", function()
      sb:fault({ path = "/api/v2", status = 500, count = 5 })
      assert(sb:clear_faults())
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      for _, spec in ipairs({ { status = 500 }, { path = "x", status = 500 },
        { path = "/api/v2" }, { path = "/", status = 500, count = 0 },
        { path = "/", status = 99 }, { path = "/", drop = "yes" } }) do
        local n, err = sb:fault(spec)
        assert.is_nil(n)
        assert.are.equal("http", err.kind)
        assert.are.equal(400, err.status)
      end
    end)
  end)
end)
