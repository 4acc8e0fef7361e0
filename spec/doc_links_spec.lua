-- The docs stand on the repository alone: every relative link of README.md and doc/*.md names
-- a file of this tree (and, for a link into a Markdown file, one of its headings), and no doc
-- points at material the repository does not hold.
local helper = require("spec.helper")

local ROOT = helper.repo
local DOCS = { "README.md", "doc/API.md", "doc/DESIGN.md", "doc/THINKIFIC.md" }

-- The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.
local function anchor(heading)
  return (heading:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

local function anchors(text)
  local set = {}
  for heading in text:gmatch("\n#+ ([^\n]+)") do set[anchor(heading)] = true end
  return set
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("the docs", function()
  it("link only to files of this tree, and to headings those files have", function()
    local checked = 0
    for _, doc in ipairs(DOCS) do
      local text = helper.read(ROOT .. "/" .. doc)
      local dir = doc:match("^(.*)/") or "."
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:find("^%a[%w+.-]*:") then -- not a URL (https:, mailto:)
          local file, fragment = target:match("^([^#]*)#?(.*)$")
          local path = file == "" and doc or (dir .. "/" .. file)
          assert.is_true(exists(ROOT .. "/" .. path), doc .. ": " .. target .. " (no such file)")
          if fragment ~= "" and path:find("%.md$") then
            local have = anchors("\n" .. helper.read(ROOT .. "/" .. path))
            assert.is_true(have[fragment] == true, doc .. ": " .. target .. " (no such heading)")
          end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= 10, "links found: " .. checked)
  end)

  it("cite no document outside the repository", function()
    for _, doc in ipairs(DOCS) do
      local text = helper.read(ROOT .. "/" .. doc)
      for _, phrase in ipairs({ "../shared", "addition to API.md", "additions to API.md",
        "fact sheet", "addition to the contract" }) do
        assert.is_nil(text:find(phrase, 1, true), doc .. " says " .. phrase)
      end
    end
  end)

  it("state each Thinkific fact the code relies on in doc/THINKIFIC.md, with sources", function()
    local facts = helper.read(ROOT .. "/doc/THINKIFIC.md")
    local topics = require("thinkific.topics")
    for _, topic in ipairs(topics) do
      assert.truthy(facts:find("`" .. topic .. "`", 1, true), topic)
    end
    for _, fact in ipairs({ "X-Thinkific-Topic", "X-Thinkific-Hmac-Sha256",
      "X-Thinkific-Subdomain", "RateLimit-Reset", "120 requests per minute", "meta.page",
      "meta.pagination", "23 digits", "422", "https://developers.thinkific.com/" }) do
      assert.truthy(facts:find(fact, 1, true), fact)
    end
  end)
end)
