-- To-be-closed variables: a client, a receiver and a spawned sandbox declared <close> are
-- closed at the end of their scope. Lua 5.4 syntax, which LuaJIT cannot parse: this file is
-- kept out of the LuaJIT run (LUA54_ONLY_SPECS in the Makefile).
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")

describe("client methods #memory #lua54", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  describe("lifetime", function()
    local function active()
      return assert(sb:stats()).active_connections
    end

    before_each(function()
      -- No connection of an earlier test is left open (or waiting for its client's __gc).
      assert(helper.wait_idle(sb, 5))
    end)

    it("closes a client declared <close> at the end of its scope, also on an error", function()
      local kept
      do
        local d <close> = helper.client(sb)
        kept = d
        assert(d:list_webhooks())
      end
      assert.truthy(tostring(kept):find("closed", 1, true))
      assert.has_error(function() kept:list_webhooks() end)
      assert.is_true(helper.wait_until(function() return active() == 0 end, 5))

      local ok = pcall(function()
        local d <close> = helper.client(sb)
        kept = d
        assert(d:list_webhooks())
        error("boom")
      end)
      assert.is_false(ok)
      assert.truthy(tostring(kept):find("closed", 1, true))
    end)
  end)
end)

describe("listen.serve #lua54", function()
  it("closes at the end of a <close> scope", function()
    local listen = require("thinkific.listen")
    local router = thinkific.router{ secret = "close-secret" }
    local port
    do
      local server <close> = assert(listen.serve{ router = router, port = 0, log = false })
      port = server.port
    end
    local again = assert(socket.bind("127.0.0.1", port))
    again:close()
  end)
end)

describe("sandbox process #lua54", function()
  it("is stopped by a to-be-closed variable", function()
    local sandbox = require("thinkific.sandbox")
    local process = require("thinkific.sandbox.process")
    local pid
    do
      local sb <close> = sandbox.spawn()
      pid = sb.pid
      assert.is_true(process.alive(pid))
    end
    assert.is_false(process.alive(pid))
  end)
end)
