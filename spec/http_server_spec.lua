-- thinkific.http.server's failures, and the servers built on it: a port it cannot bind and a
-- certificate it cannot load are `nil, err` with err a thinkific error (kind "network", "tls"),
-- as API.md promises; a certificate without its key is the caller's mistake and raises.
-- listen.serve's own failure: listen_spec.lua.
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")
local http_server = require("thinkific.http.server")

-- A socket bound to a port of 127.0.0.1 (the port busy while it is open), and that port.
local function busy_port()
  local busy = assert(socket.bind("127.0.0.1", 0))
  local _, port = busy:getsockname()
  return busy, tonumber(port)
end

local function handle()
  return { status = 204 }
end

-- Expects nil, err from fn() with err a thinkific error of this kind whose message matches.
local function fails_with(kind, message, fn)
  local none, err = fn()
  assert.is_nil(none)
  assert.is_true(thinkific.is_error(err), tostring(err))
  assert.are.equal(kind, err.kind)
  assert.matches(message, err.message)
  assert.are.equal(err.message .. " (" .. kind .. ")", tostring(err))
end

describe("thinkific.http.server", function()
  it("returns nil, err (kind network) when it cannot listen", function()
    local busy, port = busy_port()
    finally(function() busy:close() end)
    fails_with("network", "^cannot listen on 127%.0%.0%.1 port " .. port .. ": ", function()
      return http_server.new({ port = port, handle = handle })
    end)
  end)

  it("returns nil, err (kind tls) when it cannot load the certificate or key", function()
    fails_with("tls", "^cannot load the TLS certificate or key: ", function()
      return http_server.new({ port = 0, handle = handle, tls_cert = "/nonexistent.pem",
        tls_key = "/nonexistent.pem" })
    end)
  end)

  it("raises for a certificate without its key and for no handler", function()
    assert.has_error(function() http_server.new({ port = 0, handle = handle, tls_cert = "c.pem" }) end)
    assert.has_error(function() http_server.new({ port = 0, handle = handle, tls_key = "k.pem" }) end)
    assert.has_error(function() http_server.new({ port = 0 }) end)
  end)

  it("listens when it can, and frees the port when closed", function()
    local server = assert(http_server.new({ port = 0, handle = handle }))
    assert.matches("^http://127%.0%.0%.1:%d+$", server.root)
    server:close()
    local again = assert(socket.bind("127.0.0.1", server.port))
    again:close()
  end)
end)

-- The sandbox's server runs in Lua 5.4 only.
describe("sandbox.serve failures #lua54", function()
  local sandbox = require("thinkific.sandbox")

  it("returns nil, err (kind network) when it cannot listen", function()
    local busy, port = busy_port()
    finally(function() busy:close() end)
    fails_with("network", "^cannot listen on 127%.0%.0%.1 port " .. port .. ": ", function()
      return sandbox.serve({ port = port })
    end)
  end)

  it("returns nil, err (kind tls) when it cannot load the certificate or key", function()
    fails_with("tls", "^cannot load the TLS certificate or key: ", function()
      return sandbox.serve({ port = 0, tls_cert = "/nonexistent.pem", tls_key = "/nonexistent.pem" })
    end)
  end)

  it("raises for bad options, as spawn does", function()
    helper.argerror(1, "serve", function() sandbox.serve("port 0") end)
    helper.argerror(1, "serve", function() sandbox.serve({ tls_cert = "c.pem" }) end)
    local msg = helper.argerror(1, "serve", function() sandbox.serve({ delivery_attempts = 0 }) end)
    assert.matches("delivery_attempts must be an integer 1..100", msg, 1, true)
  end)
end)

-- thinkific listen's: listen_spec.lua.
describe("thinkific sandbox, when it cannot listen #lua54", function()
  local run = helper.cli({})

  it("exits 1 with one line naming the address", function()
    local busy, port = busy_port()
    finally(function() busy:close() end)
    local code, out, err = run({ "sandbox", "--port", tostring(port) })
    assert.are.same({ 1, "", "thinkific sandbox: cannot listen on 127.0.0.1 port " .. port
      .. ": address already in use\n" }, { code, out, err })
  end)
end)
