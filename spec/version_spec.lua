-- One version everywhere: thinkific._VERSION, `thinkific --version` and the latest entry of
-- CHANGELOG.md agree; the rockspec stays scm-1 (no release is tagged) under the license that
-- LICENSE holds.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local function latest_changelog_version()
  local text = assert(helper.read(helper.repo .. "/CHANGELOG.md"))
  return text:match("\n## (%d+%.%d+%.%d+)[^\n]*\n")
end

describe("the version", function()
  it("is a semantic version in thinkific._VERSION", function()
    assert.matches("^%d+%.%d+%.%d+$", thinkific._VERSION)
  end)

  it("is the latest entry of CHANGELOG.md", function()
    assert.are.equal(thinkific._VERSION, latest_changelog_version())
  end)

  it("is what `thinkific --version` prints #lua54", function()
    local run = helper.cli({})
    for _, flag in ipairs({ "--version", "-V" }) do
      local code, out, err = run({ flag })
      assert.are.equal(0, code, err)
      assert.are.equal("thinkific " .. thinkific._VERSION .. "\n", out)
    end
  end)

  it("leaves the rockspec at scm-1, with the license LICENSE holds", function()
    local rockspec = {}
    local chunk = assert(loadfile(helper.repo .. "/thinkific-scm-1.rockspec", "t", rockspec))
    chunk()
    assert.are.equal("thinkific", rockspec.package)
    assert.are.equal("scm-1", rockspec.version)
    assert.are.equal("MIT", rockspec.description.license)
    local license = assert(helper.read(helper.repo .. "/LICENSE"))
    assert.matches("^MIT License\n", license)
  end)
end)
