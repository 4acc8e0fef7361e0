-- The client inside nginx (one worker) through thinkific.ngx.transport: subrequests to internal
-- locations that proxy_pass to the sandbox over nginx's keep-alive upstream. Checks what
-- reaches the API (headers, path), how nginx's own 502/504 map to errors, that a slow API
-- never blocks the worker, timers, the store, and the refusal without a transport.
local helper = require("spec.helper")
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local MAPS, proxy_location = H.API_MAPS, H.api_location

local FILTER = 'header_filter_by_lua_block { require("thinkific.ngx").header_filter() }'

local ADMIN = [==[
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")

local _M = {}

local function say(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(assert(thinkific.encode(t)))
end

local function err_table(err)
  return { kind = err.kind, status = err.status, sent = err.sent, attempts = err.attempts,
    message = err.message, retryable = err.retryable }
end

local function client(args, extra)
  local o = { api_key = "${api_key}", base_url = "${base_url}", subdomain = "acme",
    location = args.location or "/_thinkific", retries = tonumber(args.retries or 0),
    max_retry_wait = 0.05 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return tngx.client(o)
end

local ops = {}

function ops.ping() say{ ok = true } end

function ops.list(args)
  local c = client(args)
  local page, err = c:list_webhooks{ limit = tonumber(args.limit or 25) }
  c:close()
  if not page then return say{ ok = false, err = err_table(err) } end
  local bytes = 0
  for _, w in ipairs(page.items) do bytes = bytes + #w.target_url end
  say{ ok = true, count = #page.items, next = page.next, target_url_bytes = bytes }
end

function ops.all(args)
  local c = client(args)
  local n, ids = 0, {}
  for w, err in c:webhooks{ limit = tonumber(args.limit or 250) } do
    if not w then return say{ ok = false, err = err_table(err) } end
    n = n + 1
    ids[n] = type(w.id)
  end
  c:close()
  say{ ok = true, count = n, id_type = ids[1] }
end

function ops.create(args)
  local c = client(args)
  local w, err = c:create_webhook{ topic = args.topic or "order.created",
    target_url = args.target_url or "https://example.com/hooks" }
  c:close()
  if not w then return say{ ok = false, err = err_table(err) } end
  say{ ok = true, id = w.id, id_type = type(w.id) }
end

function ops.get(args)
  local c = client(args)
  local w, err = c:get_webhook(args.id)
  c:close()
  if not w then return say{ ok = false, err = err_table(err) } end
  say{ ok = true, id = w.id }
end

-- The transport called directly, to a location that proxies back to this server's /echo/.
function ops.echo()
  local t = tngx.transport{ location = "/_thinkific_echo" }
  local res, err = t{ method = "POST",
    url = "http://api.example.test/echo/api/v2/webhooks/a%2Fb?x=1&y=%20z",
    headers = { Authorization = "Bearer t0k", Accept = "application/json",
      ["Content-Type"] = "application/json", ["User-Agent"] = "lua-thinkific/test",
      ["X-Auth-Subdomain"] = "acme" },
    body = '{"a":1}' }
  if not res then return say{ ok = false, err = err_table(err) } end
  say{ ok = true, status = res.status, headers = res.headers, body = res.body }
end

-- A GET and a DELETE made while handling a POST whose body was read: never that body.
function ops.echo_parent()
  ngx.req.read_body()
  local t = tngx.transport{ location = "/_thinkific_echo" }
  local out = {}
  for _, m in ipairs({ "GET", "DELETE" }) do
    local res = assert(t{ method = m, url = "http://api.example.test/echo/x", headers = {} })
    local seen = thinkific.decode(res.body)
    out[m] = { body = seen.body, length = seen.headers["content-length"] or "none" }
  end
  say(out)
end

-- A client call from a timer, where nginx forbids subrequests.
function ops.timer()
  local d = ngx.shared.counts
  d:delete("timer")
  assert(ngx.timer.at(0, function()
    local c = client({ retries = "3" })
    local t0 = ngx.now()
    local page, err = c:list_webhooks()
    ngx.update_time()
    d:set("timer", assert(thinkific.encode{ ok = page ~= nil, err = err and err_table(err),
      seconds = ngx.now() - t0 }))
  end))
  for _ = 1, 250 do
    local v = d:get("timer")
    if v then
      ngx.header["Content-Type"] = "application/json"
      return ngx.print(v)
    end
    ngx.sleep(0.02)
  end
  say{ ok = false, message = "the timer did not report within 5 s" }
end

function ops.no_transport()
  local ok, e = pcall(thinkific.new, { api_key = "k" })
  say{ ok = ok, message = tostring(e) }
end

function ops.store()
  local r = {}
  local s = tngx.store("stores")
  r.add1 = { s:add("a") }
  r.add2 = { s:add("a") }
  r.delete = { s:delete("a") }
  r.add3 = { s:add("a") }
  local t = tngx.store("stores", { ttl = 0.2 })
  r.ttl1 = { t:add("b") }
  r.ttl2 = { t:add("b") }
  ngx.sleep(0.3)
  r.ttl3 = { t:add("b") }
  -- A failure of the dict (not "exists"): nil, message.
  local ok, err = tngx.store("tiny"):add("big", ("x"):rep(64 * 1024))
  r.big = { tostring(ok), err }
  r.missing = select(2, pcall(tngx.store, "nope"))
  -- A raw ngx.shared.DICT is a store too.
  local router = thinkific.router{ secret = "s", dedupe = ngx.shared.stores }
  local body = '{"id":"1","resource":"user","action":"signup","payload":{}}'
  local headers = { ["x-thinkific-hmac-sha256"] = thinkific.sign(body, "s") }
  local s1, b1 = router:handle(body, headers)
  local s2, b2 = router:handle(body, headers)
  r.raw = { s1, b1, s2, b2 }
  say(r)
end

-- LuaJIT: every number is a float; ids stay strings; whole numbers encode without ".0".
function ops.numbers()
  local v = assert(thinkific.decode('{"a":5000,"b":0.5,"id":"20180126172320940835610"}'))
  say{ math_type = math.type ~= nil, a = v.a, a_whole = v.a % 1 == 0, id_type = type(v.id),
    encoded = thinkific.encode({ n = v.a }), version = jit and jit.version or _VERSION }
end

function _M.run()
  local args = ngx.req.get_uri_args()
  local op = ops[args.op]
  if not op then
    ngx.status = 404
    return say{ ok = false, message = "no op " .. tostring(args.op) }
  end
  return op(args)
end

return _M
]==]

describe("thinkific.ngx.transport in nginx", function()
  local nginx, sb, client

  local function admin(query, timeout)
    local status, headers, body = nginx:request({ path = "/admin?" .. query }, timeout)
    assert(status, headers)
    assert.are.equal(200, status, body)
    return assert(thinkific.decode(body)), headers
  end

  lazy_setup(function()
    sb = helper.sandbox{ port = 0 }
    client = helper.client(sb)
    local server = table.concat({
      proxy_location("/_thinkific", "thinkific_api", FILTER),
      proxy_location("/_thinkific_nofilter", "thinkific_api"),
      proxy_location("/_thinkific_slow", "thinkific_api", "proxy_read_timeout 1s; " .. FILTER),
      proxy_location("/_thinkific_dead", "thinkific_dead", FILTER),
      proxy_location("/_thinkific_dead_nofilter", "thinkific_dead"),
      proxy_location("/_thinkific_echo", "thinkific_echo", FILTER),
      "    location = /_thinkific_static { internal; return 502; " .. FILTER .. " }\n",
      [[
    location = /admin {
      content_by_lua_block { require("app.admin").run() }
    }
    location = /raw_no_transport {
      content_by_lua_block { require("thinkific").new{ api_key = "k" } }
    }
    location /echo/ {
      content_by_lua_block {
        ngx.req.read_body()
        ngx.header["X-Echo-Test"] = "yes"
        ngx.header["Content-Type"] = "application/json"
        ngx.print(require("thinkific").encode{ method = ngx.req.get_method(),
          uri = ngx.var.request_uri, headers = ngx.req.get_headers(0),
          body = ngx.req.get_body_data() or "" })
      }
    }
]] }, "\n")
    nginx = H.start{
      workers = 1,
      vars = { api_key = sb.api_key, base_url = sb.url, sb_port = sb.port,
        dead_port = helper.closed_port() },
      files = { ["lua/app/admin.lua"] = ADMIN },
      http = MAPS .. [[
  lua_shared_dict counts 1m;
  lua_shared_dict stores 1m;
  lua_shared_dict tiny 12k;
  upstream thinkific_api { server 127.0.0.1:${sb_port}; keepalive 8; }
  upstream thinkific_dead { server 127.0.0.1:${dead_port}; }
  upstream thinkific_echo { server 127.0.0.1:${port}; keepalive 2; }
]],
      server = server,
    }
  end)

  lazy_teardown(function()
    if client then client:close() end
    if sb then sb:stop() end
    if nginx then nginx:remove() end
  end)

  before_each(function()
    assert(sb:reset())
  end)

  it("lists and creates webhooks against the sandbox over one keep-alive connection", function()
    assert(sb:reset_stats())
    local created = admin("op=create&topic=order.created&target_url=https%3A%2F%2Fexample.com%2Fa")
    assert.is_true(created.ok)
    assert.are.equal("string", created.id_type)
    for _ = 1, 4 do
      local list = admin("op=list")
      assert.is_true(list.ok)
      assert.are.equal(1, list.count)
    end
    local got = admin("op=get&id=" .. created.id)
    assert.is_true(got.ok)
    assert.are.equal(created.id, got.id)
    local stats = assert(sb:stats())
    assert.are.equal(6, stats.requests)
    assert.are.equal(1, stats.connections, "nginx's upstream keepalive reuses one connection")
  end)

  it("pages through every webhook (page numbers are LuaJIT floats) and reads a large answer whole",
    function()
    for i = 1, 260 do
      assert(client:create_webhook{ topic = "order.created",
        target_url = ("https://example.com/hooks/%03d/%s"):format(i, ("x"):rep(150)) })
    end
    local all = admin("op=all&limit=100")
    assert.is_true(all.ok, all.err and all.err.message)
    assert.are.equal(260, all.count)
    assert.are.equal("string", all.id_type)
    local page = admin("op=list&limit=250")
    assert.is_true(page.ok)
    assert.are.equal(250, page.count)
    assert.are.equal(250 * #("https://example.com/hooks/001/" .. ("x"):rep(150)), page.target_url_bytes)
  end)

  it("sends exactly the request's headers, path and body; answers with lower-case headers", function()
    local status, _, body = nginx:request{ path = "/admin?op=echo",
      headers = { Cookie = "parent=1", Authorization = "Basic cGFyZW50" } }
    assert.are.equal(200, status)
    local r = assert(thinkific.decode(body))
    assert.is_true(r.ok)
    assert.are.equal(200, r.status)
    assert.are.equal("yes", r.headers["x-echo-test"])
    assert.are.equal("application/json", r.headers["content-type"])
    local seen = assert(thinkific.decode(r.body))
    assert.are.equal("POST", seen.method)
    assert.are.equal("/echo/api/v2/webhooks/a%2Fb?x=1&y=%20z", seen.uri)
    assert.are.equal('{"a":1}', seen.body)
    assert.are.same({
      host = "api.example.test", authorization = "Bearer t0k", accept = "application/json",
      ["content-type"] = "application/json", ["user-agent"] = "lua-thinkific/test",
      ["x-auth-subdomain"] = "acme", ["content-length"] = "7",
    }, seen.headers)
  end)

  it("never forwards the parent request's body", function()
    for _, chunked in ipairs({ false, true }) do
      local status, _, body = nginx:request{ method = "POST", path = "/admin?op=echo_parent",
        body = "PARENT BODY", chunked = chunked }
      assert.are.equal(200, status)
      assert.are.same({ GET = { body = "", length = "none" }, DELETE = { body = "", length = "none" } },
        assert(thinkific.decode(body)))
    end
  end)

  it("keeps an escaped id in one path segment", function()
    local r = admin("op=get&id=" .. "a%2F..%2Fwebhooks")
    assert.is_false(r.ok)
    assert.are.equal("http", r.err.kind)
    assert.are.equal(404, r.err.status)
  end)

  it("maps nginx's own 502 (nothing listening) to a network error, not sent", function()
    local r = admin("op=list&location=/_thinkific_dead")
    assert.is_false(r.ok)
    assert.are.equal("network", r.err.kind)
    assert.is_nil(r.err.status)
    assert.is_false(r.err.sent)
    assert.truthy(r.err.message:find("could not connect", 1, true), r.err.message)
    -- Not sent: even a POST is tried again.
    local c = admin("op=create&retries=2&location=/_thinkific_dead")
    assert.is_false(c.ok)
    assert.are.equal(3, c.err.attempts)
    assert.is_false(c.err.sent)
  end)

  it("without header_filter, counts nginx's 502 as possibly sent: a POST is not repeated", function()
    local c = admin("op=create&retries=2&location=/_thinkific_dead_nofilter")
    assert.is_false(c.ok)
    assert.are.equal("network", c.err.kind)
    assert.is_true(c.err.sent)
    assert.are.equal(1, c.err.attempts)
    local r = admin("op=list&retries=1&location=/_thinkific_dead_nofilter")
    assert.are.equal("network", r.err.kind)
    assert.are.equal(2, r.err.attempts)
  end)

  it("names doc/API.md's location when the one given does not proxy to the API", function()
    -- With header_filter: nginx answered itself, so nothing was sent.
    local r = admin("op=create&retries=2&location=/_thinkific_static")
    assert.are.equal("network", r.err.kind)
    assert.is_false(r.err.sent)
    assert.are.equal(3, r.err.attempts)
    assert.truthy(r.err.message:find("nginx answered 502 without proxying: is "
      .. "/_thinkific_static the internal proxy_pass location of doc/API.md?", 1, true), r.err.message)
    -- No such location (no header_filter either): nothing says it was not sent.
    r = admin("op=create&retries=2&location=/_thinkific_missing")
    assert.are.equal("network", r.err.kind)
    assert.is_true(r.err.sent)
    assert.are.equal(1, r.err.attempts)
    assert.truthy(r.err.message:find("nginx answered 404 without a complete answer from the API: "
      .. "is /_thinkific_missing the internal proxy_pass location", 1, true), r.err.message)
  end)

  it("maps nginx's own 504 (proxy_read_timeout) to a timeout, sent", function()
    assert(sb:fault{ path = "/api/v2/webhooks", delay_ms = 2500 })
    local r = admin("op=list&location=/_thinkific_slow")
    assert.is_false(r.ok)
    assert.are.equal("timeout", r.err.kind)
    assert.is_nil(r.err.status)
    assert.is_true(r.err.sent)
  end)

  it("keeps the API's own 502 and 504 answers as HTTP errors", function()
    assert(sb:fault{ path = "/api/v2/webhooks", status = 502, body = "<html>bad gateway</html>" })
    local r = admin("op=list")
    assert.are.equal("http", r.err.kind)
    assert.are.equal(502, r.err.status)
    assert(sb:fault{ path = "/api/v2/webhooks", status = 504, body = "" })
    r = admin("op=list")
    assert.are.equal("http", r.err.kind)
    assert.are.equal(504, r.err.status)
    -- Retried like any 5xx: the second attempt gets the real answer.
    assert(sb:fault{ path = "/api/v2/webhooks", status = 502, body = "<html>bad gateway</html>" })
    r = admin("op=list&retries=1")
    assert.is_true(r.ok)
  end)

  it("does not block the worker while the API is slow", function()
    assert(sb:fault{ path = "/api/v2/webhooks", delay_ms = 2000 })
    local t0 = H.now()
    local slow = nginx:send{ path = "/admin?op=list" }
    H.sleep(0.1) -- the subrequest is now waiting on the sandbox
    local t1 = H.now()
    local status = nginx:request({ path = "/admin?op=ping" }, 5)
    local took = H.now() - t1
    assert.are.equal(200, status)
    assert.is_true(took < 0.5, ("took %.3f s"):format(took))
    local s2, _, body = slow.finish()
    assert.are.equal(200, s2)
    assert.is_true(assert(thinkific.decode(body)).ok)
    assert.is_true(H.now() - t0 >= 1.9, "the delayed answer came after the delay")
  end)

  it("fails at once in a timer, pointing to `thinkific webhooks sync`", function()
    local r = admin("op=timer")
    assert.is_false(r.ok)
    assert.are.equal("network", r.err.kind)
    assert.is_false(r.err.sent)
    assert.are.equal(1, r.err.attempts)
    assert.truthy(r.err.message:find("thinkific webhooks sync", 1, true), r.err.message)
    assert.truthy(r.err.message:find("timer", 1, true), r.err.message)
    assert.is_true(r.seconds < 0.5)
  end)

  it("stores ids in a lua_shared_dict: exists, ttl, no memory, a missing dict, a raw dict", function()
    local r = admin("op=store")
    assert.are.same({ true }, r.add1)
    assert.are.same({ false, "exists" }, r.add2)
    assert.are.same({ true }, r.delete)
    assert.are.same({ true }, r.add3)
    assert.are.same({ true }, r.ttl1)
    assert.are.same({ false, "exists" }, r.ttl2)
    assert.are.same({ true }, r.ttl3)
    assert.are.same({ "nil", "no memory" }, r.big)
    assert.truthy(r.missing:find("no lua_shared_dict named 'nope'", 1, true), r.missing)
    assert.are.same({ 200, '{"status":"ok"}', 200, '{"status":"duplicate"}' }, r.raw)
  end)

  it("is LuaJIT: numbers are floats, ids stay strings, whole numbers encode as integers", function()
    local r = admin("op=numbers")
    assert.is_false(r.math_type)
    assert.are.equal(5000, r.a)
    assert.is_true(r.a_whole)
    assert.are.equal("string", r.id_type)
    assert.are.equal('{"n":5000}', r.encoded)
    assert.truthy(r.version:find("LuaJIT", 1, true))
  end)

  it("wrote no [error] line but nginx's own upstream failures", function()
    for _, line in ipairs(nginx:lines("error")) do
      local upstream = line:find("while connecting to upstream", 1, true)
        or line:find("upstream timed out", 1, true)
        -- the location a test above asks for on purpose, which does not exist
        or line:find('subrequest: "/_thinkific_missing"', 1, true)
      assert.truthy(upstream, line)
    end
  end)

  it("refuses a client without a transport, pointing to thinkific.ngx.transport", function()
    local r = admin("op=no_transport")
    assert.is_false(r.ok)
    assert.truthy(r.message:find("inside nginx a client needs a non-blocking transport", 1, true),
      r.message)
    assert.truthy(r.message:find("thinkific.ngx", 1, true))
    nginx:reset_log()
    local status = nginx:request{ path = "/raw_no_transport" }
    assert.are.equal(500, status)
    assert.truthy(nginx:log():find("inside nginx a client needs a non-blocking transport", 1, true))
  end)
end)
