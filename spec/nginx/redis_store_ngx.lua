-- thinkific.ngx.redis_store in real nginx (one worker) against a real, password-protected
-- redis-server: the store contract (spec/store_contract.lua), what lands in Redis (prefix, JSON
-- values, PX), AUTH and SELECT with a pool per (host, port, db, password), the argument checks;
-- and through the router: a wrong or missing password, an unreachable Redis and a frozen one
-- (SIGSTOP) each answer 500 within timeout + 1 s without blocking the worker, and error.log
-- says what failed, never the password. The two-host cases: spec/nginx/redis_hosts_ngx.lua.
local H = require("spec.nginx.harness")
local helper = require("spec.helper")
local thinkific = require("thinkific")

local SECRET = "redis-store-secret"
local PASSWORD = "s3cret-redis-pass-7781"
local WRONG = "not-the-password-4410"
local TIMEOUT = 1
local LEASE, KEEP = 2, 600

-- The stores of the scenarios and the routers: the right password unless told otherwise
-- (password = false: none).
local STORES = [[
local tngx = require("thinkific.ngx")
return function(extra)
  local o = { host = "127.0.0.1", port = ${redis_port}, password = "${password}",
    timeout = ${timeout} }
  for k, v in pairs(extra or {}) do
    if v == false then o[k] = nil else o[k] = v end
  end
  return tngx.redis_store(o)
end
]]

-- One router per store option set; STORE is replaced by redis_store's options.
local HOOKS = [[
local thinkific = require("thinkific")
local counts = ngx.shared.counts
local router = thinkific.router{ secret = "${secret}", lease = ${lease}, keep = ${keep},
  dedupe = require("stores")(STORE) }
router:on("order.created", function(event)
  counts:incr("attempts:" .. event.id, 1, 0)
  if event.payload.wait then ngx.sleep(event.payload.wait) end
end)
return router
]]

local ROUTERS = {
  good = "{}",
  wrong = '{ password = "' .. WRONG .. '" }',
  none = "{ password = false }",
  closed = "{ port = ${closed_port} }",
}

