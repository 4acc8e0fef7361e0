-- Two nginx hosts ("A" and "B", two workers each) sharing one password-protected redis-server
-- through thinkific.ngx.redis_store, as several hosts behind a load balancer would: copies of a
-- delivery spread over both hosts run its handler once; a copy on B while A's attempt runs is
-- told to come back (503), and runs the handler once A's attempt failed; with Redis stopped
-- every delivery gets 500 at once and error.log says why, and once Redis is back (same port,
-- same data) nothing answered 200 is run again; a claim whose worker was killed expires with
-- its lease. The store's own cases: spec/nginx/redis_store_ngx.lua.
local H = require("spec.nginx.harness")
local helper = require("spec.helper")

local SECRET = "redis-hosts-secret"
local PASSWORD = "hosts-redis-pass-5093"
local LEASE = 1.5 -- seconds: Retry-After says 2 (rounded up)
local TIMEOUT = 0.5
local COPIES = 20
local IN_PROGRESS = '{"error":"in progress"}'

-- The same router on both hosts; ${host} tells them apart. The handler's payload says how it
-- behaves: "slow" (0.3 s), "fail_on_A" (on host A: 0.8 s, then an error), "hang_on_A" (on host
-- A: sleeps until it is killed). Counts are per host, in a shared dict.
local HOOKS = [[
local helper = require("spec.helper")
local thinkific = require("thinkific")
local counts = ngx.shared.counts
local router = thinkific.router{ secret = "${secret}", lease = ${lease},
  dedupe = require("thinkific.ngx").redis_store{ host = "127.0.0.1", port = ${redis_port},
    password = "${password}", timeout = ${timeout} } }
router:on("order.created", function(event)
  local id, mode = event.id, event.payload.mode
  counts:incr("attempts:" .. id, 1, 0)
  if mode == "slow" then
    ngx.sleep(0.3)
  elseif mode == "fail_on_A" and "${host}" == "A" then
    ngx.sleep(0.8)
    error("the attempt on host A failed late")
  elseif mode == "hang_on_A" and "${host}" == "A" then
    counts:set("hanging:" .. id, ngx.worker.pid())
    ngx.sleep(30)
  end
  counts:incr("done:" .. id, 1, 0)
end)
router:on_error(function(err) ngx.log(ngx.WARN, "handler failed: ", err) end)
return router
]]

