-- Claims under real nginx with two workers (listen ... reuseport), for thinkific.ngx.store and
-- for a raw ngx.shared.DICT: a copy of a delivery that arrives while a handler sleeps gets 503
-- with Retry-After from either worker, the first attempt's 500 follows, and a later copy runs
-- the handlers; a worker killed with kill -9 mid-handler leaves a claim that expires with its
-- lease, after which a copy is handled. Then the store contract (spec/store_contract.lua) runs
-- inside nginx against both stores.
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local SECRET = "claims-secret"
local LEASE = 1.5 -- seconds: Retry-After says 2 (rounded up)
local IN_PROGRESS = '{"error":"in progress"}'

-- One router per store; DEDUPE is replaced by the store's expression. The handler's first
-- attempt of an event sleeps then fails (mode "fail_slow") or sleeps until it is killed
-- ("hang"); later attempts succeed. Attempts are counted across workers in a shared dict.
local HOOKS = [[
local thinkific = require("thinkific")
local counts = ngx.shared.counts
local router = thinkific.router{ secret = "${secret}", lease = ${lease}, dedupe = DEDUPE }
router:on("order.created", function(event)
  local id, mode = event.id, event.payload.mode
  local n = counts:incr("attempts:" .. id, 1, 0)
  if n == 1 and mode == "fail_slow" then
    ngx.sleep(0.8)
    error("the first attempt failed late")
  elseif n == 1 and mode == "hang" then
    counts:set("hanging:" .. id, ngx.worker.pid())
    ngx.sleep(30)
  end
  counts:incr("done:" .. id, 1, 0)
end)
router:on_error(function(err) ngx.log(ngx.WARN, "handler failed: ", err) end)
return router
]]

local STORES = {
  { name = "thinkific.ngx.store", path = "/hooks/store",
    dedupe = 'require("thinkific.ngx").store("claims_store")' },
  { name = "a raw ngx.shared.DICT", path = "/hooks/dict", dedupe = "ngx.shared.claims_dict" },
}

