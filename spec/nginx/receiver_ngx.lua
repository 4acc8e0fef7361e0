-- thinkific.ngx.serve in a real nginx (one worker): deliveries from the sandbox and from the
-- spec itself, checked by their answers, by what the handlers counted in a shared dict, and
-- by error.log.
local helper = require("spec.helper")
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local SECRET = "receiver-secret"
local MAX_BODY = 16384

local HOOKS = [[
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")
local counts = ngx.shared.counts

local router = thinkific.router{ secret = "${secret}", max_body = ${max_body},
  dedupe = tngx.store("thinkific_dedupe") }

router:on("order.created", function(event)
  counts:incr("order.created", 1, 0)
  counts:set("last_id", event.id)
end)

-- Fails the first attempt of each event, so that the sandbox delivers it again.
router:on("lesson.completed", function(event)
  counts:incr("lesson.runs", 1, 0)
  if counts:add("failed:" .. event.id, true) then error("deliberate failure") end
  counts:incr("lesson.completed", 1, 0)
end)

-- Large bodies: records whether nginx spilled this one to a temp file.
router:on("enrollment.created", function(event)
  counts:incr("enrollment.created", 1, 0)
  counts:set("spilled", ngx.req.get_body_file() ~= nil)
  counts:set("padding", #event.payload.padding)
end)

router:on_error(function(err) ngx.log(ngx.WARN, "handler failed: ", err) end)
return router
]]

local COUNTS = [[
local d, out = ngx.shared.counts, {}
for _, k in ipairs(d:get_keys(0)) do out[k] = d:get(k) end
ngx.header["Content-Type"] = "application/json"
ngx.print(require("thinkific").encode(out))
]]

describe("thinkific.ngx.serve in nginx", function()
  local nginx, sb, client, hooks_url

  local function counts()
    local status, _, body = assert(nginx:request{ path = "/counts" })
    assert.are.equal(200, status)
    return assert(thinkific.decode(body))
  end

  local function post(body, headers, extra)
    local req = { method = "POST", path = "/thinkific/webhooks", body = body, headers = headers }
    for k, v in pairs(extra or {}) do req[k] = v end
    return nginx:request(req)
  end

  local function signed(body, secret)
    return { ["Content-Type"] = "application/json",
      ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, secret or SECRET),
      ["X-Thinkific-Topic"] = "order.created" }
  end

  local function envelope(id)
    local e = assert(thinkific.decode(helper.fixture("payloads/order.created.json")))
    e.id = id
    return assert(thinkific.encode(e))
  end

  lazy_setup(function()
    sb = helper.sandbox{ port = 0, secret = SECRET, delivery_backoff = 0.05, delivery_timeout = 3 }
    client = helper.client(sb)
    nginx = H.start{
      workers = 1,
      vars = { secret = SECRET, max_body = MAX_BODY, counts = COUNTS },
      files = { ["lua/app/hooks.lua"] = HOOKS },
      http = [[
  lua_shared_dict thinkific_dedupe 1m;
  lua_shared_dict counts 1m;
  client_body_buffer_size 1k;
  client_max_body_size 1m;
]],
      server = [[
    location = /thinkific/webhooks {
      content_by_lua_block { require("thinkific.ngx").serve(require("app.hooks")) }
    }
    location = /counts {
      content_by_lua_block { ${counts} }
    }
]],
    }
    hooks_url = nginx.url .. "/thinkific/webhooks"
  end)

  lazy_teardown(function()
    if client then client:close() end
    if sb then sb:stop() end
    if nginx then nginx:remove() end
  end)

  it("answers a valid delivery from the sandbox with 200, and its handler runs", function()
    assert(client:create_webhook{ topic = "order.created", target_url = hooks_url })
    local r = assert(sb:trigger("order.created", { id = 1, amount_cents = 5000 }))
    local list = assert(H.delivered(sb, r.event_id))
    assert.are.equal(1, #list)
    assert.are.equal(200, list[1].status)
    local c = counts()
    assert.are.equal(1, c["order.created"])
    assert.are.equal(r.event_id, c.last_id)
  end)

  it("answers a tampered body or a wrong or missing signature with 401", function()
    local body = envelope("30000000000000000000001")
    local headers = signed(body)
    local status, _, answer = post(body:gsub('"amount_cents": ?5000', '"amount_cents":1'), headers)
    assert.are.equal(401, status)
    assert.are.equal('{"error":"invalid signature"}', answer)
    status = post(body, signed(body, "another-secret"))
    assert.are.equal(401, status)
    status, _, answer = post(body, { ["Content-Type"] = "application/json" })
    assert.are.equal(401, status)
    assert.are.equal('{"error":"missing signature"}', answer)
    assert.are.equal(1, counts()["order.created"])
  end)

  it("answers a second copy of a delivery 'duplicate', and runs its handler once", function()
    local before = counts()["order.created"]
    local body = envelope("30000000000000000000002")
    local s1, h1, a1 = post(body, signed(body))
    local s2, _, a2 = post(body, signed(body))
    assert.are.equal(200, s1)
    assert.are.equal('{"status":"ok"}', a1)
    assert.are.equal("application/json", h1["content-type"])
    assert.are.equal(200, s2)
    assert.are.equal('{"status":"duplicate"}', a2)
    -- The same event id triggered twice through the sandbox: delivered twice, handled once.
    local e = assert(thinkific.decode(body))
    e.id = "30000000000000000000003"
    assert(sb:trigger(e))
    assert(sb:trigger(e))
    assert(helper.wait_until(function()
      local list = assert(H.delivered(sb, e.id))
      return #list == 2 and list[1].status == 200 and list[2].status == 200
    end, 10), "two deliveries of one event, both 200")
    assert.are.equal(before + 2, counts()["order.created"])
  end)

  it("reads every header: the signature after 120 others, any case", function()
    local body = envelope("30000000000000000000005")
    local headers = {}
    for i = 1, 120 do headers[i] = { ("X-Padding-%03d"):format(i), "p" } end
    headers[121] = { "x-THINKIFIC-hmac-SHA256", thinkific.sign(body, SECRET) }
    local status, _, answer = post(body, headers)
    assert.are.equal(200, status)
    assert.are.equal('{"status":"ok"}', answer)
  end)

  it("refuses other methods with 405", function()
    local status, headers, answer = nginx:request{ method = "GET", path = "/thinkific/webhooks" }
    assert.are.equal(405, status)
    assert.are.equal("POST", headers.allow)
    assert.truthy(answer:find("method not allowed", 1, true))
  end)

  it("answers 413 from Content-Length alone, without reading the body", function()
    -- The body is announced and never sent: an answer proves nothing was waited for.
    local t0 = H.now()
    local status, _, answer = post(nil, signed("x"), { length = MAX_BODY + 1 })
    assert.are.equal(413, status)
    assert.are.equal('{"error":"body too large"}', answer)
    assert.is_true(H.now() - t0 < 2)
  end)

  it("answers 413 to a chunked body over max_body, spilled to a temp file", function()
    local body = envelope("30000000000000000000004"):gsub("^{", '{"padding":"'
      .. ("x"):rep(MAX_BODY) .. '",')
    local status, _, answer = post(body, signed(body), { chunked = true })
    assert.are.equal(413, status)
    assert.are.equal('{"error":"body too large"}', answer)
  end)

  it("verifies a mid-size body that nginx spilled to a temp file", function()
    assert(client:create_webhook{ topic = "enrollment.created", target_url = hooks_url })
    local padding = ("p"):rep(8000) -- client_body_buffer_size is 1k
    local r = assert(sb:trigger("enrollment.created", { id = 7, padding = padding }))
    local list = assert(H.delivered(sb, r.event_id))
    assert.are.equal(1, #list)
    assert.are.equal(200, list[1].status)
    local c = counts()
    assert.are.equal(1, c["enrollment.created"])
    assert.is_true(c.spilled)
    assert.are.equal(8000, c.padding)
  end)

  it("wrote no [error] line for the cases above", function()
    assert.are.same({}, nginx:lines("error"))
  end)

  it("answers 500 when a handler fails, and the sandbox's next attempt succeeds once", function()
    nginx:reset_log()
    assert(client:create_webhook{ topic = "lesson.completed", target_url = hooks_url })
    local r = assert(sb:trigger("lesson.completed", { id = 9 }))
    local mine = assert(H.delivered(sb, r.event_id))
    assert.are.equal(2, #mine)
    assert.are.equal(500, mine[1].status)
    assert.are.equal(1, mine[1].attempt)
    assert.are.equal(200, mine[2].status)
    assert.are.equal(2, mine[2].attempt)
    local c = counts()
    assert.are.equal(2, c["lesson.runs"])
    assert.are.equal(1, c["lesson.completed"])
    assert.truthy(nginx:log():find("deliberate failure", 1, true))
  end)
end)
