-- 600 webhooks: the iterator and manual walks in both pagination styles visit each exactly
-- once; the iterator follows a string next as next= and a number as page=; its errors.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local TOTAL = 600

-- The query of a URL as a table (values percent-decoded).
local function query_of(url)
  local q = {}
  local s = url:match("%?(.*)$") or ""
  for k, v in s:gmatch("([^&=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

describe("pagination", function()
  local sb, c, all
  helper.with_sandbox(function(s) sb = s end, { reset = false })

  lazy_setup(function()
    c = helper.client(sb)
    all = {}
    for i = 1, TOTAL do
      all[i] = assert(c:create_webhook{ topic = "order.created",
        target_url = "https://example.com/hooks/" .. i }).id
    end
  end)

  lazy_teardown(function()
    if c then c:close() end
  end)

  after_each(function()
    assert(sb:clear_faults())
  end)

  -- Checks that ids is exactly `all`, in order, each once.
  local function assert_all_once(ids)
    local seen, dup = {}, nil
    for _, id in ipairs(ids) do
      if seen[id] then dup = id end
      seen[id] = true
    end
    assert.is_nil(dup, "visited twice: " .. tostring(dup))
    assert.are.equal(TOTAL, #ids)
    assert.are.same(all, ids)
  end

  -- Runs a webhooks() iterator to its end: the ids it gave, each step checked to be a webhook
  -- (label: put before the error in the failure message).
  local function walk(iter, label)
    local ids = {}
    for w, err in iter do
      assert.is_truthy(w, (label and label .. ": " or "") .. tostring(err))
      ids[#ids + 1] = w.id
    end
    return ids
  end

  it("webhooks{ limit = 250 } visits every webhook once, in 3 requests", function()
    assert(sb:reset_stats())
    assert_all_once(walk(c:webhooks{ limit = 250 }))
    assert.are.equal(3, assert(sb:stats()).requests)
  end)

  it("webhooks() without a limit visits every webhook once, with the server's page size", function()
    assert(sb:reset_stats())
    assert_all_once(walk(c:webhooks()))
    assert.are.equal(math.floor(TOTAL / 25), assert(sb:stats()).requests)
  end)

  it("a manual walk with next= cursors visits every webhook once", function()
    local ids, pages, cursor = {}, 0, nil
    repeat
      local page = assert(c:list_webhooks{ limit = 250, next = cursor })
      pages = pages + 1
      assert.is_table(page.meta.page)
      for _, w in ipairs(page.items) do ids[#ids + 1] = w.id end
      cursor = page.next
      if cursor ~= nil then assert.are.equal("string", type(cursor)) end
    until cursor == nil or pages > 10
    assert.are.equal(3, pages)
    assert_all_once(ids)
  end)

  it("a manual walk with page= visits every webhook once", function()
    local ids, pages, n = {}, 0, 1
    repeat
      local page = assert(c:list_webhooks{ limit = 250, page = n })
      pages = pages + 1
      assert.is_table(page.meta.pagination)
      for _, w in ipairs(page.items) do ids[#ids + 1] = w.id end
      if page.next ~= nil then
        assert.are.equal("integer", helper.number_type(page.next))
        assert.are.equal(n + 1, page.next)
      end
      n = page.next
    until n == nil or pages > 10
    assert.are.equal(3, pages)
    assert_all_once(ids)
  end)

  it("the iterator sends a string next back as next= (seen by a custom transport)", function()
    local log = {}
    local t = helper.client(sb, { transport = helper.socket_transport(log) })
    assert_all_once(walk(t:webhooks{ limit = 250 }))
    assert.are.equal(3, #log)
    local q1, q2, q3 = query_of(log[1].url), query_of(log[2].url), query_of(log[3].url)
    assert.are.same({ limit = "250" }, q1)
    assert.are.same({ limit = "250", next = all[251] }, q2)
    assert.are.same({ limit = "250", next = all[501] }, q3)
  end)

  it("the iterator sends a number next back as page= (page-style answers)", function()
    -- The first answer is page style; from then on the sandbox answers page= requests in
    -- page style, and would refuse page numbers sent as next= cursors.
    local first = assert(c:list_webhooks{ limit = 250, page = 1 })
    local canned = assert(thinkific.encode{ items = first.items, meta = first.meta })
    for _, transport in ipairs{ "libcurl", "socket" } do
      local log = {}
      local t = helper.client(sb, transport == "socket" and
        { transport = helper.socket_transport(log) } or nil)
      assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", status = 200, body = canned })
      assert_all_once(walk(t:webhooks{ limit = 250 }, transport))
      if transport == "socket" then
        assert.are.equal(3, #log)
        assert.are.same({ limit = "250", page = "2" }, query_of(log[2].url))
        assert.are.same({ limit = "250", page = "3" }, query_of(log[3].url))
      end
    end
  end)

  it("follows meta.pagination.next_page given as a numeric string", function()
    local first = assert(c:list_webhooks{ limit = 250, page = 1 })
    local text = assert(thinkific.encode{ items = first.items, meta = first.meta })
    text = text:gsub('"next_page":2', '"next_page":"2"')
    assert.truthy(text:find('"next_page":"2"', 1, true))
    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", status = 200, body = text })
    assert_all_once(walk(c:webhooks{ limit = 250 }))
  end)

  it("an error gives false, err once, then the iterator ends without more requests", function()
    local t = helper.client(sb, { retries = 1 })
    local it = t:webhooks{ limit = 250 }
    local ids = { assert(it()).id } -- page 1 is fetched now
    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", status = 500, count = 2,
      body = '{"error":"boom"}' })
    local failures, last_err = 0, nil
    for _ = 1, TOTAL + 10 do
      local w, err = it()
      if w == nil then break end
      if w == false then
        failures = failures + 1
        last_err = err
      else
        assert.is_nil(err)
        ids[#ids + 1] = w.id
      end
    end
    assert.are.equal(1, failures)
    assert.are.equal(250, #ids)
    assert.are.equal("http", last_err.kind)
    assert.are.equal(500, last_err.status)
    assert.are.equal(2, last_err.attempts)
    assert(sb:reset_stats())
    assert.is_nil(it())
    assert.is_nil(it())
    assert.are.equal(0, assert(sb:stats()).requests)
  end)

  it("a first page that fails gives false, err and nothing else", function()
    local t = helper.client(sb, { retries = 0 })
    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", status = 401,
      body = '{"error":"Authentication Error"}' })
    local results = {}
    for w, err in t:webhooks() do results[#results + 1] = { w, err } end
    assert.are.equal(1, #results)
    assert.are.equal(false, results[1][1])
    assert.are.equal(401, results[1][2].status)
  end)

  it("a server that repeats a cursor ends the walk with an error, not a loop", function()
    local canned = '{"items":[{"id":"1"}],"meta":{"page":{"has_next":true,"next_page":"again"}}}'
    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", status = 200, body = canned, count = 50 })
    local items, failures = 0, 0
    for w in c:webhooks() do
      if w then items = items + 1 else failures = failures + 1 end
      if items + failures > 40 then break end
    end
    assert.are.equal(1, failures)
    assert.truthy(items < 40, "items " .. items)
  end)
end)
