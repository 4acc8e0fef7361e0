-- One client reuses one connection: the sandbox counts the TCP connections it accepted.
local helper = require("spec.helper")

describe("keep-alive #memory", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  before_each(function()
    -- Connections of earlier tests' clients are gone before counting starts.
    assert(helper.wait_idle(sb, 5))
    assert(sb:reset_stats())
  end)

  it("100 calls on one client open exactly one connection", function()
    local c = helper.client(sb)
    for _ = 1, 100 do assert(c:list_webhooks{ limit = 5 }) end
    local s = assert(sb:stats())
    assert.are.equal(100, s.requests)
    assert.are.equal(1, s.connections)
    assert.are.equal(1, s.peak_connections)
    c:close()
  end)

  it("GET and PUT share the connection, also across error answers (404, 422, 401)", function()
    local setup = helper.client(sb)
    local ids = {}
    for i = 1, 5 do
      ids[i] = assert(setup:create_webhook{ topic = "order.created", target_url = "https://e.com/" .. i }).id
    end
    setup:close()
    assert(sb:reset_stats())
    local c = helper.client(sb)
    local n = 0
    for i, id in ipairs(ids) do
      assert(c:get_webhook(id))
      assert(c:update_webhook(id, { topic = "user.signup", target_url = "https://e.com/u" .. i }))
      local _, err = c:get_webhook(id .. "0")
      assert.are.equal(404, err.status)
      _, err = c:update_webhook(id, { topic = "bad", target_url = "https://e.com/" })
      assert.are.equal(422, err.status)
      assert(c:get_event("20180126172320940835610"))
      assert(c:list_webhooks{ limit = 2 })
      n = n + 6
    end
    assert(sb:fault{ path = "/api/v2/webhooks", status = 401, body = '{"error":"Authentication Error"}' })
    local _, err = c:list_webhooks()
    assert.are.equal(401, err.status)
    assert(c:list_webhooks())
    n = n + 2
    local s = assert(sb:stats())
    assert.are.equal(n, s.requests)
    assert.are.equal(1, s.connections)
    c:close()
  end)

  -- POST and DELETE go on a connection of their own (so that libcurl can never send them
  -- twice: CURLOPT_FRESH_CONNECT); the GET after each reuses one; the connections a client
  -- keeps stay bounded however many it makes.
  it("POST and DELETE each get their own connection, and the open ones stay bounded", function()
    local c = helper.client(sb)
    for i = 1, 30 do
      local w = assert(c:create_webhook{ topic = "order.created", target_url = "https://e.com/" .. i })
      assert(c:get_webhook(w.id))
      assert.are.equal(true, c:delete_webhook(w.id))
    end
    local s = assert(sb:stats())
    assert.are.equal(90, s.requests)
    assert.are.equal(60, s.connections) -- one per POST and per DELETE, none for a GET
    -- libcurl keeps a few open (the server sees closes a little late).
    assert.truthy(s.peak_connections <= 10, "peak " .. s.peak_connections)
    assert.is_true(helper.wait_until(function() return assert(sb:stats()).active_connections <= 6 end, 5))
    c:close()
    assert.is_true(helper.wait_until(function() return assert(sb:stats()).active_connections == 0 end, 5))
  end)

  it("two clients use two connections", function()
    local a, b = helper.client(sb), helper.client(sb)
    for _ = 1, 10 do
      assert(a:list_webhooks())
      assert(b:list_webhooks())
    end
    local s = assert(sb:stats())
    assert.are.equal(20, s.requests)
    assert.are.equal(2, s.connections)
    a:close()
    b:close()
  end)
end)
