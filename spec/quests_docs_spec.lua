-- Every method of a quests object, and quests.new, has an entry with a `syntax:` line in
-- doc/API.md (docs_spec.lua checks the facade's thinkific.quests).
local helper = require("spec.helper")

local DOC = helper.read(helper.fixtures .. "/../../doc/API.md")

-- Whether a syntax line calls the function: name followed by ( or {.
local function documented(name)
  local pattern = name:gsub("[%.%:]", "%%%0") .. "[%({]"
  for line in DOC:gmatch("[^\n]+") do
    if line:find("^syntax: ") and line:find(pattern) then return true end
  end
  return false
end

describe("doc/API.md on quests", function()
  it("documents quests.new and every method", function()
    assert.is_true(documented("quests.new"))
    local q = assert(require("thinkific").quests{ store = "sqlite::memory:" })
    local methods = getmetatable(q).__index
    q:close()
    local count = 0
    for name in pairs(methods) do
      if type(name) == "string" and not name:find("^_") then
        count = count + 1
        assert.is_true(documented("quests:" .. name), "quests:" .. name)
      end
    end
    assert.is_true(count >= 11, count .. " methods")
  end)
end)
