-- Every inbox method has a `syntax:` line in doc/API.md; every function of the SQL layer and
-- method of its connections is described in doc/DESIGN.md (an internal interface).
local helper = require("spec.helper")

local API = helper.read(helper.repo .. "/doc/API.md")
local DESIGN = helper.read(helper.repo .. "/doc/DESIGN.md")

local function syntax_lines(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if line:find("^syntax: ") then lines[#lines + 1] = line end
  end
  return table.concat(lines, "\n")
end

-- The public function names of t (no leading underscore, no metamethods), sorted.
local function functions(t)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:find("^_") then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

describe("the inbox's docs", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  it("give every inbox method a syntax line in doc/API.md", function()
    local inbox = assert(require("thinkific").inbox{ store = "sqlite:" .. dir .. "/docs.db",
      router = require("thinkific").router{ secret = "x" } })
    local methods = functions(getmetatable(inbox).__index)
    inbox:close()
    assert.is_true(#methods >= 10)
    local lines = syntax_lines(API)
    for _, name in ipairs(functions(require("thinkific.inbox"))) do
      assert.truthy(lines:find("inbox%." .. name .. "[^%w_]"), "inbox." .. name)
    end
    for _, name in ipairs(methods) do
      assert.truthy(lines:find("inbox:" .. name .. "[^%w_]"), "inbox:" .. name)
    end
  end)

  it("describe every function of thinkific.sql and every method of its connections in DESIGN.md",
    function()
      local sql = require("thinkific.sql")
      local db = assert(sql.open("sqlite:" .. dir .. "/docs-sql.db"))
      local methods = functions(getmetatable(db).__index)
      db:close()
      assert.is_true(#methods >= 6)
      for _, name in ipairs(functions(sql)) do
        assert.truthy(DESIGN:find("`sql%." .. name .. "%("), "sql." .. name)
      end
      for _, name in ipairs(methods) do
        assert.truthy(DESIGN:find("`db:" .. name .. "%("), "db:" .. name)
      end
    end)
end)
