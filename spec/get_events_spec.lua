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

  it("keeps at most `concurrency` transfers in flight", function()
    local ids = record(24)
    assert(helper.wait_until(function() return assert(sb:stats()).active_connections == 0 end, 5))
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
    helper.argerror(0, "get_events", function() c.get_events({ "a" }) end)
    local results, errs = c:get_events{}
    assert.are.same({}, results)
    assert.are.same({}, errs)
    c:close()
    assert.has_error(function() c:get_events{ "a" } end)
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
