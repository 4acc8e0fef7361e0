-- The command line's rate limit: THINKIFIC_RATE_LIMIT (a number a minute, or off) and
-- THINKIFIC_RATE_LIMIT_STORE (a budget shared with other processes), their usage errors, and
-- the line `events get` and `webhooks sync` print before a job that will take more than a
-- minute. The time left on the progress line: spec/cli_progress_spec.lua.
local helper = require("spec.helper")

local API_KEY = "cli-rate-api-key-77"

describe("thinkific's rate limit settings #lua54", function()
  local sb, dir
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY })
  helper.scratch_dir(function(d) dir = d end)
  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url }
  end, { API_KEY, "st0re-pass" })

  it("refuses a THINKIFIC_RATE_LIMIT that is not a number or off", function()
    for _, bad in ipairs{ "abc", "0", "-1", "1.5", "120/min" } do
      local code, out, err = run({ "webhooks", "list" }, { THINKIFIC_RATE_LIMIT = bad })
      assert.are.equal(2, code, bad)
      assert.are.equal("", out)
      assert.are.equal("thinkific webhooks: THINKIFIC_RATE_LIMIT must be a number of requests per "
        .. "minute (1 or more), or off\n", err)
    end
    assert.are.equal(0, (run({ "webhooks", "list" }, { THINKIFIC_RATE_LIMIT = "off" })))
    assert.are.equal(0, (run({ "webhooks", "list" }, { THINKIFIC_RATE_LIMIT = "120" })))
  end)

  it("refuses a store that names none, or one without a limit", function()
    local code, _, err = run({ "events", "get", "1" }, { THINKIFIC_RATE_LIMIT = "5",
      THINKIFIC_RATE_LIMIT_STORE = "redis://u:st0re-pass@127.0.0.1/0" })
    assert.are.equal(2, code)
    assert.matches("^thinkific events: THINKIFIC_RATE_LIMIT_STORE: 'rate_limit_store' must be", err)
    code, _, err = run({ "events", "get", "1" },
      { THINKIFIC_RATE_LIMIT_STORE = "sqlite:" .. dir .. "/budget.db" })
    assert.are.equal(2, code)
    assert.matches("^thinkific events: THINKIFIC_RATE_LIMIT_STORE needs a rate limit: set "
      .. "THINKIFIC_RATE_LIMIT", err)
    code, _, err = run({ "events", "get", "1" }, { THINKIFIC_RATE_LIMIT = "off",
      THINKIFIC_RATE_LIMIT_STORE = "sqlite:" .. dir .. "/budget.db" })
    assert.are.equal(2, code)
    assert.matches("needs a rate limit", err)
    code, _, err = run({ "events", "get", "1" }, { THINKIFIC_RATE_LIMIT = "5",
      THINKIFIC_RATE_WINDOW = "0" })
    assert.are.equal(2, code)
    assert.matches("THINKIFIC_RATE_WINDOW must be", err)
  end)

  it("shares the budget of a store between runs", function()
    local store = "sqlite:" .. dir .. "/shared.db"
    local env = { THINKIFIC_RATE_LIMIT = "3", THINKIFIC_RATE_LIMIT_STORE = store }
    local id = sb.seeded_events[1]
    assert.are.equal(0, (run({ "events", "get", id, id }, env)))
    -- The next run finds 1 of 3 slots left, so 5 ids take two minutes, which it says (with a
    -- budget of its own, 3 now and 2 in a minute: no more than a minute).
    local child = helper.cli_start({ "events", "get", id, id, id, id, id },
      { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url, THINKIFIC_RATE_LIMIT = "3",
        THINKIFIC_RATE_LIMIT_STORE = store })
    finally(function() child:stop() end)
    assert.is_true(helper.wait_until(function() return child:stderr() ~= "" end, 10))
    assert.matches("^thinkific events: 5 requests at 3/min: this takes about [12] min[%d s]*\n$",
      child:stderr())
  end)

  it("events get says before it starts when the job takes more than a minute", function()
    local ids = {}
    for i = 1, 5 do ids[i] = sb.seeded_events[(i - 1) % #sb.seeded_events + 1] end
    local child = helper.cli_start({ "events", "get", table.unpack(ids) }, {
      THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url, THINKIFIC_RATE_LIMIT = "2" })
    finally(function() child:stop() end)
    assert.is_true(helper.wait_until(function() return child:stderr() ~= "" end, 10))
    -- 2 now, 2 in a minute, the fifth in two.
    assert.are.equal("thinkific events: 5 requests at 2/min: this takes about 2 min\n",
      child:stderr())
    -- Within the budget, nothing is said.
    local code, _, err = run({ "events", "get", ids[1], ids[2] }, { THINKIFIC_RATE_LIMIT = "3" })
    assert.are.equal(0, code)
    assert.are.equal("", err)
  end)

  it("webhooks sync says it before it applies a plan that takes more than a minute", function()
    local file = helper.write(dir, "desired.json", [[
      [{"topic": "order.created", "target_url": "https://example.com/1"},
       {"topic": "order.created", "target_url": "https://example.com/2"},
       {"topic": "order.created", "target_url": "https://example.com/3"}]
    ]])
    -- The plan reads one page; applying reads it again and creates 3: 4 requests at 2/min.
    local child = helper.cli_start({ "webhooks", "sync", file }, {
      THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url, THINKIFIC_RATE_LIMIT = "2" })
    finally(function() child:stop() end)
    assert.is_true(helper.wait_until(function() return child:stderr() ~= "" end, 10))
    assert.matches("^thinkific webhooks: 4 requests at 2/min: this takes about 2 min\n$",
      child:stderr())
  end)
end)
