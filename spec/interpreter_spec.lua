-- Each run asserts the interpreter it was meant for and the core it loads: make test-lua54
-- sets THINKIFIC_SPEC_LUA=5.4, make test-luajit THINKIFIC_SPEC_LUA=luajit, make asan
-- THINKIFIC_SPEC_LUA=asan (Lua 5.4 and the sanitized core; unset: 5.4, the project's
-- interpreter). A run under another interpreter (busted's default Lua 5.1, or LuaJIT
-- where Lua 5.4 was meant) fails here instead of passing quietly.
local helper = require("spec.helper")

local RUNS = {
  ["5.4"] = { build = "/build/5.4/thinkific/core.so" },
  luajit = { build = "/build/luajit/thinkific/core.so" },
  asan = { build = "/build/asan/thinkific/core.so" },
}

local WANT = os.getenv("THINKIFIC_SPEC_LUA") or "5.4"
-- The core Lua 5.4 children load: the run's own; under LuaJIT, the Lua 5.4 build.
local CHILD_BUILD = (RUNS[WANT == "luajit" and "5.4" or WANT] or {}).build

describe("the spec run", function()
  it("knows which interpreter it is meant for (THINKIFIC_SPEC_LUA)", function()
    assert.is_table(RUNS[WANT], "THINKIFIC_SPEC_LUA must be 5.4, luajit or asan, got " .. WANT)
  end)

  it("runs under that interpreter (not busted's default Lua 5.1)", function()
    if WANT == "luajit" then
      assert.are.equal("table", type(jit), "LuaJIT expected, got " .. _VERSION)
      assert.matches("^LuaJIT 2%.1", jit.version)
      assert.are.equal("Lua 5.1", _VERSION)
    else
      assert.are.equal("Lua 5.4", _VERSION)
      assert.is_nil(rawget(_G, "jit"))
      assert.are.equal("integer", math.type(1))
    end
  end)

  it("loads thinkific.core from this tree's build for that interpreter", function()
    assert.is_table(RUNS[WANT], "THINKIFIC_SPEC_LUA must be 5.4, luajit or asan, got " .. WANT)
    local path = package.searchpath("thinkific.core", package.cpath)
    assert.truthy(path and path:find(RUNS[WANT].build, 1, true), path)
    assert.are.equal("function", type(require("thinkific.core").decode))
  end)

  it("gives Lua 5.4 child processes this tree's modules and its Lua 5.4 build", function()
    local path, cpath = helper.lua54_paths()
    local core = package.searchpath("thinkific.core", cpath)
    assert.truthy(core and core:find(CHILD_BUILD, 1, true), core)
    local init = package.searchpath("thinkific.sandbox", path)
    assert.truthy(init and init:find("/lua/thinkific/sandbox/init.lua", 1, true), init)
  end)
end)

-- make asan: the sanitizer runtime is in this process and in a Lua 5.4 child ("lua5.4" from
-- PATH), and in no other program (it would hang bash and PostgreSQL: see the Makefile).
if WANT == "asan" then
  describe("the sanitizer run", function()
    local function has_runtime(maps) return maps:find("libclang_rt.asan", 1, true) ~= nil end

    it("has the runtime in this process and in a lua5.4 child, not in a shell", function()
      local f = assert(io.open("/proc/self/maps"))
      local maps = f:read("a")
      f:close()
      assert.is_true(has_runtime(maps))
      local child = [[lua5.4 -e 'io.write(io.open("/proc/self/maps"):read("a"))']]
      assert.is_true(has_runtime(helper.capture(child)))
      assert.is_false(has_runtime(helper.capture("cat /proc/self/maps")))
    end)
  end)
end
