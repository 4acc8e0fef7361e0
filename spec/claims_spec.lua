-- Claims (API.md part two): a copy of a delivery that finds its id still running is answered
-- 503 with Retry-After, never 200 duplicate; a claim whose holder died expires with its lease.
-- The two races, in this process (two router:handle calls as coroutines: a handler that yields
-- is "still running") and through thinkific.listen over HTTP, for the in-memory store and a
-- user's table store; then the store contract (spec/store_contract.lua) against both.
local socket = require("socket")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")
local lru = require("thinkific.lru")
local peer = require("spec.http_peer")
local contract = require("spec.store_contract")

local gettime, sleep = socket.gettime, socket.sleep

local SECRET = "claims-secret"
local LEASE = 0.2 -- seconds; Retry-After says 1 (rounded up)
local ID = "20240126172320940835611"
local BODY = assert(thinkific.encode{ id = ID, resource = "order", action = "created",
  tenant_id = "3", created_at = "2024-01-26T17:23:20.940Z", payload = { id = 1 } })
local HEADERS = { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(BODY, SECRET),
  ["X-Thinkific-Topic"] = "order.created" }
local IN_PROGRESS, OK = '{"error":"in progress"}', '{"status":"ok"}'

-- A user's store: a plain table with an expiry per key, answering as a raw ngx.shared.DICT does
-- (add: true | false, "exists"; set: true; get: value | nil; delete: nothing at all).
local function table_store()
  local values, expires = {}, {}
  local store = {}
  local function live(key)
    local at = expires[key]
    if at and gettime() >= at then values[key], expires[key] = nil, nil end
    return values[key] ~= nil
  end
  local function put(key, value, ttl)
    values[key] = value
    expires[key] = (ttl and ttl > 0) and gettime() + ttl or nil
  end
  function store.add(_, key, value, ttl)
    if live(key) then return false, "exists" end
    put(key, value, ttl)
    return true
  end
  function store.set(_, key, value, ttl)
    put(key, value, ttl)
    return true
  end
  function store.get(_, key)
    if live(key) then return values[key] end
    return nil
  end
  function store.delete(_, key)
    values[key], expires[key] = nil, nil
  end
  return store
end

local STORES = {
  { "the in-memory store (dedupe = N)", function() return 100 end },
  { "a user's table store", table_store },
}

-- A router whose order.created handler is slow the first time (it calls first(), which
-- yields or waits) and succeeds afterwards; counts attempts and successes.
local function slow_router(dedupe)
  local router = thinkific.router{ secret = SECRET, dedupe = dedupe, lease = LEASE }
  local runs = { attempts = 0, succeeded = 0 }
  router:on("order.created", function()
    runs.attempts = runs.attempts + 1
    if runs.attempts == 1 then
      runs.first()
      error("the first attempt failed late")
    end
    runs.succeeded = runs.succeeded + 1
  end)
  return router, runs
end

