-- The sandbox tells the truth: what it answers has the shapes of Thinkific's own examples
-- (spec/fixtures/api-examples, doc/THINKIFIC.md) and of the OpenAPI schemas, JSON types
-- included (integers told from floats), over real HTTP on 127.0.0.1.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local core = require("thinkific.core")

local api, request, is_id, HOOK = wire.api, wire.request, wire.is_id, wire.HOOK

local function example(name)
  return assert(core.decode(helper.fixture("api-examples/" .. name)))
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
      assert.are.same(core.decode(helper.fixture("payloads/order.created.json")), order)
      local _, _, _, listed = request(sb, "GET", "/sandbox/events")
      assert.are.same(sb.seeded_events, listed.seeded)
    end)
  end)
end)
