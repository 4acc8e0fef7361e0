-- thinkific.quests.samples (the fields `thinkific quests check` knows per topic) is exactly
-- what the sample payloads hold: spec/fixtures/payloads (variants too) and the sandbox's
-- fixtures. A sample added or changed there must be added here too.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local samples = require("thinkific.quests.samples")

-- Every dotted path of t's string keys, not descending into lists.
local function paths(t, prefix, out)
  for k, v in pairs(t) do
    if type(k) == "string" then
      local p = prefix and (prefix .. "." .. k) or k
      out[p] = true
      if type(v) == "table" and #v == 0 and next(v) ~= nil then paths(v, p, out) end
    end
  end
  return out
end

describe("quests' sample fields", function()
  it("are the fields of every sample payload, by topic", function()
    local listing = helper.capture("ls " .. helper.fixtures .. "/payloads/*.json "
      .. helper.fixtures .. "/payloads/variants/*.json")
    local texts = {}
    for path in listing:gmatch("[^\n]+") do texts[#texts + 1] = helper.read(path) end
    for _, text in ipairs(require("thinkific.sandbox.fixtures").events) do texts[#texts + 1] = text end
    local want = {}
    for _, text in ipairs(texts) do
      local event = assert(thinkific.decode(text))
      local topic = event.resource .. "." .. event.action
      want[topic] = paths(event.payload, nil, want[topic] or {})
    end
    local have = {}
    for topic, list in pairs(samples.TOPICS) do
      have[topic] = {}
      for _, p in ipairs(list) do have[topic][p] = true end
    end
    assert.are.same(want, have)
  end)

  it("stand in for a topic without samples with its resource's, and know no other", function()
    local set, from = samples.paths("enrollment.completed")
    assert.are.equal("enrollment.*", from)
    assert.is_true(set.course_id and set.percentage_completed and true)
    assert.are.equal("lesson.completed", select(2, samples.paths("lesson.completed")))
    assert.is_nil(samples.paths("course.created"))
  end)
end)
