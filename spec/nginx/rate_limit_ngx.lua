-- The rate limit inside nginx: two workers (listen … reuseport) call the API of one site on a
-- sandbox that allows LIMIT requests per WINDOW. With rate_limit_store = "ngx:budget" (a
-- lua_shared_dict) both workers' clients share one budget: no 429, every call answered, and
-- the calls take at least the time the limit allows. With a budget per worker they overrun the
-- limit together, and the sandbox answers 429s.
local helper = require("spec.helper")
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local LIMIT, WINDOW = 6, 1
local REQUESTS, CALLS = 12, 2 -- parallel requests to nginx, API calls in each

-- GET /calls?store=ngx:budget|none: CALLS list_webhooks in a row, without retries (a 429 is a
-- failure to see); answers the worker's pid, the statuses and the wall clock around the calls.
local CALLS_LUA = [==[
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")

return function()
  local store = ngx.var.arg_store
  local c = tngx.client{ api_key = "${api_key}", base_url = "${base_url}", subdomain = "acme",
    rate_limit = ${limit}, rate_window = ${window}, retries = 0,
    rate_limit_store = store ~= "none" and store or nil }
  ngx.update_time()
  local start, statuses = ngx.now(), {}
  for i = 1, ${calls} do
    local page, err = c:list_webhooks()
    statuses[i] = page and 200 or err.status or err.kind
  end
  ngx.update_time()
  local finish = ngx.now()
  c:close()
  ngx.header["Content-Type"] = "application/json"
  ngx.print(thinkific.encode{ pid = ngx.worker.pid(), statuses = statuses, start = start,
    finish = finish })
end
]==]

describe("the rate limit in nginx with two workers", function()
  local nginx, sb

  lazy_setup(function()
    sb = helper.sandbox{ port = 0, rate_limit = LIMIT, rate_window = WINDOW }
    nginx = H.start{
      workers = 2,
      reuseport = true,
      vars = { api_key = sb.api_key, base_url = sb.url, sb_port = sb.port, limit = LIMIT,
        window = WINDOW, calls = CALLS },
      files = { ["lua/app/calls.lua"] = CALLS_LUA },
      http = H.API_MAPS .. [[
  lua_shared_dict budget 1m;
  upstream thinkific_api { server 127.0.0.1:${sb_port}; keepalive 8; }
]],
      server = H.api_location("/_thinkific", "thinkific_api") .. [[
    location = /calls {
      content_by_lua_block { require("app.calls")() }
    }
]],
    }
  end)

  lazy_teardown(function()
    if nginx then nginx:remove() end
    if sb then sb:stop() end
  end)

  -- REQUESTS parallel /calls with the store; returns the decoded answers and the 429 count.
  local function run(store)
    assert(sb:reset())
    assert(sb:reset_stats())
    local reqs = {}
    for i = 1, REQUESTS do reqs[i] = { path = "/calls?store=" .. store } end
    local answers = {}
    for i, r in ipairs(nginx:parallel(reqs, 30)) do
      assert.are.equal(200, r[1], "request " .. i .. ": " .. tostring(r[2]))
      answers[i] = assert(thinkific.decode(r[3]))
    end
    return answers, assert(sb:stats()).rate_limited
  end

  local function pids_of(answers)
    local pids, n = {}, 0
    for _, a in ipairs(answers) do
      if not pids[a.pid] then n = n + 1 end
      pids[a.pid] = true
    end
    return n
  end

  it("shares one budget between the workers through ngx:DICT", function()
    local answers, limited = run("ngx:budget")
    assert.are.equal(2, pids_of(answers), "the calls did not reach both workers")
    local first, last = math.huge, 0
    for i, a in ipairs(answers) do
      for _, status in ipairs(a.statuses) do assert.are.equal(200, status, "request " .. i) end
      first, last = math.min(first, a.start), math.max(last, a.finish)
    end
    assert.are.equal(0, limited, "429s")
    local ideal = math.floor((REQUESTS * CALLS - 1) / LIMIT) * WINDOW
    assert.is_true(last - first >= ideal, ("%.2f s for %d calls"):format(last - first,
      REQUESTS * CALLS))
    assert.are.same({}, nginx:lines("error"))
  end)

  it("overruns the limit with a budget per worker", function()
    local answers, limited = run("none")
    assert.are.equal(2, pids_of(answers), "the calls did not reach both workers")
    assert.is_true(limited > 0, "no 429 with a budget per worker")
  end)
end)
