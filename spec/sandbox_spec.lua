-- The sandbox, over real HTTP on 127.0.0.1: Thinkific's shapes, pagination, errors, the HTTP
-- layer, statistics, faults, TLS, the child process and the command line. Every wait is
-- bounded (socket timeouts, polling deadlines).
local helper = require("spec.helper")
local socket = require("socket")
local core = require("thinkific.core")
local sandbox = require("thinkific.sandbox")
local process = require("thinkific.sandbox.process")

local SPEC_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
local REPO = SPEC_DIR .. "/.."
local KEY = "sandbox-key"
local TIMEOUT = 5

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function example(name)
  return assert(core.decode(read(SPEC_DIR .. "/fixtures/api-examples/" .. name)))
end

-- Raw HTTP -------------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

local function connect(sb)
  local c = socket.tcp()
  c:settimeout(TIMEOUT)
  assert(c:connect("127.0.0.1", sb.port))
  return setmetatable({ sock = c }, Conn)
end

function Conn:send_raw(text)
  assert(self.sock:send(text))
end

function Conn:send(method, path, opts)
  opts = opts or {}
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  local headers = opts.headers or { Authorization = "Bearer " .. KEY }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  local body = opts.body
  if type(body) == "table" then body = assert(core.encode(body)) end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  if opts.close then lines[#lines + 1] = "Connection: close" end
  self:send_raw(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
end

-- Reads one response: status, headers (lower-case names), body text. nil, err when the
-- connection closed without one.
function Conn:receive()
  local line, err = self.sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  while true do
    local h = assert(self.sock:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    headers[name:lower()] = value
  end
  local body = ""
  local n = tonumber(headers["content-length"] or "0")
  if n > 0 then body = assert(self.sock:receive(n)) end
  return status, headers, body
end

function Conn:request(method, path, opts)
  self:send(method, path, opts)
  return self:receive()
end

function Conn:close()
  self.sock:close()
end

-- One request on its own connection: status, headers, body text, decoded body.
local function request(sb, method, path, opts)
  local c = connect(sb)
  opts = opts or {}
  opts.close = true
  local status, headers, body = c:request(method, path, opts)
  c:close()
  return status, headers, body, body ~= "" and core.decode(body) or nil
end

local function api(sb, method, path, opts)
  return request(sb, method, "/api/v2" .. path, opts)
end

-- Shapes: JSON types, integers told from floats --------------------------------------------

local function jtype(v)
  if v == core.null then return "null" end
  if type(v) == "number" then return helper.number_type(v) end
  if type(v) == "table" then return v[1] ~= nil and "array" or "object" end
  return type(v)
end

-- Same fields, same types, recursively; arrays compared element by element with the first
-- expected element; an empty expected object stands for any object.
-- Returns true, or false and where they differ.
local function same_shape(expected, actual, where)
  where = where or "$"
  local et, at = jtype(expected), jtype(actual)
  if et == "object" and next(expected) == nil and at == "array" then et = "array" end
  if et == "object" and at == "object" and next(actual) == nil and next(expected) ~= nil then
    return false, where .. ": empty"
  end
  if et ~= at then return false, string.format("%s: %s expected, got %s", where, et, at) end
  if et == "object" and next(expected) ~= nil then -- {} in an example: any object (payload)
    for k in pairs(expected) do
      if actual[k] == nil then return false, where .. "." .. k .. ": missing" end
    end
    for k in pairs(actual) do
      if expected[k] == nil then return false, where .. "." .. k .. ": unexpected" end
    end
    for k, v in pairs(expected) do
      local ok, why = same_shape(v, actual[k], where .. "." .. k)
      if not ok then return false, why end
    end
  elseif et == "array" and expected[1] ~= nil then
    for i, v in ipairs(actual) do
      local ok, why = same_shape(expected[1], v, where .. "[" .. i .. "]")
      if not ok then return false, why end
    end
  end
  return true
end

local function assert_shape(expected, actual)
  local ok, why = same_shape(expected, actual)
  assert(ok, why)
end

-- The OpenAPI schemas (thinkific-webhooks-api-v2.openapi.yml), as JSON types. created_by and
-- updated_by are numbers there but strings in every example of what the server sends: the
-- examples win.
local OPENAPI = {
  WebhookResponse = { id = "string", topic = "string", target_url = "string", status = "string",
    created_by = "string", created_at = "string", updated_at = "string", updated_by = "string" },
  Pagination = { has_next = "boolean", next_page = "string", page_items = "integer",
    total_items = "integer", total_pages = "integer" },
  EventResponse = { id = "string", resource = "string", action = "string",
    created_at = "string", payload = "object" },
}

local function assert_schema(schema, value, exact)
  for field, t in pairs(schema) do
    assert.are.equal(t, jtype(value[field]), field)
  end
  if exact then
    for field in pairs(value) do assert.is_not_nil(schema[field], "unexpected " .. field) end
  end
end

local function is_id(s)
  return type(s) == "string" and #s == 23 and s:find("^%d+$") ~= nil
end

local HOOK = { topic = "order.created", target_url = "https://example.com/hooks" }

-- Polls f() until it is true, at most `seconds`.
local function eventually(f, seconds)
  local deadline = socket.gettime() + (seconds or TIMEOUT)
  while socket.gettime() < deadline do
    if f() then return true end
    socket.sleep(0.02)
  end
  return f()
end

-- Statistics start from zero once the connections of earlier tests are seen closed.
local function fresh_stats(sb)
  assert(helper.wait_idle(sb, TIMEOUT))
  assert(sb:reset_stats())
end

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  describe("tells the truth", function()
    it("creates a webhook shaped like webhook_create_201.json and the schema", function()
      local status, headers, _, wh = api(sb, "POST", "/webhooks", { body = HOOK })
      assert.are.equal(201, status)
      assert.are.equal("application/json; charset=utf-8", headers["content-type"])
      assert_shape(example("webhook_create_201.json"), wh)
      assert_schema(OPENAPI.WebhookResponse, wh, true)
      assert.is_true(is_id(wh.id))
      assert.are.equal("active", wh.status)
      assert.are.equal(HOOK.topic, wh.topic)
      assert.are.equal(HOOK.target_url, wh.target_url)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", wh.created_at)
      local _, _, _, got = api(sb, "GET", "/webhooks/" .. wh.id)
      assert.are.same(wh, got)
    end)

    it("lists webhooks shaped like webhooks_list_200.json and the schema", function()
      for _ = 1, 3 do api(sb, "POST", "/webhooks", { body = HOOK }) end
      local status, _, _, list = api(sb, "GET", "/webhooks")
      assert.are.equal(200, status)
      local expected = example("webhooks_list_200.json")
      expected.meta.page.total_pages = 1 -- in the schema, not in the example
      assert_shape(expected, list)
      assert_schema(OPENAPI.Pagination, list.meta.page, true)
      for _, wh in ipairs(list.items) do assert_schema(OPENAPI.WebhookResponse, wh, true) end
      assert.are.equal(3, list.meta.page.page_items)
      assert.are.equal(3, list.meta.page.total_items)
    end)

    it("writes an empty list as [] and page-style meta like admin_list_meta_pagination.json",
      function()
        local _, _, body, list = api(sb, "GET", "/webhooks")
        assert.matches('"items":%[%]', body)
        assert.are.equal(0, #list.items)
        local _, _, pbody, plist = api(sb, "GET", "/webhooks?page=1")
        assert.matches('"items":%[%]', pbody)
        assert_shape(example("admin_list_meta_pagination.json"), plist)
      end)

    it("answers 401 like error_401.json", function()
      local status, _, _, body = api(sb, "GET", "/webhooks", { headers = {} })
      assert.are.equal(401, status)
      assert.are.same(example("error_401.json"), body)
    end)

    it("answers 404 like error_404.json", function()
      local status, headers, _, body = api(sb, "GET", "/webhooks/20200227213233625839530")
      assert.are.equal(404, status)
      assert.are.equal("application/json; charset=utf-8", headers["content-type"])
      assert.are.same(example("error_404.json"), body)
    end)

    it("answers 422 like webhook_422_invalid_topic.json and webhook_422_invalid_url.json",
      function()
        local status, _, _, body = api(sb, "POST", "/webhooks",
          { body = { topic = "order.exploded", target_url = HOOK.target_url } })
        assert.are.equal(422, status)
        assert.are.same(example("webhook_422_invalid_topic.json"), body)
        status, _, _, body = api(sb, "POST", "/webhooks",
          { body = { topic = HOOK.topic, target_url = "not a url" } })
        assert.are.equal(422, status)
        assert.are.same(example("webhook_422_invalid_url.json"), body)
      end)

    it("answers an invalid update like webhook_update_422_array_variant.json", function()
      local _, _, _, wh = api(sb, "POST", "/webhooks", { body = HOOK })
      local status, _, _, body = api(sb, "PUT", "/webhooks/" .. wh.id,
        { body = { topic = "nope", target_url = HOOK.target_url } })
      assert.are.equal(422, status)
      assert.are.same(example("webhook_update_422_array_variant.json"), body)
    end)

    it("returns events shaped like event_get_200_schema_example.json and the schema", function()
      local id = assert(sb:record_event({ resource = "order", action = "created",
        created_at = "2024-01-01T00:00:00.000Z", payload = { id = 5 } }))
      assert.is_true(is_id(id))
      local status, _, _, ev = api(sb, "GET", "/events/" .. id)
      assert.are.equal(200, status)
      assert_shape(example("event_get_200_schema_example.json"), ev)
      assert_schema(OPENAPI.EventResponse, ev, true)
      assert.are.equal(id, ev.id)
      assert.are.equal(5, ev.payload.id)
      assert.are.equal("integer", helper.number_type(ev.payload.id))
    end)

    it("starts with the three sample events, ids as in the samples", function()
      assert.are.same({ "20180126172320940835610", "20180126171756020665195",
        "20191029145629636106318" }, sb.seeded_events)
      local topics = {}
      for _, id in ipairs(sb.seeded_events) do
        local status, _, _, ev = api(sb, "GET", "/events/" .. id)
        assert.are.equal(200, status)
        assert_schema(OPENAPI.EventResponse, ev)
        assert.are.equal(id, ev.id)
        topics[#topics + 1] = ev.resource .. "." .. ev.action
      end
      assert.are.same({ "order.created", "enrollment.created", "lesson.completed" }, topics)
      local order = select(4, api(sb, "GET", "/events/" .. sb.seeded_events[1]))
      assert.are.same(core.decode(read(SPEC_DIR .. "/fixtures/payloads/order.created.json")), order)
      local _, _, _, listed = request(sb, "GET", "/sandbox/events")
      assert.are.same(sb.seeded_events, listed.seeded)
    end)
  end)

  describe("pagination", function()
    local created

    before_each(function()
      created = {}
      local c = connect(sb)
      for i = 1, 60 do
        local status, _, body = c:request("POST", "/api/v2/webhooks", { body = {
          topic = "order.created", target_url = "https://example.com/" .. i } })
        assert.are.equal(201, status)
        created[i] = core.decode(body).id
      end
      c:close()
    end)

    it("walks every webhook once with next= cursors, in creation order", function()
      local seen, cursor, pages = {}, nil, 0
      repeat
        local path = "/webhooks?limit=7" .. (cursor and "&next=" .. cursor or "")
        local status, _, _, page = api(sb, "GET", path)
        assert.are.equal(200, status)
        pages = pages + 1
        local meta = page.meta.page
        assert.are.equal(#page.items, meta.page_items)
        assert.are.equal(60, meta.total_items)
        assert.are.equal(9, meta.total_pages)
        for _, wh in ipairs(page.items) do seen[#seen + 1] = wh.id end
        assert.are.equal(meta.has_next, meta.next_page ~= "")
        cursor = meta.has_next and meta.next_page or nil
      until not cursor or pages > 20
      assert.are.equal(9, pages)
      assert.are.same(created, seen)
    end)

    it("walks every webhook once with page=", function()
      local seen, page_no = {}, 1
      while page_no do
        local status, _, _, page = api(sb, "GET", "/webhooks?limit=7&page=" .. page_no)
        assert.are.equal(200, status)
        local p = page.meta.pagination
        assert.are.equal(page_no, p.current_page)
        assert.are.equal(60, p.total_items)
        assert.are.equal("integer", helper.number_type(p.total_items))
        assert.are.equal(9, p.total_pages)
        if page_no == 1 then assert.are.equal(core.null, p.prev_page) else
          assert.are.equal(page_no - 1, p.prev_page) end
        for _, wh in ipairs(page.items) do seen[#seen + 1] = wh.id end
        page_no = p.next_page ~= core.null and p.next_page or nil
        assert.is_true(#seen <= 60)
      end
      assert.are.same(created, seen)
    end)

    it("defaults to 25 and refuses bad limits and unknown cursors with 400", function()
      local _, _, _, page = api(sb, "GET", "/webhooks")
      assert.are.equal(25, #page.items)
      local _, _, _, second = api(sb, "GET", "/webhooks?next=" .. page.meta.page.next_page)
      assert.are.equal(created[26], second.items[1].id)
      for _, q in ipairs({ "limit=0", "limit=251", "limit=abc", "limit=-1", "limit=2.5",
        "next=nonsense", "page=0", "page=x" }) do
        local status, _, _, body = api(sb, "GET", "/webhooks?" .. q)
        assert.are.equal(400, status, q)
        assert.are.equal("string", type(body.error), q)
      end
      assert.are.equal(60, #select(4, api(sb, "GET", "/webhooks?limit=250")).items)
    end)

    it("keeps a cursor walk going when the next page's first webhook was deleted", function()
      local _, _, _, page = api(sb, "GET", "/webhooks?limit=10")
      local cursor = page.meta.page.next_page
      assert.are.equal(204, (api(sb, "DELETE", "/webhooks/" .. created[11])))
      local status, _, _, nextp = api(sb, "GET", "/webhooks?limit=10&next=" .. cursor)
      assert.are.equal(200, status)
      assert.are.equal(created[12], nextp.items[1].id)
    end)
  end)

  describe("the API", function()
    it("wants the bearer API key; X-Auth-Subdomain changes nothing", function()
      assert.are.equal(401, (api(sb, "GET", "/webhooks", { headers = {} })))
      assert.are.equal(401, (api(sb, "GET", "/webhooks",
        { headers = { Authorization = "Bearer wrong" } })))
      assert.are.equal(401, (api(sb, "GET", "/webhooks",
        { headers = { Authorization = "Basic " .. KEY } })))
      assert.are.equal(200, (api(sb, "GET", "/webhooks",
        { headers = { Authorization = "Bearer " .. KEY, ["X-Auth-Subdomain"] = "acme" } })))
    end)

    it("updates and deletes; 204 has no body; then 404", function()
      local _, _, _, wh = api(sb, "POST", "/webhooks", { body = HOOK })
      local status, _, _, up = api(sb, "PUT", "/webhooks/" .. wh.id,
        { body = { topic = "user.signup", target_url = "http://127.0.0.1:9/x" } })
      assert.are.equal(200, status)
      assert.are.equal("user.signup", up.topic)
      assert.are.equal("http://127.0.0.1:9/x", up.target_url)
      assert.are.equal(wh.created_at, up.created_at)
      local dstatus, dheaders, dbody = api(sb, "DELETE", "/webhooks/" .. wh.id)
      assert.are.equal(204, dstatus)
      assert.are.equal("", dbody)
      assert.is_nil(dheaders["content-type"])
      assert.are.equal(404, (api(sb, "GET", "/webhooks/" .. wh.id)))
      assert.are.equal(404, (api(sb, "DELETE", "/webhooks/" .. wh.id)))
      assert.are.equal(404, (api(sb, "PUT", "/webhooks/" .. wh.id, { body = HOOK })))
    end)

    it("needs both fields on update", function()
      local _, _, _, wh = api(sb, "POST", "/webhooks", { body = HOOK })
      local status, _, _, body = api(sb, "PUT", "/webhooks/" .. wh.id,
        { body = { topic = "order.created" } })
      assert.are.equal(422, status)
      assert.are.same({ errors = { url = { "is not valid" } } }, body)
    end)

    it("never routes a percent-encoded id elsewhere", function()
      local _, _, _, wh = api(sb, "POST", "/webhooks", { body = HOOK })
      for _, id in ipairs({ "..%2Fx%3Fy", "%2E%2E%2Fwebhooks", wh.id .. "%2F",
        "%2Fapi%2Fv2%2Fwebhooks" }) do
        local status, _, _, body = api(sb, "GET", "/webhooks/" .. id)
        assert.are.equal(404, status, id)
        assert.are.equal("Record not found.", body.error, id)
      end
      assert.are.equal(404, (api(sb, "GET", "/events/..%2Fwebhooks")))
    end)

    it("answers unknown paths with 404 and wrong methods with 405", function()
      local status, _, _, body = api(sb, "GET", "/courses")
      assert.are.equal(404, status)
      assert.are.same({ error = "Not found" }, body)
      local mstatus, headers, _, mbody = api(sb, "PATCH", "/webhooks")
      assert.are.equal(405, mstatus)
      assert.are.same({ error = "Method not allowed" }, mbody)
      assert.are.equal("GET, POST", headers.allow)
      assert.are.equal(405, (api(sb, "POST", "/events/1")))
    end)

    it("refuses a body that is not a JSON object with 400", function()
      for _, body in ipairs({ "not json", "[1,2]", '"x"', "" }) do
        local status, _, _, err = api(sb, "POST", "/webhooks", { body = body })
        assert.are.equal(400, status, body)
        assert.are.equal("string", type(err.error))
      end
    end)

    it("accepts every one of the 25 topics and refuses others", function()
      local topics = { "lead.created", "order.created", "order_transaction.succeeded",
        "order_transaction.failed", "order_transaction.refunded", "subscription.cancelled",
        "subscription.past_due", "subscription.unpaid", "user.signup", "user.signin",
        "user.updated", "enrollment.trial", "enrollment.created", "enrollment.completed",
        "enrollment.progress", "course.created", "course.deleted", "course.updated",
        "lesson.completed", "quiz.attempted", "app.uninstalled", "product.created",
        "product.deleted", "product.updated", "plan.updated" }
      local c = connect(sb)
      for _, t in ipairs(topics) do
        assert.are.equal(201, (c:request("POST", "/api/v2/webhooks",
          { body = { topic = t, target_url = HOOK.target_url } })), t)
      end
      for _, t in ipairs({ "order", "order.*", "ORDER.CREATED", "order.created ", "" }) do
        assert.are.equal(422, (c:request("POST", "/api/v2/webhooks",
          { body = { topic = t, target_url = HOOK.target_url } })), t)
      end
      for _, u in ipairs({ "ftp://example.com/x", "example.com/x", "https://", "https://a b" }) do
        assert.are.equal(422, (c:request("POST", "/api/v2/webhooks",
          { body = { topic = "order.created", target_url = u } })), u)
      end
      c:close()
    end)
  end)

  describe("HTTP", function()
    it("answers a malformed request line with 400 and goes on serving", function()
      local c = connect(sb)
      c:send_raw("THIS IS NOT HTTP\r\n\r\n")
      local status, headers = c:receive()
      assert.are.equal(400, status)
      assert.are.equal("close", headers.connection)
      c:close()
      for _, raw in ipairs({ "GET /x HTTP/9.9\r\n\r\n", "get / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "\0\1\2\r\n\r\n" }) do
        c = connect(sb)
        c:send_raw(raw)
        local s = c:receive()
        assert.is_true(s == 400 or s == 505, raw)
        c:close()
      end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("answers 431 to huge headers and 413 to huge bodies", function()
      local c = connect(sb)
      c:send_raw("GET /api/v2/webhooks HTTP/1.1\r\nX-Big: " .. string.rep("a", 70000)
        .. "\r\n\r\n")
      assert.are.equal(431, (c:receive()))
      c:close()
      c = connect(sb)
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nContent-Length: 999999999999\r\n\r\n")
      assert.are.equal(413, (c:receive()))
      c:close()
    end)

    it("reads chunked bodies and answers Expect: 100-continue", function()
      local c = connect(sb)
      local body = assert(core.encode(HOOK))
      local half = math.floor(#body / 2)
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. string.format("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n", half, body:sub(1, half),
          #body - half, body:sub(half + 1)))
      assert.are.equal(201, (c:receive()))
      c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nAuthorization: Bearer " .. KEY
        .. "\r\nExpect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n")
      assert.are.equal(100, (c:receive()))
      c:send_raw(body)
      assert.are.equal(201, (c:receive()))
      c:close()
    end)

    it("honours Connection: close", function()
      local c = connect(sb)
      local status, headers = c:request("GET", "/api/v2/webhooks", { close = true })
      assert.are.equal(200, status)
      assert.are.equal("close", headers.connection)
      local data, err = c.sock:receive(1)
      assert.is_nil(data)
      assert.are.equal("closed", err)
      c:close()
    end)
  end)

  describe("statistics", function()
    it("count several requests on one keep-alive connection as one connection", function()
      fresh_stats(sb)
      local c = connect(sb)
      for _ = 1, 3 do assert.are.equal(200, (c:request("GET", "/api/v2/webhooks"))) end
      local s = assert(sb:stats())
      assert.are.same({ requests = 3, connections = 1, active_connections = 1,
        peak_connections = 1 }, s)
      c:close()
      assert.is_true(eventually(function() return sb:stats().active_connections == 0 end))
    end)

    it("see concurrent connections (peak_connections)", function()
      fresh_stats(sb)
      local conns = {}
      for i = 1, 4 do
        conns[i] = connect(sb)
        conns[i]:send("GET", "/api/v2/webhooks")
      end
      for i = 1, 4 do assert.are.equal(200, (conns[i]:receive())) end
      local s = assert(sb:stats())
      assert.are.equal(4, s.requests)
      assert.are.equal(4, s.connections)
      assert.are.equal(4, s.active_connections)
      assert.are.equal(4, s.peak_connections)
      for i = 1, 4 do conns[i]:close() end
      assert.is_true(eventually(function() return sb:stats().active_connections == 0 end))
      s = assert(sb:reset_stats())
      assert.are.same({ requests = 0, connections = 0, active_connections = 0,
        peak_connections = 0 }, s)
    end)

    it("do not count control requests", function()
      fresh_stats(sb)
      for _ = 1, 3 do
        assert(sb:stats())
        assert(sb:deliveries())
      end
      request(sb, "GET", "/sandbox/events")
      assert.are.equal(0, sb:stats().requests)
    end)
  end)

  describe("faults", function()
    after_each(function()
      assert(sb:clear_faults())
    end)

    it("answer with a status, a JSON body and headers, count times", function()
      assert.are.equal(2, sb:fault({ path = "/api/v2/webhooks", status = 429, count = 2,
        body = { error = "slow down" }, headers = { ["RateLimit-Reset"] = "1500" } }))
      for _ = 1, 2 do
        local status, headers, _, body = api(sb, "GET", "/webhooks")
        assert.are.equal(429, status)
        assert.are.equal("1500", headers["ratelimit-reset"])
        assert.are.equal("application/json", headers["content-type"])
        assert.are.same({ error = "slow down" }, body)
      end
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("send a raw HTML body as text/html, and given headers win", function()
      sb:fault({ path = "/api/v2", status = 502, body = "<html>Bad gateway</html>" })
      local status, headers, body = api(sb, "GET", "/webhooks")
      assert.are.equal(502, status)
      assert.are.equal("text/html", headers["content-type"])
      assert.are.equal("<html>Bad gateway</html>", body)
      sb:fault({ path = "/api/v2", status = 503, body = "oops",
        headers = { ["content-type"] = "text/plain" } })
      status, headers, body = api(sb, "GET", "/webhooks")
      assert.are.equal(503, status)
      assert.are.equal("text/plain", headers["content-type"])
      assert.are.equal("oops", body)
    end)

    it("match by path prefix and method, in queue order", function()
      sb:fault({ path = "/api/v2/events", status = 500 })
      sb:fault({ path = "/api/v2/webhooks", method = "POST", status = 503 })
      sb:fault({ path = "/api/v2/webhooks", status = 504 })
      assert.are.equal(504, (api(sb, "GET", "/webhooks")))
      assert.are.equal(503, (api(sb, "POST", "/webhooks", { body = HOOK })))
      assert.are.equal(201, (api(sb, "POST", "/webhooks", { body = HOOK })))
      assert.are.equal(500, (api(sb, "GET", "/events/" .. sb.seeded_events[1])))
      assert.are.equal(200, (api(sb, "GET", "/events/" .. sb.seeded_events[1])))
      assert.are.equal(0, select(4, request(sb, "GET", "/sandbox/faults")).faults)
    end)

    it("delay the real answer with delay_ms alone", function()
      sb:fault({ path = "/api/v2/webhooks", delay_ms = 300 })
      local t0 = socket.gettime()
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      assert.is_true(socket.gettime() - t0 >= 0.28)
      sb:fault({ path = "/api/v2/webhooks", delay_ms = 200, status = 500 })
      t0 = socket.gettime()
      assert.are.equal(500, (api(sb, "GET", "/webhooks")))
      assert.is_true(socket.gettime() - t0 >= 0.18)
    end)

    it("drop the connection without an answer", function()
      sb:fault({ path = "/api/v2/webhooks", drop = true })
      local c = connect(sb)
      local status, err = c:request("GET", "/api/v2/webhooks")
      assert.is_nil(status)
      assert.are.equal("closed", err)
      c:close()
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
    end)

    it("can be cleared, and invalid ones are refused", function()
      sb:fault({ path = "/api/v2", status = 500, count = 5 })
      assert(sb:clear_faults())
      assert.are.equal(200, (api(sb, "GET", "/webhooks")))
      for _, spec in ipairs({ { status = 500 }, { path = "x", status = 500 },
        { path = "/api/v2" }, { path = "/", status = 500, count = 0 },
        { path = "/", status = 99 }, { path = "/", drop = "yes" } }) do
        local n, err = sb:fault(spec)
        assert.is_nil(n)
        assert.are.equal("http", err.kind)
        assert.are.equal(400, err.status)
      end
    end)
  end)

  describe("control endpoints", function()
    it("record events, with ids assigned, and refuse incomplete ones", function()
      local id = assert(sb:record_event({ resource = "user", action = "signup",
        payload = { id = 1, tags = core.array({}) } }))
      assert.is_true(is_id(id))
      local _, _, body, ev = api(sb, "GET", "/events/" .. id)
      assert.are.equal("user", ev.resource)
      assert.are.equal("string", type(ev.created_at))
      assert.matches('"tags":%[%]', body)
      local mine = assert(sb:record_event('{"id":"abc","resource":"a","action":"b","payload":{}}'))
      assert.are.equal("abc", mine)
      for _, bad in ipairs({ { action = "x", payload = {} }, { resource = "x", payload = {} },
        { resource = "x", action = "y" }, { resource = "x", action = "y", payload = {}, id = 5 } }) do
        local none, err = sb:record_event(bad)
        assert.is_nil(none)
        assert.are.equal(400, err.status)
      end
    end)

    it("reset drops webhooks and recorded events but keeps the seeded ones", function()
      api(sb, "POST", "/webhooks", { body = HOOK })
      local id = assert(sb:record_event({ resource = "a", action = "b", payload = {} }))
      assert(sb:reset())
      assert.are.equal(0, select(4, api(sb, "GET", "/webhooks")).meta.page.total_items)
      assert.are.equal(404, (api(sb, "GET", "/events/" .. id)))
      assert.are.equal(200, (api(sb, "GET", "/events/" .. sb.seeded_events[2])))
    end)

    it("list deliveries as [] when there are none", function()
      local _, _, body = request(sb, "GET", "/sandbox/deliveries")
      assert.are.equal("[]", body)
    end)

    it("answer 404 and 405 like the API", function()
      assert.are.equal(404, (request(sb, "GET", "/sandbox/nothing")))
      assert.are.equal(405, (request(sb, "DELETE", "/sandbox/stats")))
    end)
  end)
end)

-- The server itself is Lua 5.4 (LuaJIT cannot load it): the specs that run one in this
-- process are #lua54; under LuaJIT every other one talks to a Lua 5.4 child.
describe("sandbox.serve (in this process) #lua54", function()
  it("serves from the caller's own loop rounds", function()
    local httpc = require("thinkific.sandbox.httpc")
    local server = assert(sandbox.serve({ port = 0 }))
    local results = {}
    for _ = 1, 3 do
      server.loop:spawn(function()
        local res, err = httpc.request({ url = server.url .. "/webhooks", waiter = server.loop,
          headers = { Authorization = "Bearer " .. KEY }, timeout = TIMEOUT })
        results[#results + 1] = res and res.status or err
      end)
    end
    local deadline = socket.gettime() + TIMEOUT
    while #results < 3 and socket.gettime() < deadline do server:step(0.05) end
    server:close()
    assert.are.same({ 200, 200, 200 }, results)
    assert.are.equal(3, server.stats.requests)
  end)

  it("refuses what it cannot serve with nil, message", function()
    local none, err = sandbox.serve({ tls_cert = "/nonexistent.pem", tls_key = "/nonexistent.pem" })
    assert.is_nil(none)
    assert.matches("TLS", err)
  end)

  it("closes connections past its limit", function()
    local server = assert(sandbox.serve({ port = 0, max_connections = 3 }))
    local conns = {}
    for i = 1, 5 do
      conns[i] = socket.tcp()
      conns[i]:settimeout(TIMEOUT)
      assert(conns[i]:connect("127.0.0.1", server.port))
    end
    for _ = 1, 10 do server:step(0.01) end
    local closed = 0
    for i = 1, 5 do
      conns[i]:settimeout(0)
      local _, err = conns[i]:receive(1)
      if err == "closed" then closed = closed + 1 end
      conns[i]:close()
    end
    server:close()
    assert.are.equal(2, closed)
  end)
end)

describe("sandbox over TLS", function()
  local dir, sb

  -- Teardowns run in the order they are registered: the sandbox stops, then the directory of
  -- its certificate goes.
  lazy_teardown(function()
    if sb then sb:stop() end
  end)
  helper.scratch_dir(function(d) dir = d end)

  lazy_setup(function()
    local cert, key = helper.certificate(dir, "localhost", "/CN=localhost")
    sb = sandbox.spawn({ tls_cert = cert, tls_key = key })
  end)

  it("serves https", function()
    local ssl = require("ssl")
    assert.matches("^https://127%.0%.0%.1:%d+/api/v2$", sb.url)
    local tcp = socket.tcp()
    tcp:settimeout(TIMEOUT)
    assert(tcp:connect("127.0.0.1", sb.port))
    local c = assert(ssl.wrap(tcp, { mode = "client", protocol = "any", verify = "none" }))
    c:settimeout(TIMEOUT)
    assert(c:dohandshake())
    local conn = setmetatable({ sock = c }, Conn)
    for _ = 1, 2 do -- keep-alive over TLS
      local status, _, body = conn:request("GET", "/api/v2/webhooks")
      assert.are.equal(200, status)
      assert.are.equal(0, core.decode(body).meta.page.total_items)
    end
    conn:close()
    local s = assert(sb:stats())
    assert.are.equal(2, s.requests)
    assert.are.equal(1, s.connections)
  end)
end)

describe("sandbox process", function()
  it("stops once, idempotently, and leaves no process or temp file", function()
    local sb = sandbox.spawn()
    local child = sb._process
    local pid = sb.pid
    assert.is_true(process.alive(pid))
    assert.is_nil(io.open(child.out))
    sb:stop()
    sb:stop()
    assert.is_false(process.alive(pid))
    assert.is_nil(io.open(child.out))
    assert.is_nil(io.open(child.err))
    assert.is_nil(io.open(child.pidfile))
    assert.has_error(function() sb:stats() end)
  end)

  -- Stopped by a to-be-closed variable: close_lua54_spec.lua.

  it("exits when its parent dies (--parent-pipe)", function()
    local code = 'local sb = require("thinkific.sandbox").spawn(); io.write(sb.pid, "\\n"); '
      .. 'io.flush(); require("socket").sleep(30)'
    -- The parent runs under this run's interpreter (LuaJIT reads the LUA_PATH and LUA_CPATH
    -- this process got); the sandbox it spawns is Lua 5.4.
    local path, cpath = helper.lua54_paths()
    local env = string.format("export LUA_PATH_5_4=%s LUA_CPATH_5_4=%s;",
      process.quote(path), process.quote(cpath))
    local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
    local parent = assert(io.popen("echo $$; " .. env .. " exec " .. lua .. " -e "
      .. process.quote(code) .. " </dev/null", "r"))
    local parent_pid = tonumber(parent:read("l"))
    local child_pid = tonumber(parent:read("l"))
    assert.is_number(parent_pid)
    assert.is_number(child_pid)
    assert.is_true(process.alive(child_pid))
    os.execute("kill -KILL " .. parent_pid)
    parent:close()
    assert.is_true(eventually(function() return not process.alive(child_pid) end, 5))
  end)

  it("raises a clear error when the child dies or prints nothing in time", function()
    local ok, err = pcall(sandbox.spawn, { lua = "/nonexistent/lua5.4" })
    assert.is_false(ok)
    assert.matches("did not start", err)
    local dir = os.tmpname()
    local f = assert(io.open(dir, "w"))
    f:write("#!/bin/sh\nexec sleep 30\n")
    f:close()
    os.execute("chmod +x " .. dir)
    local t0 = socket.gettime()
    ok, err = pcall(sandbox.spawn, { lua = dir, start_timeout = 0.5 })
    os.remove(dir)
    assert.is_false(ok)
    assert.matches("no URL in time", err)
    assert.is_true(socket.gettime() - t0 < 5)
  end)

  it("raises on bad options", function()
    assert.has_error(function() sandbox.spawn({ bogus = 1 }) end)
    assert.has_error(function() sandbox.spawn({ port = "80" }) end)
    assert.has_error(function() sandbox.spawn({ tls_cert = "x" }) end)
    assert.has_error(function() sandbox.spawn(5) end)
  end)

  it("never shows the API key", function()
    local sb = sandbox.spawn({ api_key = "very-secret-key" })
    assert.is_nil(tostring(sb):find("very-secret-key", 1, true))
    assert.is_nil(read("/proc/" .. sb.pid .. "/cmdline"):find("very-secret-key", 1, true))
    assert.are.equal(401, (api(sb, "GET", "/webhooks")))
    assert.are.equal(200, (api(sb, "GET", "/webhooks",
      { headers = { Authorization = "Bearer very-secret-key" } })))
    sb:stop()
  end)
end)

describe("thinkific sandbox (command line)", function()
  -- The command is Lua 5.4 whatever runs the specs.
  local function run(args)
    local path, cpath = helper.lua54_paths()
    local cmd = string.format("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s lua5.4 %s/bin/thinkific %s "
      .. "</dev/null >/dev/null 2>&1", process.quote(path), process.quote(cpath), REPO, args)
    return helper.execute(cmd)
  end

  it("exits 2 on usage errors", function()
    assert.are.equal(2, run("sandbox --bogus"))
    assert.are.equal(2, run("sandbox --port nope"))
    assert.are.equal(2, run("sandbox --port 70000"))
    assert.are.equal(2, run("sandbox --tls-cert only.pem"))
    assert.are.equal(2, run("nothing-like-this"))
    assert.are.equal(2, run(""))
    assert.are.equal(0, run("--help"))
    assert.are.equal(0, run("sandbox --help"))
  end)

  it("exits 1 when it cannot listen", function()
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    assert.are.equal(1, run("sandbox --port " .. port))
    busy:close()
  end)
end)
