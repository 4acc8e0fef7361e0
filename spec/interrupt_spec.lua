-- thinkific.cli.interrupt in this process: the interpreter's SIGINT error out of run()
-- becomes 130 with the server closed (its port refuses connections); a stop gives 0; any
-- other error is returned. The CLI specs send a real SIGINT (cli_serve_spec.lua); this shows
-- the close that a process exit would otherwise hide. Servers are Lua 5.4 (#lua54).
local socket = require("socket")
local interrupt = require("thinkific.cli.interrupt")

describe("thinkific.cli.interrupt #lua54", function()
  -- A sandbox server in this process whose loop raises err at its first round (as lua.c's
  -- hook raises "interrupted!" in the main thread), or stops at once when err is nil.
  local function server_raising(err)
    local server = assert(require("thinkific.sandbox").serve({ port = 0 }))
    local loop = server.httpd.loop
    loop.step = function(self)
      if err then error(err) end
      self:stop()
    end
    return server
  end

  local function refused(port)
    local s = socket.tcp()
    s:settimeout(2)
    local ok, err = s:connect("127.0.0.1", port)
    s:close()
    return not ok and err == "connection refused"
  end

  it("Ctrl-C: 130, the listening socket closed", function()
    local server = server_raising("interrupted!")
    assert.is_false(refused(server.port))
    assert.are.same({ 130 }, { interrupt.serve(server) })
    assert.is_true(refused(server.port))
  end)

  it("a stop: 0, closed", function()
    local server = server_raising(nil)
    assert.are.same({ 0 }, { interrupt.serve(server) })
    assert.is_true(refused(server.port))
  end)

  it("any other error: nil and the error, closed", function()
    local server = server_raising("out of luck")
    local status, err = interrupt.serve(server)
    assert.is_nil(status)
    assert.matches("out of luck$", err)
    assert.is_true(refused(server.port))
  end)

  it("knows the interpreter's message, with or without a position", function()
    assert.is_true(interrupt.is_interrupt("interrupted!"))
    assert.is_true(interrupt.is_interrupt("/x/loop.lua:78: interrupted!"))
    assert.is_false(interrupt.is_interrupt("interrupted! not"))
    assert.is_false(interrupt.is_interrupt({}))
  end)
end)
