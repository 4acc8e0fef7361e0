-- sandbox.serve: a sandbox server in this process, driven by the caller's own loop rounds.
local wire = require("spec.sandbox_wire")
local socket = require("socket")
local sandbox = require("thinkific.sandbox")

local KEY, TIMEOUT = wire.KEY, wire.TIMEOUT

-- The server itself is Lua 5.4 (LuaJIT cannot load it): the specs that run one in this
-- process are #lua54; under LuaJIT every other one talks to a Lua 5.4 child.
describe("sandbox.serve (in this process) #lua54", function()
  it("serves from the caller's own loop rounds", function()
    local httpc = require("thinkific.sandbox.httpc")
    local server = assert(sandbox.serve({ port = 0 }))
    local results = {}
    for _ = 1, 3 do
      server.loop:spawn(function()
        local res, err = httpc.request({ url = server.url .. "/webhooks", waiter = server.loop,
          headers = { Authorization = "Bearer " .. KEY }, timeout = TIMEOUT })
        results[#results + 1] = res and res.status or err
      end)
    end
    local deadline = socket.gettime() + TIMEOUT
    while #results < 3 and socket.gettime() < deadline do server:step(0.05) end
    server:close()
    assert.are.same({ 200, 200, 200 }, results)
    assert.are.equal(3, server.stats.requests)
  end)

  it("refuses what it cannot serve with nil, message", function()
    local none, err = sandbox.serve({ tls_cert = "/nonexistent.pem", tls_key = "/nonexistent.pem" })
    assert.is_nil(none)
    assert.matches("TLS", err)
  end)

  -- At its limit, a new connection takes the place of the one idle the longest (more in
  -- http_connections_spec.lua): of five that send nothing, the first two are closed.
  it("at its limit, replaces the connections idle the longest", function()
    local server = assert(sandbox.serve({ port = 0, max_connections = 3 }))
    local conns = {}
    for i = 1, 5 do
      conns[i] = socket.tcp()
      conns[i]:settimeout(TIMEOUT)
      assert(conns[i]:connect("127.0.0.1", server.port))
      for _ = 1, 3 do server:step(0.01) end
    end
    local closed = {}
    for i = 1, 5 do
      conns[i]:settimeout(0)
      local _, err = conns[i]:receive(1)
      if err == "closed" then closed[#closed + 1] = i end
      conns[i]:close()
    end
    server:close()
    assert.are.same({ 1, 2 }, closed)
  end)
end)
