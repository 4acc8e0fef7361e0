-- The sandbox's HTTP layer, from raw bytes on a socket: malformed requests, limits, chunked
-- bodies, 100-continue, Connection: close; and its statistics of API connections. Every wait
-- is bounded (socket timeouts, polling deadlines).
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local core = require("thinkific.core")

local api, request, connect = wire.api, wire.request, wire.connect
local KEY, HOOK, TIMEOUT = wire.KEY, wire.HOOK, wire.TIMEOUT

-- Statistics start from zero once the connections of earlier tests are seen closed.
local function fresh_stats(sb)
  assert(helper.wait_idle(sb, TIMEOUT))
  assert(sb:reset_stats())
end

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  describe("HTTP", function()
    it("answers a malformed request line with 400 and goes on serving", function()
      local c = connect(sb)
      c:send_raw("THIS IS NOT HTTP\r\n\r\n")
      local status, headers = c:receive()
      assert.are.equal(400, status)
      assert.are.equal("close", headers.connection)
      c:close()
      for _, raw in ipairs({ "GET /x HTTP/9.9\r\n\r\n", "get / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "\0\1\2\r\n\r\n" }) do
        c = connect(sb)
        c:send_raw(raw)
        local s = c:receive()
        assert.is_true(s == 400 or s == 505, raw)
        c:close()
      end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("answers 431 to huge headers and 413 to huge bodies", function()
      local c = connect(sb)
      c:send_raw("GET /api/v2/webhooks HTTP/1.1\r\nX-Big: " .. string.rep("a", 70000)
        .. "\r\n\r\n")
      assert.are.equal(431, (c:receive()))
      c:close()
      c = connect(sb)
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nContent-Length: 999999999999\r\n\r\n")
      assert.are.equal(413, (c:receive()))
      c:close()
    end)

    it("reads chunked bodies and answers Expect: 100-continue", function()
      local c = connect(sb)
      local body = assert(core.encode(HOOK))
      local half = math.floor(#body / 2)
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. string.format("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n", half, body:sub(1, half),
          #body - half, body:sub(half + 1)))
      assert.are.equal(201, (c:receive()))
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nExpect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n")
      assert.are.equal(100, (c:receive()))
      c:send_raw(body)
      assert.are.equal(201, (c:receive()))
      c:close()
    end)

    it("honours Connection: close", function()
      local c = connect(sb)
      local status, headers = c:request("GET", "/api/v2/webhooks", { close = true })
      assert.are.equal(200, status)
      assert.are.equal("close", headers.connection)
      local data, err = c.sock:receive(1)
      assert.is_nil(data)
      assert.are.equal("closed", err)
      c:close()
    end)
  end)

  describe("statistics", function()
    it("count several requests on one keep-alive connection as one connection", function()
      fresh_stats(sb)
      local c = connect(sb)
      for _ = 1, 3 do assert.are.equal(200, (c:request("GET", "/api/v2/webhooks"))) end
      local s = assert(sb:stats())
      assert.are.same({ requests = 3, connections = 1, active_connections = 1,
        peak_connections = 1, rate_limited = 0 }, s)
      c:close()
      assert.is_true(helper.wait_until(function() return sb:stats().active_connections == 0 end, TIMEOUT))
    end)

    it("see concurrent connections (peak_connections)", function()
      fresh_stats(sb)
      local conns = {}
      for i = 1, 4 do
        conns[i] = connect(sb)
        conns[i]:send("GET", "/api/v2/webhooks")
      end
      for i = 1, 4 do assert.are.equal(200, (conns[i]:receive())) end
      local s = assert(sb:stats())
      assert.are.equal(4, s.requests)
      assert.are.equal(4, s.connections)
      assert.are.equal(4, s.active_connections)
      assert.are.equal(4, s.peak_connections)
      for i = 1, 4 do conns[i]:close() end
      assert.is_true(helper.wait_until(function() return sb:stats().active_connections == 0 end, TIMEOUT))
      s = assert(sb:reset_stats())
      assert.are.same({ requests = 0, connections = 0, active_connections = 0,
        peak_connections = 0, rate_limited = 0 }, s)
    end)

    it("do not count control requests", function()
      fresh_stats(sb)
      for _ = 1, 3 do
        assert(sb:stats())
        assert(sb:deliveries())
      end
      request(sb, "GET", "/sandbox/events")
      assert.are.equal(0, sb:stats().requests)
    end)
  end)
end)
