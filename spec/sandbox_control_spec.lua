-- The sandbox's control endpoints (/sandbox/...): recorded events, reset, deliveries, and
-- their 404 and 405.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local core = require("thinkific.core")

local api, request, is_id, HOOK = wire.api, wire.request, wire.is_id, wire.HOOK

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

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
