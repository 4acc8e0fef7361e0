-- Two nginx workers behind one port (listen ... reuseport): concurrent copies of one delivery
-- run the handler exactly once through the lua_shared_dict store that both workers share; the
-- copies that arrive while it runs are told to come back (503), those after it are duplicates.
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local SECRET = "workers-secret"
local COPIES = 20

local HOOKS = [[
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")
local counts = ngx.shared.counts
local router = thinkific.router{ secret = "${secret}", dedupe = tngx.store("thinkific_dedupe") }
-- Slow on purpose: the other copies arrive while this one still runs.
router:on("user.signup", function()
  counts:incr("user.signup", 1, 0)
  counts:incr("handled_by:" .. ngx.worker.pid(), 1, 0)
  ngx.sleep(0.3)
end)
return router
]]

describe("thinkific.ngx with two workers", function()
  local nginx

  lazy_setup(function()
    nginx = H.start{
      workers = 2,
      reuseport = true,
      vars = { secret = SECRET },
      files = { ["lua/app/hooks.lua"] = HOOKS },
      http = [[
  lua_shared_dict thinkific_dedupe 1m;
  lua_shared_dict counts 1m;
]],
      server = [[
    location = /thinkific/webhooks {
      add_header X-Worker-Pid $pid always;
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks")) }
    }
    location = /counts {
      add_header X-Worker-Pid $pid always;
      content_by_lua_block {
        local d, out = ngx.shared.counts, {}
        for _, k in ipairs(d:get_keys(0)) do out[k] = d:get(k) end
        ngx.print(require("thinkific").encode(out))
      }
    }
]],
    }
  end)

  lazy_teardown(function()
    if nginx then nginx:remove() end
  end)

  it("spreads connections over both workers (X-Worker-Pid)", function()
    local seen = {}
    for _ = 1, 400 do
      local status, headers = assert(nginx:request{ path = "/counts" })
      assert.are.equal(200, status)
      seen[headers["x-worker-pid"]] = true
      if next(seen, next(seen)) then break end -- two pids
    end
    local pids = {}
    for pid in pairs(seen) do pids[#pids + 1] = pid end
    table.sort(pids)
    assert.are.equal(2, #pids)
  end)

  it("runs the handler once for 20 concurrent copies of one delivery", function()
    local envelope = assert(thinkific.encode{ id = "40000000000000000000001", resource = "user",
      action = "signup", tenant_id = "3", created_at = "2024-01-26T22:23:20.808Z",
      payload = { id = 1, email = "ada@example.com" } })
    local headers = { ["Content-Type"] = "application/json", ["X-Thinkific-Topic"] = "user.signup",
      ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(envelope, SECRET) }
    local reqs = {}
    for i = 1, COPIES do
      reqs[i] = { method = "POST", path = "/thinkific/webhooks", headers = headers, body = envelope }
    end
    local results = nginx:parallel(reqs, 15)
    local ok, later, pids = 0, 0, {}
    for i, r in ipairs(results) do
      local status, h, body = r[1], r[2], r[3]
      if status == 503 then
        assert.are.equal('{"error":"in progress"}', body)
        assert.are.equal("60", h["retry-after"])
        later = later + 1
      else
        assert.are.equal(200, status, "copy " .. i .. ": " .. tostring(h))
        if body == '{"status":"ok"}' then ok = ok + 1 end
        if body == '{"status":"duplicate"}' then later = later + 1 end
      end
      pids[h["x-worker-pid"]] = (pids[h["x-worker-pid"]] or 0) + 1
    end
    local spread = {}
    for pid, n in pairs(pids) do spread[#spread + 1] = pid .. ": " .. n end
    table.sort(spread)
    assert.are.equal(1, ok)
    assert.are.equal(COPIES - 1, later)
    local _, _, body = assert(nginx:request{ path = "/counts" })
    local counts = assert(thinkific.decode(body))
    assert.are.equal(1, counts["user.signup"])
    assert.are.equal(2, #spread, "copies per worker: " .. table.concat(spread, ", "))
    assert.are.same({}, nginx:lines("error"))
  end)
end)