-- Run inside nginx by /scenario?name=...; each returns a table, sent back as JSON.
local SCENARIOS = [[
local store = require("stores")
local S = {}

function S.contract()
  return require("store_contract").run(store{ prefix = "contract:" }, { sleep = ngx.sleep },
    tostring(ngx.now()))
end

-- What each call stores: read back with the harness's own client.
function S.writes()
  local s = store{ prefix = "writes:" }
  assert(s:add("added", "running", 1.5) == true)
  assert(s:set("set", "done", 0.0001))
  assert(s:set("kept", "done"))
  assert(s:add("plain", nil, 0) == true)
  return { raw = s:get("raw") }
end

-- A connection authenticated by one store never serves another; db 1 is not db 0.
function S.pools()
  local good = store{ prefix = "pools:" }
  assert(good:set("k", "in db 0"))
  local out = {}
  local value, err = store{ prefix = "pools:", password = "${wrong}" }:get("k")
  out.wrong = { value = value or "nil", err = err }
  value, err = store{ prefix = "pools:", password = false }:get("k")
  out.none = { value = value or "nil", err = err }
  local db1 = store{ prefix = "pools:", db = 1 }
  assert(db1:set("k", "in db 1"))
  out.db1 = db1:get("k")
  out.db0 = good:get("k")
  out.tostring = tostring(good)
  return out
end

-- The message f raises ("no error" when it does not).
local function raises(f)
  local ok, err = pcall(f)
  return ok and "no error" or tostring(err)
end

function S.args()
  local redis_store = require("thinkific.ngx").redis_store
  local out = {}
  for _, opts in ipairs({ { host = 5 }, { host = "" }, { port = "6379" }, { port = 0 },
      { port = 70000 }, { port = 1.5 }, { password = "" }, { password = 5 }, { db = -1 },
      { db = 1.5 }, { prefix = 5 }, { timeout = 0 }, { timeout = "1" }, { timeout = -1 },
      { timeout = 1 / 0 }, { pool_size = 0 }, { keepalive = -1 }, { hots = "x" } }) do
    local k, v = next(opts)
    out[#out + 1] = { k .. "=" .. tostring(v), raises(function() redis_store(opts) end) }
  end
  out[#out + 1] = { "opts=string", raises(function() redis_store("x") end) }
  local s = store{ prefix = "args:" }
  out[#out + 1] = { "add key", raises(function() s:add({}, "v") end) }
  out[#out + 1] = { "add value", raises(function() s:add("k", {}) end) }
  out[#out + 1] = { "set ttl", raises(function() s:set("k", "v", -1) end) }
  out[#out + 1] = { "get key", raises(function() s:get(nil) end) }
  return out
end

-- OpenResty has resty.redis instead of nginx.redis; with neither, a clear error.
function S.openresty()
  local debian = require("nginx.redis")
  package.loaded["nginx.redis"] = nil
  package.preload["nginx.redis"] = function() error("module 'nginx.redis' not found") end
  package.loaded["resty.redis"] = debian
  local ok, s = pcall(store, { prefix = "openresty:" })
  local out = { made = ok, uses = ok and s.redis == debian }
  if ok then
    assert(s:set("k", "v"))
    out.value = s:get("k")
  end
  package.loaded["resty.redis"] = nil
  out.neither = select(2, pcall(store, {}))
  package.preload["nginx.redis"] = nil
  package.loaded["nginx.redis"] = debian
  return out
end

return S
]]

describe("thinkific.ngx.redis_store in nginx against redis-server", function()
  local redis, nginx, serial = nil, nil, 0

  -- A signed delivery of a new event id to path: the request and the id.
  local function delivery(path, payload)
    serial = serial + 1
    local id = ("6000000000000000000%04d"):format(serial)
    local body, headers = H.order_created(SECRET, id, payload)
    return { method = "POST", path = path, body = body, headers = headers }, id
  end

  local function scenario(name)
    local status, _, body = assert(nginx:request{ path = "/scenario?name=" .. name })
    assert.are.equal(200, status, body)
    return assert(thinkific.decode(body))
  end

  -- The error.log lines of level error that hold text.
  local function errors_with(text)
    local found = {}
    for _, line in ipairs(nginx:lines("error")) do
      if line:find(text, 1, true) then found[#found + 1] = line end
    end
    return found
  end

  lazy_setup(function()
    redis = H.redis{ password = PASSWORD }
    local files = {
      ["lua/store_contract.lua"] = H.read(H.ROOT .. "/spec/store_contract.lua"),
      ["lua/stores.lua"] = STORES,
      ["lua/scenarios.lua"] = SCENARIOS,
    }
    local locations = {}
    for name, opts in pairs(ROUTERS) do
      files["lua/app/" .. name .. ".lua"] = HOOKS:gsub("STORE", opts)
      locations[#locations + 1] = ("    location = /hooks/%s {\n      content_by_lua_block "
        .. "{ require(\"thinkific.ngx\").serve(require(\"app.%s\")) }\n    }\n"):format(name, name)
    end
    nginx = H.start{
      workers = 1,
      files = files,
      vars = { secret = SECRET, password = PASSWORD, wrong = WRONG, redis_port = redis.port,
        closed_port = helper.closed_port(), timeout = TIMEOUT, lease = LEASE, keep = KEEP },
      http = H.COUNTS_HTTP,
      server = table.concat(locations) .. H.COUNTS_SERVER .. [[
    location = /scenario {
      content_by_lua_block {
        local out = require("scenarios")[ngx.var.arg_name]()
        ngx.print(require("thinkific").encode(out))
      }
    }
    location = /ping { return 200 "pong"; }
    # Cosockets are not allowed in set_by_lua; they are in a timer.
    location = /phases {
      set_by_lua_block $in_set {
        local s = require("stores"){ prefix = "phases:" }
        local ok, err = pcall(s.get, s, "k")
        return ok and "no error" or tostring(err)
      }
      content_by_lua_block {
        local s = require("stores"){ prefix = "phases:" }
        local done
        assert(ngx.timer.at(0, function() done = s:set("timer", "done") end))
        for _ = 1, 200 do
          if done ~= nil then break end
          ngx.sleep(0.01)
        end
        ngx.print(require("thinkific").encode({ in_set = ngx.var.in_set, timer = done }))
      }
    }
]],
    }
  end)

  lazy_teardown(function()
    if nginx then nginx:remove() end
    if redis then redis:remove() end
  end)

  before_each(function()
    nginx:reset_log()
  end)

  it("passes the store contract inside nginx", function()
    local results = scenario("contract")
    assert.are.equal(#require("spec.store_contract").cases, #results)
    for _, r in ipairs(results) do
      assert.is_nil(r.error, r.name .. ": " .. tostring(r.error))
    end
  end)

  it("stores JSON under the prefix: SET NX with PX only for a ttl, rounded up; reads a text "
    .. "that is not JSON as itself", function()
    assert.are.equal("OK", redis:call("SET", "writes:raw", "not JSON"))
    assert.are.same({ raw = "not JSON" }, scenario("writes"))
    assert.are.equal('"running"', redis:call("GET", "writes:added"))
    local pttl = redis:call("PTTL", "writes:added")
    assert.is_true(pttl > 1000 and pttl <= 1500, tostring(pttl))
    assert.are.equal("true", redis:call("GET", "writes:plain"))
    assert.are.equal(-1, redis:call("PTTL", "writes:plain"))        -- ttl 0: no expiry
    assert.are.equal('"done"', redis:call("GET", "writes:kept"))
    assert.are.equal(-1, redis:call("PTTL", "writes:kept"))         -- no ttl: no expiry
    H.sleep(0.01)
    assert.is_nil(redis:call("GET", "writes:set"))                  -- 0.0001 s: PX 1, gone
  end)

  it("authenticates, selects the db, and keeps a pool per (host, port, db, password)", function()
    local out = scenario("pools")
    -- A store with a wrong or no password never borrows the authenticated connection.
    assert.are.equal("nil", out.wrong.value)
    assert.truthy(out.wrong.err:find("redis AUTH failed on 127.0.0.1:" .. redis.port
      .. ": WRONGPASS", 1, true), out.wrong.err)
    assert.are.equal("nil", out.none.value)
    assert.truthy(out.none.err:find("redis GET pools:k failed on 127.0.0.1:" .. redis.port
      .. ": NOAUTH", 1, true), out.none.err)
    assert.are.equal("in db 1", out.db1)
    assert.are.equal("in db 0", out.db0)
    assert.are.equal('"in db 0"', redis:call("GET", "pools:k"))
    assert.are.equal("thinkific.ngx.redis_store(127.0.0.1:" .. redis.port
      .. ', db 0, prefix "pools:")', out.tostring)
    assert.are.equal(1, #errors_with("WRONGPASS"))
    assert.are.equal(1, #errors_with("NOAUTH"))
  end)

  it("raises for bad options and arguments, at the caller's line", function()
    local want = {
      ["host=5"] = "host must be a non-empty string",
      ["host="] = "host must be a non-empty string",
      ["port=6379"] = "port must be a whole number from 1 to 65535",
      ["port=0"] = "port must be a whole number from 1 to 65535",
      ["port=70000"] = "port must be a whole number from 1 to 65535",
      ["port=1.5"] = "port must be a whole number from 1 to 65535",
      ["password="] = "password must be a non-empty string",
      ["password=5"] = "password must be a non-empty string",
      ["db=-1"] = "db must be a whole number >= 0",
      ["db=1.5"] = "db must be a whole number >= 0",
      ["prefix=5"] = "prefix must be a string",
      ["timeout=0"] = "timeout must be a number of seconds > 0",
      ["timeout=1"] = "timeout must be a number of seconds > 0", -- the string "1"
      ["timeout=-1"] = "timeout must be a number of seconds > 0",
      ["timeout=inf"] = "timeout must be a number of seconds > 0",
      ["pool_size=0"] = "pool_size must be a whole number >= 1",
      ["keepalive=-1"] = "keepalive must be a number of seconds >= 0",
      ["hots=x"] = "unknown option 'hots'",
      ["opts=string"] = "table of options expected, got string",
      ["add key"] = "bad argument #1 to 'add' (key must be a string or a number, got table)",
      ["add value"] = "bad argument #2 to 'add' (value must be a string, a number or a boolean",
      ["set ttl"] = "bad argument #3 to 'set' (ttl must be a number of seconds >= 0",
      ["get key"] = "bad argument #1 to 'get' (key must be a string or a number, got nil)",
    }
    local results = scenario("args")
    assert.are.equal(23, #results)
    for _, r in ipairs(results) do
      local case, message = r[1], r[2]
      assert.truthy(want[case], case)
      assert.truthy(message:find(want[case], 1, true), case .. ": " .. message)
      if not case:find(" ") then
        assert.truthy(message:find("bad argument #1 to 'redis_store'", 1, true), message)
      end
      -- Raised at the caller's line (scenarios.lua), not inside lua-thinkific.
      assert.truthy(message:find("scenarios.lua:%d+:"), message)
    end
  end)

  it("uses OpenResty's resty.redis when there is no nginx.redis; neither: a clear error",
    function()
      local out = scenario("openresty")
      assert.is_true(out.made)
      assert.is_true(out.uses)
      assert.are.equal("v", out.value)
      assert.truthy(out.neither:find("needs lua-resty-redis: on Debian `apt install "
        .. "lua-nginx-redis`", 1, true), out.neither)
    end)

  it("works in a timer; raises in set_by_lua, where nginx allows no cosocket", function()
    local _, _, body = assert(nginx:request{ path = "/phases" })
    local out = assert(thinkific.decode(body))
    assert.is_true(out.timer)
    assert.are.equal('"done"', redis:call("GET", "phases:timer"))
    assert.truthy(out.in_set:find("API disabled in the context of set_by_lua", 1, true), out.in_set)
  end)

  it("a delivery through the router: claimed running for the lease, then done for keep",
    function()
      local req, id = delivery("/hooks/good", { wait = 0.5 })
      local pending = nginx:send(req)
      assert.is_true(helper.wait_until(function()
        return redis:call("GET", "thinkific:" .. id) ~= nil
      end, 5))
      assert.are.equal('"running"', redis:call("GET", "thinkific:" .. id))
      assert.is_true(redis:call("PTTL", "thinkific:" .. id) <= LEASE * 1000)
      local status, _, body = pending.finish()
      assert.are.equal(200, status, body)
      assert.are.equal('{"status":"ok"}', body)
      assert.are.equal('"done"', redis:call("GET", "thinkific:" .. id))
      local pttl = redis:call("PTTL", "thinkific:" .. id)
      assert.is_true(pttl > (KEEP - 5) * 1000 and pttl <= KEEP * 1000, tostring(pttl))
      local _, _, again = assert(nginx:request(req))
      assert.are.equal('{"status":"duplicate"}', again)
      assert.are.equal(1, nginx:counts()["attempts:" .. id])
    end)

  it("a wrong password or none: 500 at once, error.log says AUTH or NOAUTH, no handler ran",
    function()
      for path, says in pairs({ ["/hooks/wrong"] = "redis AUTH failed on 127.0.0.1:"
          .. redis.port .. ": WRONGPASS", ["/hooks/none"] = "NOAUTH Authentication required" }) do
        local req, id = delivery(path)
        local started = H.now()
        local status, _, body = assert(nginx:request(req))
        assert.are.equal(500, status)
        assert.are.equal('{"error":"dedupe store failed"}', body)
        assert.is_true(H.now() - started < TIMEOUT, "took " .. (H.now() - started) .. " s")
        assert.is_nil(nginx:counts()["attempts:" .. id])
        assert.are.equal(1, #errors_with(says), path .. ": " .. nginx:log())
      end
    end)

  it("an unreachable Redis: 500 at once, and error.log says connect failed", function()
    local req = delivery("/hooks/closed")
    local started = H.now()
    local status = assert(nginx:request(req))
    assert.are.equal(500, status)
    assert.is_true(H.now() - started < TIMEOUT)
    assert.are.equal(1, #errors_with("redis connect failed on 127.0.0.1:"), nginx:log())
    assert.are.equal(1, #errors_with("connection refused"), nginx:log())
  end)

  it("a frozen Redis (SIGSTOP): 500 within timeout + 1 s, the worker serving meanwhile; "
    .. "thawed, Redis carries out the late claim, which holds until its lease ends", function()
    local req, id = delivery("/hooks/good")
    redis:freeze()
    local ok, err = pcall(function()
      local started = H.now()
      local pending = nginx:send(req)
      -- The one worker answers other requests while the delivery waits on Redis.
      H.sleep(0.1)
      local before = H.now()
      assert.are.equal(200, (assert(nginx:request({ path = "/ping" }, 1))))
      assert.is_true(H.now() - before < 0.5, "the worker was blocked")
      local status, _, body = pending.finish()
      local took = H.now() - started
      assert.are.equal(500, status, body)
      assert.is_true(took >= TIMEOUT - 0.05 and took < TIMEOUT + 1, "took " .. took .. " s")
    end)
    redis:thaw()
    local thawed = H.now()
    assert(ok, err)
    assert.are.equal(1, #errors_with("redis SET thinkific:" .. id .. " failed on 127.0.0.1:"
      .. redis.port .. ": timeout"), nginx:log())
    -- Redis works through what it received while frozen: the SET NX that timed out claims the
    -- id after all, for the lease. Copies meanwhile are told to come back; then one is handled.
    assert.are.equal('"running"', redis:call("GET", "thinkific:" .. id))
    local status, headers = assert(nginx:request(req))
    assert.are.equal(503, status)
    assert.are.equal(tostring(LEASE), headers["retry-after"])
    H.sleep(math.max(0, thawed + LEASE + 0.2 - H.now()))
    local later, _, body = assert(nginx:request(req))
    assert.are.equal(200, later, body)
    assert.are.equal(1, nginx:counts()["attempts:" .. id])
  end)

  it("never writes a password to error.log", function()
    -- Every failure of this file once more, with the log kept this time.
    for _, path in ipairs({ "/hooks/wrong", "/hooks/none", "/hooks/closed" }) do
      assert.are.equal(500, (assert(nginx:request(delivery(path)))))
    end
    scenario("pools")
    local log = nginx:log()
    -- Ours (one per failure), and ngx_lua's own line for the refused connection.
    assert.are.equal(5, #errors_with("thinkific.ngx.redis_store: redis "), log)
    assert.are.equal(6, #nginx:lines("error"), log)
    assert.is_nil(log:find(PASSWORD, 1, true))
    assert.is_nil(log:find(WRONG, 1, true))
  end)

  -- The example's commented Redis option, switched on as its comment says: the redis_store
  -- lines uncommented in place of the shared-dict store, the password from the environment.
  describe("examples/openresty with its Redis option", function()
    local example

    local function with_redis(text)
      local n1, n2
      text, n1 = text:gsub('\n  dedupe = tngx%.store%("thinkific_dedupe"%),\n', "\n")
      text, n2 = text:gsub("\n  %-%- (dedupe = tngx%.redis_store{[^\n]*)\n  %-%-   ([^\n]*)",
        "\n  %1\n    %2")
      assert(n1 == 1 and n2 == 1, "the example's store lines have changed")
      text, n1 = text:gsub('host = "10%.0%.0%.5", port = 6379', 'host = "127.0.0.1", port = '
        .. redis.port)
      assert(n1 == 1, "the example's Redis address has changed")
      return text
    end

    lazy_setup(function()
      local hooks = with_redis(H.read(H.ROOT .. "/examples/openresty/lua/app/hooks.lua"))
      example = H.start{
        main = "env THINKIFIC_WEBHOOK_SECRET;\nenv THINKIFIC_REDIS_PASSWORD;",
        env = { THINKIFIC_WEBHOOK_SECRET = SECRET, THINKIFIC_REDIS_PASSWORD = PASSWORD },
        files = { ["lua/app/hooks.lua"] = hooks },
        server = [[
    location = /thinkific/webhooks {
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks")) }
    }
]],
      }
    end)

    lazy_teardown(function()
      if example then example:remove() end
    end)

    it("claims in Redis: handled once, then a duplicate", function()
      local req, id = delivery("/thinkific/webhooks")
      local status, _, body = assert(example:request(req))
      assert.are.equal(200, status, body .. example:log())
      assert.are.equal('"done"', redis:call("GET", "thinkific:" .. id))
      local _, _, again = assert(example:request(req))
      assert.are.equal('{"status":"duplicate"}', again)
      assert.are.same({}, example:lines("error"))
    end)
  end)
end)