for _, kind in ipairs(STORES) do
  local name, make = kind[1], kind[2]

  describe("claims with " .. name, function()
    it("a copy that arrives while the first attempt runs gets 503 with Retry-After; once the "
      .. "first has failed (500), a later copy runs the handlers", function()
      local router, runs = slow_router(make())
      runs.first = function() coroutine.yield("running") end
      local first = coroutine.wrap(function() return router:handle(BODY, HEADERS) end)
      assert.are.equal("running", first())

      local status, body, event, headers = router:handle(BODY, HEADERS)
      assert.are.equal(503, status)
      assert.are.equal(IN_PROGRESS, body)
      assert.are.equal(ID, event.id)
      assert.are.same({ ["Retry-After"] = "1" }, headers)

      assert.are.equal(500, first()) -- the first attempt ends: its handler failed
      status, body = router:handle(BODY, HEADERS)
      assert.are.equal(200, status)
      assert.are.equal(OK, body)
      assert.are.equal(2, runs.attempts) -- the second time successfully
      assert.are.equal(1, runs.succeeded)
      -- Done: a further copy is a duplicate, and no handler runs again.
      status, body = router:handle(BODY, HEADERS)
      assert.are.equal(200, status)
      assert.are.equal('{"status":"duplicate"}', body)
      assert.are.equal(2, runs.attempts)
    end)

    it("a handler that never returns: its claim expires with the lease, then a copy runs",
      function()
        local router, runs = slow_router(make())
        runs.first = function() coroutine.yield("running") end
        -- Resumed never: the holder of the claim is as good as dead.
        local first = coroutine.wrap(function() return router:handle(BODY, HEADERS) end)
        assert.are.equal("running", first())
        assert.are.equal(503, (router:handle(BODY, HEADERS)))
        sleep(LEASE + 0.15)
        local status, body = router:handle(BODY, HEADERS)
        assert.are.equal(200, status)
        assert.are.equal(OK, body)
        assert.are.equal(1, runs.succeeded)
        assert.are.equal(2, runs.attempts)
      end)
  end)

  describe("claims through thinkific.listen over HTTP, with " .. name, function()
    local server, runs

    before_each(function()
      local router
      router, runs = slow_router(make())
      server = assert(listen.serve{ router = router, port = 0, log = false })
      -- The first attempt waits on the server's own loop, which serves the copies meanwhile.
      runs.first = function() server.httpd.loop:sleep(0.3) end
    end)

    after_each(function()
      if server then server:close() end
    end)

    local function post()
      return ("POST /hooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        .. "X-Thinkific-Topic: order.created\r\nX-Thinkific-Hmac-Sha256: %s\r\n"
        .. "Content-Length: %d\r\n\r\n%s"):format(HEADERS["X-Thinkific-Hmac-Sha256"], #BODY, BODY)
    end

    it("a copy meanwhile gets 503 with Retry-After: 1; the first gets 500; a later copy 200",
      function()
        local c = peer.connect(server)
        c:send(post())
        assert.is_true(peer.serve_until(server, function() return runs.attempts == 1 end))
        local copy = peer.exchange(server, post())
        assert.are.equal(503, copy.status)
        assert.are.equal("1", copy.headers["retry-after"])
        assert.are.equal(IN_PROGRESS, copy.body)
        assert.are.equal(500, c:response().status)
        c:close()
        local later = peer.exchange(server, post())
        assert.are.equal(200, later.status)
        assert.are.equal(OK, later.body)
        assert.are.equal(2, runs.attempts)
        assert.are.equal(1, runs.succeeded)
      end)

    it("a first attempt that outlives its lease: a copy after the lease runs the handlers",
      function()
        runs.first = function() server.httpd.loop:sleep(30) end
        local c = peer.connect(server)
        c:send(post())
        assert.is_true(peer.serve_until(server, function() return runs.attempts == 1 end))
        assert.are.equal(503, peer.exchange(server, post()).status)
        local until_expired = gettime() + LEASE + 0.15
        peer.serve_until(server, function() return gettime() > until_expired end)
        local later = peer.exchange(server, post())
        assert.are.equal(200, later.status)
        assert.are.equal(OK, later.body)
        assert.are.equal(1, runs.succeeded)
        c:close()
      end)
  end)
end

-- A store that answers from a script: script[method] is a function(key, value, ttl) giving
-- the method's results; every call is logged as "method key value ttl".
local function scripted(script)
  local store, log = {}, {}
  for _, method in ipairs({ "add", "set", "get", "delete" }) do
    store[method] = function(_, key, value, ttl)
      log[#log + 1] = table.concat({ method, key, tostring(value), tostring(ttl) }, " ")
      return script[method](key, value, ttl)
    end
  end
  return store, log
end

describe("how the router reads a store's answers", function()
  local function exists() return false, "exists" end
  local function new() return true end
  local function nothing() end
  local function raises() error("the store is down") end

  -- handle with a scripted store (missing methods answer nothing); the answer and how many
  -- times the handler ran.
  local function handle(script, fail)
    for _, m in ipairs({ "add", "set", "get", "delete" }) do script[m] = script[m] or nothing end
    local store, log = scripted(script)
    local router = thinkific.router{ secret = SECRET, dedupe = store, lease = 1.5, keep = 9 }
    local runs = 0
    router:on("*", function()
      runs = runs + 1
      if fail then error("handler failed") end
    end)
    local status, body, _, headers = router:handle(BODY, HEADERS)
    return { status = status, body = body, headers = headers, runs = runs, log = log }
  end

  it("add true: runs the handlers, then set done with keep, or delete on failure", function()
    local r = handle{ add = new, set = new }
    assert.are.same({ 200, OK, 1 }, { r.status, r.body, r.runs })
    assert.are.same({ "add " .. ID .. " running 1.5", "set " .. ID .. " done 9" }, r.log)
    r = handle({ add = new }, true)
    assert.are.same({ 500, '{"error":"a handler failed"}', 1 }, { r.status, r.body, r.runs })
    assert.are.same({ "add " .. ID .. " running 1.5", "delete " .. ID .. " nil nil" }, r.log)
  end)

  it("exists and running: 503 in progress with Retry-After, the lease rounded up", function()
    local r = handle{ add = exists, get = function() return "running" end }
    assert.are.same({ 503, IN_PROGRESS, 0 }, { r.status, r.body, r.runs })
    assert.are.same({ ["Retry-After"] = "2" }, r.headers)
    local router = thinkific.router{ secret = SECRET, dedupe = scripted{ add = exists,
      get = function() return "running" end, set = new, delete = new }, lease = 60 }
    assert.are.same({ ["Retry-After"] = "60" }, select(4, router:handle(BODY, HEADERS)))
  end)

  it("exists and done, true (as 0.1.0 wrote) or any other value: 200 duplicate", function()
    for _, value in ipairs({ "done", true, "something else", 0 }) do
      local r = handle{ add = exists, get = function() return value end }
      assert.are.same({ 200, '{"status":"duplicate"}', 0 }, { r.status, r.body, r.runs })
      assert.is_nil(r.headers)
    end
  end)

  it("exists, then gone: claims once more; gone twice: 503", function()
    local adds = 0
    local r = handle{ add = function()
      adds = adds + 1
      if adds == 1 then return false, "exists" end
      return true
    end, set = new }
    assert.are.same({ 200, OK, 1 }, { r.status, r.body, r.runs })
    assert.are.same({ "add " .. ID .. " running 1.5", "get " .. ID .. " nil nil",
      "add " .. ID .. " running 1.5", "set " .. ID .. " done 9" }, r.log)
    r = handle{ add = exists }
    assert.are.same({ 503, 0, 4 }, { r.status, r.runs, #r.log })
  end)

  it("a store failure anywhere answers 500: add or get saying nil, err or raising", function()
    local failures = {
      { add = function() return nil, "no memory" end },
      { add = function() return false, "no memory" end },
      { add = nothing }, -- neither true nor "exists"
      { add = raises },
      { add = exists, get = function() return nil, "timeout" end },
      { add = exists, get = raises },
    }
    for i, script in ipairs(failures) do
      local r = handle(script)
      assert.are.same({ 500, '{"error":"dedupe store failed"}', 0 }, { r.status, r.body, r.runs },
        "script " .. i)
    end
  end)

  it("a set that fails after the handlers succeeded answers 500 (they ran; they may run again)",
    function()
      for _, set in ipairs({ function() return nil, "no memory" end, function() return false end,
                             raises }) do
        local r = handle{ add = new, set = set }
        assert.are.same({ 500, '{"error":"dedupe store failed"}', 1 }, { r.status, r.body, r.runs })
      end
      -- A set that returns nothing has not failed.
      assert.are.equal(200, handle{ add = new, set = nothing }.status)
    end)

  it("a failed delete after a failed handler still answers 500; nothing returned is success",
    function()
      for _, delete in ipairs({ nothing, new, function() return nil, "timeout" end, raises }) do
        local r = handle({ add = new, delete = delete }, true)
        assert.are.same({ 500, '{"error":"a handler failed"}', 1 }, { r.status, r.body, r.runs })
      end
    end)
end)

describe("the in-memory store (dedupe = N)", function()
  it("keeps at most N ids, pushing out the one written least recently", function()
    local store = lru.new(2)
    assert.is_true(store:add("a", "running", 0))
    assert.is_true(store:add("b", "running", 0))
    assert.is_true(store:set("a", "done", 0)) -- a is now the newest
    assert.is_true(store:add("c", "running", 0))
    assert.is_nil(store:get("b"))
    assert.are.equal("done", store:get("a"))
    assert.are.equal("running", store:get("c"))
    assert.is_true(store:delete("a"))
    assert.is_true(store:add("d", "running", 0))
    assert.are.equal("running", store:get("c")) -- the deleted id left room: nothing pushed out
  end)

  it("a running claim expires after the lease, a done one after keep", function()
    local router = thinkific.router{ secret = SECRET, dedupe = 10, lease = 0.2, keep = 0.3 }
    local runs = 0
    router:on("*", function() runs = runs + 1 end)
    assert.are.equal(200, (router:handle(BODY, HEADERS)))
    assert.are.equal('{"status":"duplicate"}', select(2, router:handle(BODY, HEADERS)))
    sleep(0.45)
    assert.are.equal('{"status":"ok"}', select(2, router:handle(BODY, HEADERS)))
    assert.are.equal(2, runs)
  end)
end)

describe("the store contract", function()
  local env = { sleep = sleep }
  for _, kind in ipairs({ { "the in-memory store", function() return lru.new(100) end },
                          { "a user's table store", table_store } }) do
    for i, case in ipairs(contract.cases) do
      it(kind[1] .. ": " .. case[1], function()
        case[2](kind[2](), "case:" .. i, env)
      end)
    end
  end
end)
