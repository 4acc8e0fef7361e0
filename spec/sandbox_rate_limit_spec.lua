-- The sandbox's rate limit (spawn{ rate_limit }, thinkific sandbox --rate-limit), over real
-- HTTP: each site's API requests are counted in fixed windows, and beyond the limit the answer
-- is Thinkific's 429 with RateLimit-Reset = the window's end in epoch milliseconds. Off by
-- default.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local socket = require("socket")

local api = wire.api

-- The headers of a request of site `subdomain` (nil: the credential stands for the site).
local function site(subdomain, key)
  return { Authorization = "Bearer " .. (key or wire.KEY), ["X-Auth-Subdomain"] = subdomain }
end

describe("the sandbox's rate limit", function()
  describe("by default", function()
    local sb
    helper.with_sandbox(function(s) sb = s end)

    it("is off", function()
      for _ = 1, 150 do assert.are.equal(200, (api(sb, "GET", "/webhooks"))) end
      assert.are.equal(0, sb:stats().rate_limited)
    end)
  end)

  describe("of 3 a minute", function()
    local sb
    helper.with_sandbox(function(s) sb = s end, { rate_limit = 3 })
    before_each(function() assert(sb:reset_stats()) end)

    it("answers 429 with RateLimit-Reset at the minute's end once 3 are spent", function()
      -- Not across a minute's end: the count would start again there.
      local now = socket.gettime()
      if now % 60 > 58 then socket.sleep(60 - now % 60 + 0.05) end
      for _ = 1, 3 do assert.are.equal(200, (api(sb, "GET", "/webhooks", { headers = site("acme") }))) end
      local status, headers, _, body = api(sb, "GET", "/webhooks", { headers = site("acme") })
      assert.are.equal(429, status)
      assert.are.same({ error = "Too many requests" }, body)
      local reset = tonumber(headers["ratelimit-reset"])
      assert.are.equal((math.floor(socket.gettime() / 60) + 1) * 60000, reset)
      assert.are.equal(1, sb:stats().rate_limited)
      -- What the client makes of it: a 429 to wait out until then.
      local c = helper.client(sb, { subdomain = "acme", retries = 0 })
      local _, err = c:list_webhooks()
      assert.are.equal(429, err.status)
      assert.is_true(math.abs(err.retry_after - (reset / 1000 - socket.gettime())) < 0.5)
      c:close()
    end)

    it("counts each site apart: the subdomain, else the credential", function()
      local now = socket.gettime()
      if now % 60 > 58 then socket.sleep(60 - now % 60 + 0.05) end
      for _ = 1, 3 do api(sb, "GET", "/webhooks", { headers = site("acme") }) end
      assert.are.equal(429, (api(sb, "GET", "/webhooks", { headers = site("acme") })))
      assert.are.equal(429, (api(sb, "GET", "/webhooks", { headers = site("ACME") })))
      assert.are.equal(200, (api(sb, "GET", "/webhooks", { headers = site("other") })))
      assert.are.equal(200, (api(sb, "GET", "/webhooks", { headers = site(nil) })))
      -- A request with another credential is another site (here refused for its key).
      assert.are.equal(401, (api(sb, "GET", "/webhooks", { headers = site(nil, "other-key") })))
    end)

    it("starts again after reset()", function()
      for _ = 1, 4 do api(sb, "GET", "/webhooks", { headers = site("acme") }) end
      assert(sb:reset())
      assert.are.equal(200, (api(sb, "GET", "/webhooks", { headers = site("acme") })))
    end)

    it("leaves the control endpoints and faults out of the count", function()
      assert(sb:fault{ path = "/api/v2/webhooks", status = 503, count = 5 })
      for _ = 1, 5 do assert.are.equal(503, (api(sb, "GET", "/webhooks"))) end
      for _ = 1, 5 do assert(sb:stats()) end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)
  end)

  describe("in a window of 1 s (for tests)", function()
    local sb
    helper.with_sandbox(function(s) sb = s end, { rate_limit = 2, rate_window = 1 })

    it("allows the limit again in the next window", function()
      local now = socket.gettime()
      if now % 1 > 0.8 then socket.sleep(1 - now % 1 + 0.01) end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      local status, headers = api(sb, "GET", "/webhooks")
      assert.are.equal(429, status)
      socket.sleep(tonumber(headers["ratelimit-reset"]) / 1000 - socket.gettime() + 0.01)
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)
  end)

  it("refuses a limit that is not a count per minute", function()
    local spawn = require("thinkific.sandbox").spawn
    for _, bad in ipairs{ 0, -1, 1.5 } do
      assert.has_error(function() spawn{ rate_limit = bad } end)
    end
    assert.has_error(function() spawn{ rate_limit = 5, rate_window = 0 } end)
  end)
end)

describe("thinkific sandbox --rate-limit #lua54", function()
  local run = helper.cli()

  it("takes N/min, and refuses anything else with a usage error", function()
    for _, bad in ipairs{ "abc", "0/min", "5/hour", "1.5", "" } do
      local code, out, err = run{ "sandbox", "--rate-limit", bad }
      assert.are.equal(2, code, bad)
      assert.are.equal("", out)
      assert.matches("thinkific sandbox: %-%-rate%-limit ", err)
    end
    local code, _, err = run{ "sandbox", "--rate-limit", "5/min", "--rate-window", "0" }
    assert.are.equal(2, code)
    assert.matches("thinkific sandbox: %-%-rate%-window ", err)
  end)

  it("enforces it", function()
    local child = helper.cli_start({ "sandbox", "--rate-limit", "2/min" })
    finally(function() child:stop() end)
    local url = assert(child:first_line(10))
    local c = require("thinkific").new{ api_key = wire.KEY, base_url = url, retries = 0 }
    local now = socket.gettime()
    if now % 60 > 58 then socket.sleep(60 - now % 60 + 0.05) end
    assert(c:list_webhooks())
    assert(c:list_webhooks())
    local _, err = c:list_webhooks()
    assert.are.equal(429, err.status)
    c:close()
  end)
end)