describe("two nginx hosts sharing Redis (thinkific.ngx.redis_store)", function()
  local redis, hosts, serial = nil, {}, 0
  local expected_errors -- per test: patterns of the error.log lines it causes

  -- A delivery of a new event id ({ body, headers }; mode: how the handler behaves), and the id.
  local function delivery(mode)
    serial = serial + 1
    local id = ("7000000000000000000%04d"):format(serial)
    local body, headers = H.order_created(SECRET, id, { mode = mode })
    return { body = body, headers = headers }, id
  end

  -- The request of a delivery to a host (its port).
  local function to(host, d)
    return { method = "POST", path = "/hooks", port = host.port, body = d.body, headers = d.headers }
  end

  local function post(host, d)
    return assert(host:request(to(host, d)))
  end

  -- A count summed over both hosts.
  local function total(key)
    return (hosts.A:counts()[key] or 0) + (hosts.B:counts()[key] or 0)
  end

  lazy_setup(function()
    redis = H.redis{ password = PASSWORD }
    for _, name in ipairs({ "A", "B" }) do
      hosts[name] = H.start{
        workers = 2,
        reuseport = true,
        vars = { secret = SECRET, lease = LEASE, host = name, redis_port = redis.port,
          password = PASSWORD, timeout = TIMEOUT },
        files = { ["lua/app/hooks.lua"] = HOOKS },
        http = H.COUNTS_HTTP,
        server = [[
    location = /hooks {
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks")) }
    }
]] .. H.COUNTS_SERVER,
      }
    end
  end)

  lazy_teardown(function()
    for _, host in pairs(hosts) do host:remove() end
    if redis then redis:remove() end
  end)

  before_each(function()
    expected_errors = {}
    for _, host in pairs(hosts) do host:reset_log() end
  end)

  -- Neither host logged an error the test did not expect, nor the password.
  after_each(function()
    for name, host in pairs(hosts) do
      local log = host:log()
      assert.is_nil(log:find(PASSWORD, 1, true), "host " .. name .. " logged the password")
      for _, line in ipairs(host:lines("error")) do
        local known = false
        for _, pattern in ipairs(expected_errors) do
          if line:find(pattern) then known = true end
        end
        assert.is_true(known, "host " .. name .. ": " .. line)
      end
    end
  end)

  it("the same delivery sent " .. COPIES .. " times over both hosts at once: the handler "
    .. "runs once", function()
    local d, id = delivery("slow")
    local reqs = {}
    for i = 1, COPIES do reqs[i] = to(i % 2 == 1 and hosts.A or hosts.B, d) end
    local results = hosts.A:parallel(reqs, 10)
    local ok, others = 0, 0
    for i, r in ipairs(results) do
      local status, _, answer = r[1], r[2], r[3]
      assert.is_truthy(status, "copy " .. i .. ": " .. tostring(r[2]))
      if answer == '{"status":"ok"}' then
        ok = ok + 1
      else
        -- Those that came while it ran are told to come back; any after it, duplicates.
        assert.is_truthy((status == 503 and answer == IN_PROGRESS)
          or (status == 200 and answer == '{"status":"duplicate"}'), status .. " " .. answer)
        others = others + 1
      end
    end
    assert.are.equal(1, ok)
    assert.are.equal(COPIES - 1, others)
    assert.are.equal(1, total("attempts:" .. id))
    assert.are.equal(1, total("done:" .. id))
  end)

  it("a slow attempt on host A: a copy on host B gets 503 with Retry-After; A's attempt "
    .. "fails; a later copy on B runs the handler", function()
    local d, id = delivery("fail_on_A")
    local first = hosts.A:send(to(hosts.A, d))
    assert.is_true(helper.wait_until(function()
      return hosts.A:counts()["attempts:" .. id] == 1
    end, 5))
    local status, headers, answer = post(hosts.B, d)
    assert.are.equal(503, status)
    assert.are.equal("2", headers["retry-after"])
    assert.are.equal(IN_PROGRESS, answer)
    assert.are.equal(500, (first.finish()))
    local later, _, later_answer = post(hosts.B, d)
    assert.are.equal(200, later, later_answer)
    assert.are.equal('{"status":"ok"}', later_answer)
    local a, b = hosts.A:counts(), hosts.B:counts()
    assert.are.same({ 1, 0, 1, 1 }, { a["attempts:" .. id], a["done:" .. id] or 0,
      b["attempts:" .. id], b["done:" .. id] })
    local _, _, again = post(hosts.A, d)
    assert.are.equal('{"status":"duplicate"}', again)
  end)

  it("Redis stopped: 500 on both hosts within timeout + 1 s, error.log says why; Redis "
    .. "back: the next copy is handled, and nothing answered 200 runs again", function()
    expected_errors = { "thinkific%.ngx%.redis_store: redis connect failed on 127%.0%.0%.1:"
      .. redis.port .. ": connection refused", "connect%(%) failed %(111: Connection refused%)" }
    local handled = {}
    for i = 1, 4 do
      local d, id = delivery()
      assert.are.equal(200, (post(i % 2 == 1 and hosts.A or hosts.B, d)))
      handled[#handled + 1] = { d = d, id = id }
    end
    redis:stop()
    local d, id = delivery()
    for _, name in ipairs({ "A", "B" }) do
      local started = H.now()
      local status, _, answer = post(hosts[name], d)
      assert.are.equal(500, status)
      assert.are.equal('{"error":"dedupe store failed"}', answer)
      assert.is_true(H.now() - started < TIMEOUT + 1, "took " .. (H.now() - started) .. " s")
      local said = 0
      for _, line in ipairs(hosts[name]:lines("error")) do
        if line:find(expected_errors[1]) then said = said + 1 end
      end
      assert.are.equal(1, said, hosts[name]:log())
    end
    -- A delivery handled before: 500 too (the store cannot say it is done), never 200.
    assert.are.equal(500, (post(hosts.B, handled[1].d)))
    assert.are.equal(0, total("attempts:" .. id))

    local ok, why = redis:start()
    assert(ok, why)
    local status, _, answer = post(hosts.B, d)
    assert.are.equal(200, status, answer)
    assert.are.equal('{"status":"ok"}', answer)
    assert.are.equal(1, total("attempts:" .. id))
    -- What was acknowledged before the stop is still known after it, on either host.
    for i, h in ipairs(handled) do
      local _, _, again = post(i % 2 == 1 and hosts.B or hosts.A, h.d)
      assert.are.equal('{"status":"duplicate"}', again)
      assert.are.equal(1, total("attempts:" .. h.id))
    end
  end)

  it("kill -9 of host A's worker mid-handler: the claim expires with the lease, then a copy "
    .. "on host B is handled", function()
    expected_errors = { "exited on signal 9" }
    local d, id = delivery("hang_on_A")
    local first = hosts.A:send(to(hosts.A, d))
    local claimed_at = H.now()
    local pid
    assert.is_true(helper.wait_until(function()
      pid = hosts.A:counts()["hanging:" .. id]
      return pid ~= nil
    end, 5))
    assert.is_true((os.execute("kill -9 " .. math.floor(pid))))
    assert.is_nil((first.finish())) -- the connection dies with the worker
    local status, headers = post(hosts.B, d)
    assert.are.equal(503, status)
    assert.are.equal("2", headers["retry-after"])
    H.sleep(math.max(0, claimed_at + LEASE + 0.3 - H.now()))
    local later, _, answer = post(hosts.B, d)
    assert.are.equal(200, later, answer)
    assert.are.equal('{"status":"ok"}', answer)
    local b = hosts.B:counts()
    assert.are.same({ 1, 1 }, { b["attempts:" .. id], b["done:" .. id] })
    assert.is_true(helper.wait_until(function()
      return #hosts.A:lines("error") > 0
    end, 5))
  end)
end)
