-- The sandbox's webhook endpoints over real HTTP: the credential, update and delete, the 422
-- checks, ids that cannot route elsewhere, unknown paths and methods, the 25 topics.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")

local api, connect, KEY, HOOK = wire.api, wire.connect, wire.KEY, wire.HOOK

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

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
end)
