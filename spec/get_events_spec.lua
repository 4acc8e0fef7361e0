-- client:get_events: many events at once over libcurl's multi handle (or a custom transport).
local helper = require("spec.helper")

describe("client:get_events #memory", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  local function record(n)
    local ids = {}
    for i = 1, n do
      ids[i] = assert(sb:record_event{ resource = "order", action = "created", payload = { n = i } })
    end
    return ids
  end

  it("returns the events in the order of the ids", function()
    local ids = record(20)
    local c = helper.client(sb)
    local results, errs = c:get_events(ids, { concurrency = 5 })
    assert.are.equal(20, #results)
    for i, id in ipairs(ids) do
      assert.is_table(results[i])
      assert.are.equal(tostring(id), tostring(results[i].id))
      assert.are.equal(i, results[i].payload.n)
      assert.is_nil(errs[i])
    end
    c:close()
  end)

  it("gives false and a 404 error for missing ids, the others succeed", function()
    local ids = record(3)
    local c = helper.client(sb)
    local list = { ids[1], "missing-1", ids[2], 424242, ids[3] }
    local results, errs = c:get_events(list)
    assert.is_table(results[1])
    assert.is_table(results[3])
    assert.is_table(results[5])
    for _, i in ipairs{ 2, 4 } do
      assert.are.equal(false, results[i])
      assert.are.equal("http", errs[i].kind)
      assert.are.equal(404, errs[i].status)
      assert.are.equal("GET", errs[i].method)
      assert.are.equal(1, errs[i].attempts)
    end
    assert.are.equal("/events/missing-1", errs[2].path)
    assert.are.equal("/events/424242", errs[4].path)
    c:close()
  end)

  it("gives a 2xx answer that is not an event object the decode error of get_event", function()
    local ids = record(1)
    local c = helper.client(sb)
    for _, body in ipairs{ "not json", "[]", '{"open": ', " " } do
      assert(sb:fault{ path = "/api/v2/events", status = 200, body = body, count = 2 })
      local results, errs = c:get_events(ids)
      local _, one = c:get_event(ids[1])
      assert.are.equal(false, results[1], body)
      assert.are.equal("decode", errs[1].kind, body)
      assert.are.equal(200, errs[1].status)
      assert.are.equal("/events/" .. tostring(ids[1]), errs[1].path)
      assert.are.equal(1, errs[1].attempts) -- decode errors are not retried
      assert.are.equal(one.message, errs[1].message, body)
    end
    c:close()
  end)

  it("escapes ids in paths, and takes a list with a metatable", function()
    local ids = record(2)
    local c = helper.client(sb)
    local list = setmetatable({ ids[1], "a b/../c", ids[2] }, { __newindex = error })
    local results, errs = c:get_events(list)
    assert.is_table(results[1])
    assert.is_table(results[3])
    assert.are.equal(tostring(ids[2]), tostring(results[3].id))
    assert.are.equal(false, results[2])
    assert.are.equal(404, errs[2].status)
    assert.are.equal("/events/a%20b%2F%2E%2E%2Fc", errs[2].path)
    c:close()
  end)

  it("keeps at most `concurrency` transfers in flight", function()
    local ids = record(24)
    assert(helper.wait_idle(sb, 5))
    assert(sb:reset_stats())
    assert(sb:fault{ path = "/api/v2/events", delay_ms = 300, count = 24 })
    local c = helper.client(sb)
    local results = c:get_events(ids, { concurrency = 4 })
    for i = 1, 24 do assert.is_table(results[i]) end
    local s = assert(sb:stats())
    assert.are.equal(24, s.requests)
    assert.are.equal(4, s.peak_connections)
    c:close()
  end)

  it("retries the retryable failures in a second round", function()
    local ids = record(10)
    assert(sb:fault{ path = "/api/v2/events", status = 500, count = 3 })
    local c, waits = helper.recording(sb)
    local results, errs = c:get_events(ids, { concurrency = 2 })
    for i = 1, 10 do
      assert.is_table(results[i])
      assert.is_nil(errs[i])
    end
    assert.are.equal(1, #waits)
    c:close()
  end)

  it("rides out a 429 storm, waiting as the server says", function()
    local ids = record(12)
    assert(sb:fault{ path = "/api/v2/events", status = 429, count = 8,
      headers = { ["RateLimit-Reset"] = "1500" }, body = '{"error":"Too many requests"}' })
    local c, waits = helper.recording(sb)
    local results, errs = c:get_events(ids, { concurrency = 4 })
    for i = 1, 12 do
      assert.is_table(results[i], tostring(errs[i]))
      assert.are.equal(i, results[i].payload.n)
    end
    assert.is_true(#waits >= 1)
    for _, w in ipairs(waits) do assert.is_true(math.abs(w - 1.5) < 0.01, tostring(w)) end
    c:close()
  end)

  it("survives dropped connections: the dropped ids go round again, none is lost", function()
    local ids = record(16)
    assert(sb:fault{ path = "/api/v2/events", drop = true, count = 5 })
    local c, waits = helper.recording(sb)
    local results, errs = c:get_events(ids, { concurrency = 4 })
    for i = 1, 16 do
      assert.is_table(results[i], tostring(errs[i]))
      assert.are.equal(i, results[i].payload.n)
    end
    assert.is_true(#waits >= 1)
    c:close()
  end)

  it("reports attempts on errors that stay after the retries", function()
    local ids = record(2)
    assert(sb:fault{ path = "/api/v2/events", status = 503, count = 100 })
    local c, waits = helper.recording(sb, { retries = 1 })
    local results, errs = c:get_events(ids)
    for i = 1, 2 do
      assert.are.equal(false, results[i])
      assert.are.equal(503, errs[i].status)
      assert.are.equal(2, errs[i].attempts)
    end
    assert.are.equal(1, #waits)
    assert(sb:clear_faults())
    c:close()
  end)

  it("works through a custom transport, one call after the other", function()
    local ids = record(3)
    local log = {}
    local c = helper.client(sb, { transport = helper.socket_transport(log) })
    local results, errs = c:get_events{ ids[1], "nope", ids[3] }
    assert.is_table(results[1])
    assert.are.equal(false, results[2])
    assert.are.equal(404, errs[2].status)
    assert.is_table(results[3])
    assert.are.equal(3, #log)
    c:close()
  end)

  it("raises on bad arguments", function()
    local c = helper.client(sb)
    helper.argerror(1, "get_events", function() c:get_events("x") end)
    helper.argerror(1, "get_events", function() c:get_events{ "a", {} } end)
    helper.argerror(1, "get_events", function() c:get_events{ "a", "" } end)
    helper.argerror(1, "get_events", function() c:get_events{ 1.5 } end)
    helper.argerror(2, "get_events", function() c:get_events({ "a" }, { concurrency = 0 }) end)
    helper.argerror(2, "get_events", function() c:get_events({ "a" }, { concurrency = 65 }) end)
    helper.argerror(2, "get_events", function() c:get_events({ "a" }, { concurrency = 2.5 }) end)
    helper.argerror(2, "get_events", function() c:get_events({ "a" }, { speed = 1 }) end)
    helper.argerror(2, "get_events", function() c:get_events({ "a" }, { progress = 1 }) end)
    helper.argerror(0, "get_events", function() c.get_events({ "a" }) end)
    local results, errs = c:get_events{}
    assert.are.same({}, results)
    assert.are.same({}, errs)
    c:close()
    assert.has_error(function() c:get_events{ "a" } end)
  end)

  it("reports progress as ids get their final answer, retried ones last", function()
    local ids = record(5)
    local list = {}
    for i = 1, 300 do list[i] = ids[(i - 1) % 5 + 1] end
    list[150] = "missing-1"
    assert(sb:fault{ path = "/api/v2/events", status = 503, count = 2 })
    local c = helper.recording(sb)
    local calls = {}
    local results, errs = c:get_events(list, { concurrency = 4, progress = function(done, total)
      calls[#calls + 1] = { done, total }
    end })
    -- Slices of 32 * 4 = 128 ids: 128, 256 and 300 in the first round (less the two 503s, to
    -- be retried), then 300 after the second round.
    assert.are.same({ 126, 300 }, { calls[1][1], calls[1][2] })
    assert.are.equal(4, #calls)
    assert.are.same({ 300, 300 }, calls[4])
    for k = 2, #calls do assert.is_true(calls[k][1] >= calls[k - 1][1]) end
    assert.are.equal(false, results[150])
    assert.are.equal(404, errs[150].status)
    for i = 1, 300 do
      if i ~= 150 then assert.is_table(results[i], tostring(errs[i])) end
    end
    c:close()
  end)

  it("calls progress after each id through a custom transport; its errors propagate", function()
    local ids = record(3)
    local c = helper.client(sb, { transport = helper.socket_transport({}) })
    local seen = {}
    c:get_events(ids, { progress = function(done, total) seen[#seen + 1] = done .. "/" .. total end })
    assert.are.same({ "1/3", "2/3", "3/3" }, seen)
    c:close()
    c = helper.client(sb)
    assert.has_error(function()
      c:get_events(ids, { progress = function() error("stop here") end })
    end, nil)
    -- The interrupted call left nothing behind: the next one works.
    local results = c:get_events(ids)
    for i = 1, 3 do assert.is_table(results[i]) end
    c:close()
  end)

  it("fetches 1,000 ids", function()
    local few = record(10)
    local ids = {}
    for i = 1, 1000 do ids[i] = few[(i - 1) % 10 + 1] end
    local c = helper.client(sb)
    local results, errs = c:get_events(ids, { concurrency = 16 })
    assert.are.equal(1000, #results)
    for i = 1, 1000 do
      assert.is_table(results[i], errs[i] and tostring(errs[i]))
      assert.are.equal(tostring(ids[i]), tostring(results[i].id))
    end
    c:close()
  end)
end)

-- Not under valgrind (#memory): 10,000 requests there would take minutes.
describe("client:get_events at scale", function()
  local thinkific = require("thinkific")
  local sb
  helper.with_sandbox(function(s) sb = s end)

  -- Lua heap in KiB after a full collection.
  local function heap()
    collectgarbage("collect")
    collectgarbage("collect")
    return collectgarbage("count")
  end

  it("fetches 10,000 ids in bounded memory: nothing is held beyond the results", function()
    local few = {}
    for i = 1, 10 do
      few[i] = assert(sb:record_event{ resource = "order", action = "created", payload = { n = i } })
    end
    local ids = {}
    for i = 1, 10000 do ids[i] = few[(i - 1) % 10 + 1] end
    local c = helper.client(sb)
    -- What one result costs: the same event decoded 1,000 times, in a list.
    local body = assert(thinkific.encode(assert(c:get_event(few[1]))))
    local base = heap()
    local per_event
    do
      local copies = {}
      for i = 1, 1000 do copies[i] = thinkific.decode(body) end
      per_event = (heap() - base) / 1000
      assert.are.equal(1000, #copies)
    end
    base = heap()
    -- Sampled while the ids come in: the heap holds the results so far and lists of ids
    -- (under 1 MiB for 10,000), never the answers' bodies.
    local worst = -math.huge
    local results, errs = c:get_events(ids, { concurrency = 16, progress = function(done)
      local extra = heap() - base - per_event * done
      if extra > worst then worst = extra end
    end })
    local extra = heap() - base - per_event * 10000
    for i = 1, 10000 do
      assert.is_table(results[i], errs[i] and tostring(errs[i]))
      assert.are.equal(tostring(ids[i]), tostring(results[i].id))
    end
    local why = ("%.2f KiB per event; beyond the results: %.0f KiB at the end, %.0f KiB at worst")
      :format(per_event, extra, worst)
    assert.is_true(extra < 1024, why)
    assert.is_true(worst < 1024, why)
    results, errs = nil, nil -- luacheck: ignore
    -- Dropping the results gives the memory back.
    local left = heap() - base
    assert.is_true(left < 256, ("%.0f KiB left"):format(left))
    c:close()
  end)
end)
