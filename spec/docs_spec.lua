-- Every exported name has an entry with a `syntax:` line in doc/API.md.
local helper = require("spec.helper")

local DOC = helper.read(helper.fixtures .. "/../../doc/API.md")

local syntax = {}
for line in DOC:gmatch("[^\n]+") do
  if line:find("^syntax: ") then syntax[#syntax + 1] = line end
end

local function documented(pattern)
  for _, line in ipairs(syntax) do
    if line:find(pattern) then return true end
  end
  return false
end

local function public_names(t)
  local names = {}
  for k in pairs(t) do
    if type(k) == "string" and not k:find("^_%l") then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

describe("doc/API.md", function()
  it("documents every field of the facade", function()
    for _, name in ipairs(public_names(require("thinkific"))) do
      assert.is_true(documented("thinkific%." .. name .. "[^%w_]"), "thinkific." .. name)
    end
  end)

  it("documents every client method", function()
    for _, name in ipairs(public_names(require("thinkific.core").client_methods)) do
      assert.is_true(documented("client:" .. name .. "[^%w_]"), "client:" .. name)
    end
  end)

  it("documents every router method", function()
    local Router = getmetatable(require("thinkific").router{ secret = "x" })
    for _, name in ipairs(public_names(Router)) do
      if name ~= "__index" then
        assert.is_true(documented("router:" .. name .. "[^%w_]"), "router:" .. name)
      end
    end
    for _, name in ipairs(public_names(require("thinkific.router"))) do
      assert.is_true(documented("router%." .. name .. "[^%w_]"), "router." .. name)
    end
  end)

  it("documents every function of the sandbox module", function()
    for _, name in ipairs(public_names(require("thinkific.sandbox"))) do
      assert.is_true(documented("sandbox%." .. name .. "[^%w_]"), "sandbox." .. name)
    end
  end)

  it("documents every method of a spawned sandbox", function()
    local sb = require("thinkific.sandbox").spawn({ port = 0 })
    local methods = getmetatable(sb).__index
    sb:stop()
    for _, name in ipairs(public_names(methods)) do
      if not name:find("^__") then
        assert.is_true(documented("sb:" .. name .. "[^%w_]"), "sb:" .. name)
      end
    end
  end)

  it("documents every function of thinkific.ngx (which loads outside nginx)", function()
    local tngx = require("thinkific.ngx")
    for _, name in ipairs(public_names(tngx)) do
      assert.is_true(documented("thinkific%.ngx%." .. name .. "[^%w_]"), "thinkific.ngx." .. name)
    end
    for _, name in ipairs({ "add", "set", "get", "delete" }) do
      assert.is_true(documented("store:" .. name .. "[^%w_]"), "store:" .. name)
    end
  end)

  it("documents every function of the listen module and every server method", function()
    local listen = require("thinkific.listen")
    for _, name in ipairs(public_names(listen)) do
      assert.is_true(documented("listen%." .. name .. "[^%w_]"), "listen." .. name)
    end
    local server = assert(listen.serve({ router = require("thinkific").router{ secret = "x" },
      port = 0, log = false }))
    local Server = getmetatable(server)
    server:close()
    for _, name in ipairs(public_names(Server)) do
      if not name:find("^__") then
        assert.is_true(documented("server:" .. name .. "[^%w_]"), "server:" .. name)
      end
    end
  end)
end)
