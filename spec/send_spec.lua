-- core.send, the internal entry point `thinkific deliver` and `thinkific sandbox trigger`
-- send through (libcurl, the client's setup): against the sandbox, what it returns, the cap on
-- the answer, no redirects, http and https only, one deadline, and header values that could
-- add a header refused before anything is sent. TLS: cli_deliver_tls_spec.lua.
local helper = require("spec.helper")
local core = require("thinkific.core")
local thinkific = require("thinkific")

describe("core.send #memory", function()
  local sb, root
  helper.with_sandbox(function(s)
    sb = s
    root = sb.url:gsub("/api/v2$", "")
  end)

  local ENVELOPE = '{"id":"20240101000000000000001","resource":"order","action":"created",'
    .. '"payload":{"id":1}}'

  -- core.send with these defaults; false in opts removes a field.
  local function send(opts)
    local o = { method = "POST", url = root .. "/sandbox/events", body = ENVELOPE, timeout = 5,
      max_response_size = 1024 * 1024, headers = { ["Content-Type"] = "application/json" } }
    for k, v in pairs(opts or {}) do
      if v == false then o[k] = nil else o[k] = v end
    end
    local status, headers, body = core.send(o)
    return status, headers, body
  end

  it("sends the request and returns the status, the headers (lower-case names) and the body", function()
    local status, headers, body = send()
    assert.are.equal(201, status)
    assert.matches("^application/json", headers["content-type"])
    assert.are.same({ event_id = "20240101000000000000001" }, assert(thinkific.decode(body)))
    local c = helper.client(sb)
    assert.are.equal(1, assert(c:get_event("20240101000000000000001")).payload.id)
    c:close()
    -- Any HTTP answer is a status, not an error; GET without a body too.
    status, headers, body = send({ method = "GET", url = sb.url .. "/webhooks", body = false })
    assert.are.equal(401, status)
    assert.is_table(headers)
    assert.matches("error", body)
  end)

  it("fails with kind limit on an answer over max_response_size", function()
    local status, err = send({ max_response_size = 10 })
    assert.is_nil(status)
    assert.is_true(thinkific.is_error(err))
    assert.are.equal("limit", err.kind)
    assert.are.equal(true, err.sent)
    assert.are.equal("the response is larger than the limit of 10 bytes", err.message)
  end)

  it("follows no redirect", function()
    assert(sb:fault{ path = "/api/v2/webhooks", status = 302,
      headers = { Location = root .. "/sandbox/events" } })
    assert(sb:reset_stats())
    local status, headers = send({ method = "GET", url = sb.url .. "/webhooks", body = false })
    assert.are.equal(302, status)
    assert.are.equal(root .. "/sandbox/events", headers.location)
    assert.are.equal(1, assert(sb:stats()).requests)
  end)

  it("speaks http and https only", function()
    local status, err = send({ url = "ftp://127.0.0.1:" .. sb.port .. "/" })
    assert.is_nil(status)
    assert.are.same({ "network", false }, { err.kind, err.sent })
  end)

  it("bounds the whole request by one deadline", function()
    assert(sb:fault{ path = "/api/v2/webhooks", delay_ms = 3000 })
    local t0 = core.now()
    local status, err = send({ method = "GET", url = sb.url .. "/webhooks", body = false,
      timeout = 0.3 })
    local took = core.now() - t0
    assert.is_nil(status)
    assert.are.same({ "timeout", true }, { err.kind, err.sent })
    -- (libcurl counts its timers in whole milliseconds: it may give up a fraction of one early)
    assert.is_true(took >= 0.29 and took < 2.5, "took " .. took .. " s")
  end)

  it("raises for a header or a URL that could add a header line, and sends nothing", function()
    assert(sb:reset_stats())
    local bad = {
      { headers = { ["X-A"] = "1\r\nX-Evil: 1" } },
      { headers = { ["X-A"] = "1\nX-Evil: 1" } },
      { headers = { ["X-A"] = "1\0X-Evil: 1" } },
      { headers = { ["X-Evil: 1\r\nX-A"] = "1" } },
      { headers = { ["X-A:"] = "1" } },
      { url = root .. "/sandbox/events\r\nX-Evil: 1" },
      { method = "POST\r\nX-Evil: 1" },
    }
    for i, opts in ipairs(bad) do
      local ok, msg = pcall(send, opts)
      assert.is_false(ok, i)
      assert.matches("bad argument #1 to", msg)
      assert.is_nil(msg:find("X-Evil", 1, true), msg)
    end
    assert.are.equal(0, assert(sb:stats()).requests)
  end)

  it("raises for missing or mistyped fields", function()
    for _, opts in ipairs{ { url = false }, { method = false }, { timeout = false },
        { timeout = 0 }, { max_response_size = false }, { body = 42 }, { headers = "x" },
        { headers = { ["X-A"] = 1 } } } do
      assert.has_error(function() send(opts) end)
    end
    assert.has_error(function() core.send("http://x/") end)
  end)
end)
