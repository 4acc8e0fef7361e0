-- The client's rate limit (thinkific.budget): the sliding log on a clock the spec drives, its
-- options and defaults, client:budget(), the 429 block, and what takes a slot (every attempt,
-- retries and get_events' parallel ones included) and what does not count (the wait itself).
-- The stores that share a budget between processes: spec/budget_stores_spec.lua and
-- spec/rate_limit_spec.lua.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local budget = require("thinkific.budget")
local memory = require("thinkific.budget.memory")
local socket = require("socket")

describe("the budget's sliding log", function()
  -- A store on a clock set by the spec: limit 3 in any 10 s.
  local t
  local function store(limit)
    t = 0
    return memory.new({ site = "s", limit = limit or 3, window = 10 }, function() return t end)
  end

  it("grants what is free, at most the limit, and says how long until more", function()
    local s = store()
    assert.are.equal(2, (s:take(2, 5)))
    assert.are.equal(1, (s:take(5, 5)))  -- a part: one slot was left
    local n, wait = s:take(1, 5)
    assert.are.equal(0, n)
    -- Under way, a slot frees no sooner than a window after its end: the wait is a window.
    assert.are.equal(10, wait)
    assert.are.same({ 3, 15, 0 }, { s:look() })
  end)

  it("times a slot from the end of its attempts, one window on", function()
    local s = store()
    local _, first = s:take(1, 5)
    t = 2
    s:finish(first) -- frees at 12
    local _, second = s:take(2, 5)
    t = 3
    s:finish(second) -- frees at 13
    t = 11.5
    local n, wait = s:take(1, 5)
    assert.are.equal(0, n)
    assert.are.equal(0.5, wait)
    t = 12
    assert.are.equal(1, (s:take(3, 5)))
    t = 13
    assert.are.equal(2, (s:take(3, 5)))
  end)

  it("never holds more than the limit in any window, taken however", function()
    local s = store(4)
    local ends = {} -- the end of every attempt, the latest moment the server may count it
    local open = {}
    math.randomseed(7)
    for step = 1, 400 do
      t = step * 0.25
      for i = #open, 1, -1 do -- attempts end at random
        if math.random() < 0.5 then
          s:finish(open[i].grant)
          for _ = 1, open[i].n do ends[#ends + 1] = { start = open[i].at, stop = t } end
          table.remove(open, i)
        end
      end
      local n, grant = s:take(math.random(1, 3), 2)
      if n > 0 then open[#open + 1] = { n = n, grant = grant, at = t } end
    end
    -- For any window [w, w + 10): the attempts that may have arrived in it (started before
    -- its end, ended at or after its start) are at most the limit.
    for w = 0, 100, 0.25 do
      local count = 0
      for _, a in ipairs(ends) do
        if a.start < w + 10 and a.stop >= w then count = count + 1 end
      end
      assert.is_true(count <= 4, ("%d attempts in [%g, %g)"):format(count, w, w + 10))
    end
    assert.is_true(#ends >= 36, "too few attempts to tell: " .. #ends) -- about 4 per window
  end)

  it("is blocked by a 429 until its reset, whatever is free", function()
    local s = store()
    s:block(4)
    local n, wait = s:take(1, 5)
    assert.are.same({ 0, 4 }, { n, wait })
    assert.are.same({ 0, 0, 4 }, { s:look() })
    s:block(2) -- a shorter block never shortens a longer one
    assert.are.same({ 0, 4 }, { s:take(1, 5) })
    t = 4
    assert.are.equal(1, (s:take(1, 5)))
  end)

  it("estimates the time of more requests from budget() (budget.time_for)", function()
    -- 20 slots free now, 100 from 30 s on; then each serves one more a minute.
    local state = { limit = 120, remaining = 20, refill_at = 100 + 30, window = 60 }
    local function at(n) return budget.time_for(state, n, 100) end
    assert.are.same({ 0, 0, 30, 30, 60, 60, 90 },
      { at(0), at(20), at(21), at(120), at(121), at(140), at(141) })
    local fresh = { limit = 120, remaining = 120, refill_at = 100, window = 60 }
    assert.are.equal(240, budget.time_for(fresh, 600, 100)) -- the 600th goes in the 5th minute
  end)
end)

describe("the client's rate limit", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)
  before_each(function() assert(sb:reset_stats()) end)

  local function client(opts)
    local o = { sleep = socket.sleep }
    for k, v in pairs(opts or {}) do o[k] = v end
    return helper.client(sb, o)
  end

  it("is 120 a minute against Thinkific's own API only", function()
    local c = thinkific.new{ api_key = "k" }
    local b = c:budget()
    assert.are.same({ 120, 120, 60 }, { b.limit, b.remaining, b.window })
    assert.is_true(math.abs(b.refill_at - socket.gettime()) < 1)
    c:close()
    c = thinkific.new{ api_key = "k", base_url = "https://API.Thinkific.com:443/api/v2" }
    assert.are.equal(120, c:budget().limit)
    c:close()
    assert.are.equal(false, helper.client(sb):budget())
    assert.are.equal(false, thinkific.new{ api_key = "k", rate_limit = false }:budget())
    assert.are.equal(5, thinkific.new{ api_key = "k", base_url = sb.url, rate_limit = 5 }:budget().limit)
  end)

  it("refuses options that are not a limit, a window or a store", function()
    local base = { api_key = "secret-key-123", base_url = sb.url }
    local function new(extra)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return function() thinkific.new(o) end
    end
    for _, bad in ipairs{ 0, -1, 1.5, true, "120", 0 / 0 } do
      local msg = helper.argerror(1, "new", new{ rate_limit = bad })
      assert.matches("rate_limit", msg)
    end
    for _, bad in ipairs{ 0, -1, 61, 0 / 0 } do
      assert.matches("rate_window", helper.argerror(1, "new", new{ rate_limit = 5, rate_window = bad }))
    end
    for _, bad in ipairs{ "redis://x", "ngx:", "ngx:a-b", "sqlite:" } do
      local msg = helper.argerror(1, "new", new{ rate_limit = 5, rate_limit_store = bad })
      assert.is_nil(msg:find("secret-key-123", 1, true))
    end
    assert.matches("needs a rate limit", helper.argerror(1, "new",
      new{ rate_limit_store = "sqlite:/tmp/x.db" }))
    assert.matches("OpenResty", helper.argerror(1, "new", new{ rate_limit = 5,
      rate_limit_store = "ngx:budget" }))
  end)

  it("is kept per site: the subdomain, else a digest of the credential", function()
    assert.are.equal("subdomain:acme", budget.site("Acme", "https://x/api/v2", "secret"))
    local key = budget.site(nil, "https://x/api/v2", "secret-credential")
    assert.matches("^key:%x+$", key)
    assert.is_nil(key:find("secret", 1, true))
    assert.are_not.equal(key, budget.site(nil, "https://x/api/v2", "other"))
    assert.are_not.equal(key, budget.site(nil, "https://y/api/v2", "secret-credential"))
  end)

  it("budget() tells what is left and when the oldest slot frees", function()
    local c = client{ rate_limit = 3, api_key = sb.api_key, subdomain = "budget-left" }
    assert(c:list_webhooks())
    local before = socket.gettime()
    assert(c:list_webhooks())
    local b = c:budget()
    assert.are.same({ 3, 1, 60 }, { b.limit, b.remaining, b.window })
    -- The first call ended just before `before`: its slot frees a minute after that.
    assert.is_true(b.refill_at > before + 59 and b.refill_at <= before + 60.1, tostring(b.refill_at - before))
    c:close()
    assert.has_error(function() c:budget() end)
  end)

  it("counts every attempt, retries included, and waits for a slot", function()
    -- 2 per second; the call fails twice (500) then succeeds: its third attempt waits.
    local c = client{ rate_limit = 2, rate_window = 1, max_retry_wait = 0, subdomain = "retries" }
    assert(sb:fault{ path = "/api/v2/webhooks", status = 500, count = 2 })
    local t0 = socket.gettime()
    assert(c:list_webhooks())
    assert.is_true(socket.gettime() - t0 >= 1, "the third attempt did not wait for a slot")
    assert.are.equal(3, sb:stats().requests)
  end)

  it("does not count the wait against the timeout or the retries", function()
    local c = client{ rate_limit = 1, rate_window = 1, timeout = 0.5, retries = 0,
      subdomain = "wait" }
    assert(c:list_webhooks())
    local t0 = socket.gettime()
    local page, err = c:list_webhooks()
    assert.is_table(page, tostring(err))
    assert.is_true(socket.gettime() - t0 >= 0.9)
  end)

  it("takes a slot for each of get_events' parallel requests", function()
    local c = client{ rate_limit = 5, rate_window = 1, subdomain = "parallel" }
    local ids = {}
    for i = 1, 12 do ids[i] = sb.seeded_events[(i - 1) % #sb.seeded_events + 1] end
    local t0 = socket.gettime()
    local results = c:get_events(ids, { concurrency = 8 })
    local took = socket.gettime() - t0
    for i = 1, 12 do assert.is_table(results[i]) end
    -- 12 at 5 a second: the last goes after two windows.
    assert.is_true(took >= 2, tostring(took))
    assert.are.equal(12, sb:stats().requests)
  end)

  it("frees the slots of get_events' first wave a window after that wave, not the call", function()
    -- Two waves of 8, each answered 0.3 s late: the first wave's slots are the oldest, and
    -- free a window after the first wave's end, about 0.3 s before a window after the call's.
    assert(sb:fault{ path = "/api/v2/events/", delay_ms = 300, count = 16 })
    local c = client{ rate_limit = 16, subdomain = "waves" }
    local ids = {}
    for i = 1, 16 do ids[i] = sb.seeded_events[(i - 1) % #sb.seeded_events + 1] end
    local results, errs = c:get_events(ids, { concurrency = 8 })
    local ended = socket.gettime()
    for i = 1, 16 do assert.is_table(results[i], tostring(errs[i])) end
    local b = c:budget()
    assert.are.equal(0, b.remaining)
    assert.is_true(b.refill_at < ended + 60 - 0.15, tostring(b.refill_at - ended))
    c:close()
  end)

  it("keeps to the limit when requests arrive late (slots timed from their end)", function()
    local limited = helper.sandbox{ port = 0, rate_limit = 2, rate_window = 1 }
    finally(function() limited:stop() end)
    -- Pairs of requests, every other pair reaching the server 0.35 s late (the sandbox counts a
    -- request once its delay is over). Sent 0.7 s into a window, a late pair counts in the
    -- next one, where the pair sent a window later must not arrive too.
    for _ = 1, 2 do
      assert(limited:fault{ path = "/api/v2/events", delay_ms = 350, count = 2 })
      assert(limited:fault{ path = "/api/v2/events", delay_ms = 0, count = 2 })
    end
    local c = helper.client(limited, { rate_limit = 2, rate_window = 1, sleep = socket.sleep,
      retries = 0 })
    local ids = {}
    for i = 1, 8 do ids[i] = limited.seeded_events[(i - 1) % #limited.seeded_events + 1] end
    socket.sleep((1.7 - socket.gettime() % 1) % 1)
    local results, errs = c:get_events(ids, { concurrency = 2 })
    for i = 1, 8 do assert.is_table(results[i], tostring(errs[i])) end
    assert.are.equal(0, limited:stats().rate_limited)
    c:close()
  end)

  it("takes a slot for each call through a custom transport", function()
    local log = {}
    local c = client{ rate_limit = 2, rate_window = 1, subdomain = "transport",
      transport = helper.socket_transport(log) }
    local t0 = socket.gettime()
    local results = c:get_events({ sb.seeded_events[1], sb.seeded_events[2], sb.seeded_events[1] })
    assert.is_table(results[3])
    assert.are.equal(3, #log)
    assert.is_true(socket.gettime() - t0 >= 1)
  end)

  it("is blocked by a 429 until its RateLimit-Reset", function()
    local c = client{ rate_limit = 100, subdomain = "blocked", retries = 0 }
    local reset = socket.gettime() + 1.5
    assert(sb:fault{ path = "/api/v2/webhooks", status = 429, body = '{"error":"Too many requests"}',
      headers = { ["RateLimit-Reset"] = string.format("%d", math.floor(reset * 1000)) } })
    local _, err = c:list_webhooks()
    assert.are.equal(429, err.status)
    local b = c:budget()
    assert.are.equal(0, b.remaining)
    assert.is_true(math.abs(b.refill_at - reset) < 0.1, tostring(b.refill_at - reset))
    assert(c:list_webhooks()) -- waits for the reset
    assert.is_true(socket.gettime() >= reset - 0.01)
    assert.are.equal(98, c:budget().remaining)
  end)

  it("fails a call with kind 'store' when its store cannot be opened", function()
    local c = client{ rate_limit = 5, rate_limit_store = "sqlite:/nonexistent-dir/budget.db",
      api_key = sb.api_key }
    local v, err = c:get_webhook("1")
    assert.is_nil(v)
    assert.are.equal("store", err.kind)
    assert.are.equal("GET", err.method)
    assert.are.equal(0, err.attempts)
    local results, errs = c:get_events({ "1", "2" })
    assert.are.same({ false, false }, results)
    assert.are.same({ "store", "store" }, { errs[1].kind, errs[2].kind })
    assert.is_nil(c:budget())
    assert.are.equal(0, sb:stats().requests)
  end)
end)