describe("claims in nginx with two workers", function()
  local nginx, serial = nil, 0

  local function counts()
    local status, _, body = assert(nginx:request{ path = "/counts" })
    assert.are.equal(200, status)
    return assert(thinkific.decode(body))
  end

  -- Polls the counts (bounded) until pred(counts) is true; returns the counts.
  local function wait_counts(pred, seconds)
    local deadline = H.now() + (seconds or 5)
    while true do
      local c = counts()
      if pred(c) then return c end
      assert(H.now() < deadline, "the handler did not get there in time")
      H.sleep(0.01)
    end
  end

  -- A signed delivery of a new event id for a router path; the request and the id.
  local function delivery(path, mode)
    serial = serial + 1
    local id = ("5000000000000000000%04d"):format(serial)
    local body = assert(thinkific.encode{ id = id, resource = "order", action = "created",
      tenant_id = "3", created_at = "2024-01-26T17:23:20.940Z", payload = { mode = mode } })
    return { method = "POST", path = path, body = body,
      headers = { ["Content-Type"] = "application/json", ["X-Thinkific-Topic"] = "order.created",
        ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, SECRET) } }, id
  end

  lazy_setup(function()
    local files = { ["lua/store_contract.lua"] = H.read(H.ROOT .. "/spec/store_contract.lua") }
    for i, store in ipairs(STORES) do
      files["lua/app/hooks" .. i .. ".lua"] = HOOKS:gsub("DEDUPE", store.dedupe)
    end
    nginx = H.start{
      workers = 2,
      reuseport = true,
      vars = { secret = SECRET, lease = LEASE },
      files = files,
      http = [[
  lua_shared_dict claims_store 1m;
  lua_shared_dict claims_dict 1m;
  lua_shared_dict counts 1m;
]],
      server = [[
    add_header X-Worker-Pid $pid always;
    location = /hooks/store {
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks1")) }
    }
    location = /hooks/dict {
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks2")) }
    }
    location = /counts {
      content_by_lua_block {
        local d, out = ngx.shared.counts, {}
        for _, k in ipairs(d:get_keys(0)) do out[k] = d:get(k) end
        ngx.print(require("thinkific").encode(out))
      }
    }
    # The store contract against thinkific.ngx.store (whose default ttl, 0.2 s, every call's
    # own ttl must win over) or against the raw dict.
    location = /contract {
      content_by_lua_block {
        local which = ngx.var.arg_store
        local store = which == "raw" and ngx.shared.claims_dict
          or require("thinkific.ngx").store("claims_store", { ttl = 0.2 })
        local results = require("store_contract").run(store, { sleep = ngx.sleep },
          "contract:" .. which .. ":" .. ngx.now())
        ngx.print(require("thinkific").encode(results))
      }
    }
    # thinkific.ngx.store's own ttl applies to a call that gives none.
    location = /default_ttl {
      content_by_lua_block {
        local store = require("thinkific.ngx").store("claims_store", { ttl = 0.2 })
        local key = "default:" .. ngx.now()
        assert(store:add(key .. "a", "running"))
        assert(store:set(key .. "b", "done"))
        assert(store:add(key .. "c", "running", 30))
        ngx.sleep(0.4)
        ngx.print(require("thinkific").encode({ a = store:get(key .. "a") or "gone",
          b = store:get(key .. "b") or "gone", c = store:get(key .. "c") or "gone" }))
      }
    }
]],
    }
  end)

  lazy_teardown(function()
    if nginx then nginx:remove() end
  end)

  for _, store in ipairs(STORES) do
    it(store.name .. ": a copy meanwhile gets 503 with Retry-After from either worker; the "
      .. "first attempt's 500 follows; a later copy runs the handlers", function()
      local req, id = delivery(store.path, "fail_slow")
      local first = nginx:send(req)
      wait_counts(function(c) return c["attempts:" .. id] == 1 end)
      -- Copies until both workers have answered one (each copy a new connection, which
      -- reuseport hashes to either worker), within the first attempt's sleep.
      local pids, copies = {}, 0
      local deadline = H.now() + 0.5
      repeat
        local status, headers, body = assert(nginx:request(req))
        copies = copies + 1
        assert.are.equal(503, status)
        assert.are.equal("2", headers["retry-after"])
        assert.are.equal(IN_PROGRESS, body)
        pids[headers["x-worker-pid"]] = true
      until next(pids, next(pids)) or H.now() > deadline
      assert.is_truthy(next(pids, next(pids)), "every copy went to one worker (" .. copies .. ")")

      local status, _, body = first.finish()
      assert.are.equal(500, status, body)
      local later_status, _, later_body = assert(nginx:request(req))
      assert.are.equal(200, later_status)
      assert.are.equal('{"status":"ok"}', later_body)
      local c = counts()
      assert.are.equal(2, c["attempts:" .. id])
      assert.are.equal(1, c["done:" .. id])
      local _, _, again = assert(nginx:request(req))
      assert.are.equal('{"status":"duplicate"}', again)
    end)

    it(store.name .. ": a worker killed with kill -9 mid-handler: its claim expires with the "
      .. "lease, then a copy is handled", function()
      local req, id = delivery(store.path, "hang")
      local first = nginx:send(req)
      local claimed_at = H.now()
      local pid = wait_counts(function(c) return c["hanging:" .. id] end)["hanging:" .. id]
      assert.is_true((os.execute("kill -9 " .. math.floor(pid))))
      assert.is_nil((first.finish())) -- the connection dies with the worker
      -- Still within the lease: the copy is told to come back later.
      local status, headers = assert(nginx:request(req))
      assert.are.equal(503, status)
      assert.are.equal("2", headers["retry-after"])
      H.sleep(math.max(0, claimed_at + LEASE + 0.3 - H.now()))
      local later_status, _, later_body = assert(nginx:request(req))
      assert.are.equal(200, later_status)
      assert.are.equal('{"status":"ok"}', later_body)
      local c = counts()
      assert.are.equal(2, c["attempts:" .. id])
      assert.are.equal(1, c["done:" .. id])
    end)
  end

  it("the store contract holds inside nginx for thinkific.ngx.store and a raw dict", function()
    for _, which in ipairs({ "store", "raw" }) do
      local status, _, body = assert(nginx:request{ path = "/contract?store=" .. which })
      assert.are.equal(200, status, body)
      local results = assert(thinkific.decode(body))
      assert.are.equal(#require("spec.store_contract").cases, #results)
      for _, r in ipairs(results) do
        assert.is_nil(r.error, which .. ": " .. r.name .. ": " .. tostring(r.error))
      end
    end
  end)

  it("thinkific.ngx.store's ttl applies to a call that gives none", function()
    local _, _, body = assert(nginx:request{ path = "/default_ttl" })
    assert.are.same({ a = "gone", b = "gone", c = "running" }, thinkific.decode(body))
  end)

  it("logs no error but the killed workers' exits", function()
    local left = {}
    for _, line in ipairs(nginx:lines("error")) do
      if not line:find("exited on signal 9", 1, true) then left[#left + 1] = line end
    end
    assert.are.same({}, left)
  end)
end)
