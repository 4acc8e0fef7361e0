-- Which module may require which, read from the source of every file under lua/thinkific/:
-- the library and the real receiver never depend on the test double. Outside sandbox/, only
-- the `thinkific sandbox` command (cli.lua's dispatch and cli/sandbox*.lua) requires anything
-- under thinkific.sandbox; thinkific.http, the HTTP pieces the sandbox and the receiver share,
-- requires nothing of thinkific but the core and itself.
local helper = require("spec.helper")

local TREE = helper.repo .. "/lua/thinkific/"

-- The module names a Lua text requires by name, sorted: require("x"), require "x",
-- require 'x', pcall(require, "x"). A name built at run time (require("a" .. b)) gives its
-- literal start.
local function requires(text)
  local names = {}
  for name in text:gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']") do names[#names + 1] = name end
  for name in text:gmatch("pcall%(%s*require%s*,%s*[\"']([%w_.]+)[\"']") do
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

-- Every Lua file under lua/thinkific/: { path relative to it -> list of required names }.
local function modules()
  local listing, status = helper.capture("find " .. TREE .. " -type f -name '*.lua' | sort")
  assert(status == 0, listing)
  local out = {}
  for path in listing:gmatch("[^\n]+") do
    out[path:sub(#TREE + 1)] = requires(assert(helper.read(path)))
  end
  return out
end

-- "file: module" for each require of a file that `allowed(file)` does not let through and
-- that `forbidden(module)` names; sorted.
local function offences(files, allowed, forbidden)
  local found = {}
  for file, names in pairs(files) do
    if not allowed(file) then
      for _, name in ipairs(names) do
        if forbidden(name) then found[#found + 1] = file .. ": " .. name end
      end
    end
  end
  table.sort(found)
  return found
end

local function under(prefix)
  return function(name) return name == prefix or name:sub(1, #prefix + 1) == prefix .. "." end
end

-- The files that may require the sandbox: its own, and its command's.
local function sandbox_side(file)
  return file:find("^sandbox/") ~= nil or file == "cli.lua" or file:find("^cli/sandbox[^/]*%.lua$") ~= nil
end

describe("the requires of lua/thinkific/", function()
  local files = modules()

  it("are read in every form, from every file", function()
    assert.are.same({ "a", "b.c", "d", "e", "f", "thinkific.sandbox" }, requires(table.concat({
      'local a = require("a")', "local b = require 'b.c'", 'require "d"',
      'local ok, e = pcall(require, "e")', "x = require ( 'f' )",
      'require("thinkific.sandbox" .. name)', "-- no require(here)" }, "\n")))
    local count = 0
    for _ in pairs(files) do count = count + 1 end
    assert.is_true(count > 30, "only " .. count .. " files under " .. TREE)
    assert.are.same({ "listen.lua: thinkific.http.server" }, offences(files,
      function(file) return file ~= "listen.lua" end, under("thinkific.http.server")))
  end)

  it("name the sandbox only in sandbox/ and the thinkific sandbox command", function()
    assert.are.same({}, offences(files, sandbox_side, under("thinkific.sandbox")))
    -- The check sees a breach: the dispatch does require the command, which requires the sandbox.
    assert.are.same({ "cli.lua: thinkific.cli.sandbox" }, offences(files,
      function(file) return file ~= "cli.lua" end, under("thinkific.cli.sandbox")))
  end)

  it("of thinkific.http name nothing of thinkific but the core and thinkific.http", function()
    local function outside_http(name)
      return name:find("^thinkific") ~= nil and name ~= "thinkific.core"
        and not under("thinkific.http")(name)
    end
    assert.are.same({}, offences(files, function(file) return file:find("^http/") == nil end,
      outside_http))
  end)
end)
