-- The sandbox as a child process (sandbox.spawn): stopping, the parent's death, start-up
-- failures, options, the API key kept out of sight; and the `thinkific sandbox` command's
-- exit statuses. Every wait is bounded.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local socket = require("socket")
local sandbox = require("thinkific.sandbox")
local process = require("thinkific.sandbox.process")

local api = wire.api

describe("sandbox process", function()
  it("stops once, idempotently, and leaves no process or temp file", function()
    local sb = sandbox.spawn()
    local child = sb._process
    local pid = sb.pid
    assert.is_true(process.alive(pid))
    assert.is_nil(io.open(child.out))
    sb:stop()
    sb:stop()
    assert.is_false(process.alive(pid))
    assert.is_nil(io.open(child.out))
    assert.is_nil(io.open(child.err))
    assert.is_nil(io.open(child.pidfile))
    assert.has_error(function() sb:stats() end)
  end)

  -- Stopped by a to-be-closed variable: close_lua54_spec.lua.

  it("exits when its parent dies (--parent-pipe)", function()
    local code = 'local sb = require("thinkific.sandbox").spawn(); io.write(sb.pid, "\\n"); '
      .. 'io.flush(); require("socket").sleep(30)'
    -- The parent runs under this run's interpreter (LuaJIT reads the LUA_PATH and LUA_CPATH
    -- this process got); the sandbox it spawns is Lua 5.4.
    local path, cpath = helper.lua54_paths()
    local env = string.format("export LUA_PATH_5_4=%s LUA_CPATH_5_4=%s;",
      process.quote(path), process.quote(cpath))
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    local parent = assert(io.popen("echo $$; " .. env .. " exec " .. lua .. " -e "
      .. process.quote(code) .. " </dev/null", "r"))
    local parent_pid = tonumber(parent:read("l"))
    local child_pid = tonumber(parent:read("l"))
    assert.is_number(parent_pid)
    assert.is_number(child_pid)
    assert.is_true(process.alive(child_pid))
    os.execute("kill -KILL " .. parent_pid)
    parent:close()
    assert.is_true(helper.wait_until(function() return not process.alive(child_pid) end, 5))
  end)

  it("raises a clear error when the child dies or prints nothing in time", function()
    local ok, err = pcall(sandbox.spawn, { lua = "/nonexistent/lua5.4" })
    assert.is_false(ok)
    assert.matches("did not start", err)
    local dir = os.tmpname()
    local f = assert(io.open(dir, "w"))
    f:write("#!/bin/sh\nexec sleep 30\n")
    f:close()
    os.execute("chmod +x " .. dir)
    local t0 = socket.gettime()
    ok, err = pcall(sandbox.spawn, { lua = dir, start_timeout = 0.5 })
    os.remove(dir)
    assert.is_false(ok)
    assert.matches("no URL in time", err)
    assert.is_true(socket.gettime() - t0 < 5)
  end)

  it("raises on bad options", function()
    assert.has_error(function() sandbox.spawn({ bogus = 1 }) end)
    assert.has_error(function() sandbox.spawn({ port = "80" }) end)
    assert.has_error(function() sandbox.spawn({ tls_cert = "x" }) end)
    assert.has_error(function() sandbox.spawn(5) end)
  end)

  it("never shows the API key", function()
    local sb = sandbox.spawn({ api_key = "very-secret-key" })
    assert.is_nil(tostring(sb):find("very-secret-key", 1, true))
    assert.is_nil(helper.read("/proc/" .. sb.pid .. "/cmdline"):find("very-secret-key", 1, true))
    assert.are.equal(401, (api(sb, "GET", "/webhooks")))
    assert.are.equal(200, (api(sb, "GET", "/webhooks",
      { headers = { Authorization = "Bearer very-secret-key" } })))
    sb:stop()
  end)
end)

describe("thinkific sandbox (command line)", function()
  -- The command is Lua 5.4 whatever runs the specs.
  local function run(args)
    local path, cpath = helper.lua54_paths()
    local cmd = string.format("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s lua5.4 %s/bin/thinkific %s "
      .. "</dev/null >/dev/null 2>&1", process.quote(path), process.quote(cpath), helper.repo, args)
    return helper.execute(cmd)
  end

  it("exits 2 on usage errors", function()
    assert.are.equal(2, run("sandbox --bogus"))
    assert.are.equal(2, run("sandbox --port nope"))
    assert.are.equal(2, run("sandbox --port 70000"))
    assert.are.equal(2, run("sandbox --tls-cert only.pem"))
    assert.are.equal(2, run("nothing-like-this"))
    assert.are.equal(2, run(""))
    assert.are.equal(0, run("--help"))
    assert.are.equal(0, run("sandbox --help"))
  end)

  it("exits 1 when it cannot listen", function()
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    assert.are.equal(1, run("sandbox --port " .. port))
    busy:close()
  end)
end)
