-- The sandbox over TLS: https with keep-alive, a test certificate made for the run.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local socket = require("socket")
local core = require("thinkific.core")
local sandbox = require("thinkific.sandbox")

local TIMEOUT = wire.TIMEOUT

describe("sandbox over TLS", function()
  local dir, sb

  -- Teardowns run in the order they are registered: the sandbox stops, then the directory of
  -- its certificate goes.
  lazy_teardown(function()
    if sb then sb:stop() end
  end)
  helper.scratch_dir(function(d) dir = d end)

  lazy_setup(function()
    local cert, key = helper.certificate(dir, "localhost", "/CN=localhost")
    sb = sandbox.spawn({ tls_cert = cert, tls_key = key })
  end)

  it("serves https", function()
    local ssl = require("ssl")
    assert.matches("^https://127%.0%.0%.1:%d+/api/v2$", sb.url)
    local tcp = socket.tcp()
    tcp:settimeout(TIMEOUT)
    assert(tcp:connect("127.0.0.1", sb.port))
    local c = assert(ssl.wrap(tcp, { mode = "client", protocol = "any", verify = "none" }))
    c:settimeout(TIMEOUT)
    assert(c:dohandshake())
    local conn = wire.wrap(c)
    for _ = 1, 2 do -- keep-alive over TLS
      local status, _, body = conn:request("GET", "/api/v2/webhooks")
      assert.are.equal(200, status)
      assert.are.equal(0, core.decode(body).meta.page.total_items)
    end
    conn:close()
    local s = assert(sb:stats())
    assert.are.equal(2, s.requests)
    assert.are.equal(1, s.connections)
  end)
end)
