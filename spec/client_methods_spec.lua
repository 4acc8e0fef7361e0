-- Every client method against the sandbox: results, argument errors, lifetime (close and
-- __gc; __close in close_lua54_spec.lua) and __tostring.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local ORDER = "20180126172320940835610"
local ENROLLMENT = "20180126171756020665195"
local LESSON = "20191029145629636106318"
local KEY = "sk-methods-Zq81xW"

local function keys_of(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

describe("client methods #memory", function()
  local sb, c
  helper.with_sandbox(function(s) sb = s end, { api_key = KEY })

  before_each(function()
    c = helper.client(sb)
  end)

  after_each(function()
    if c then c:close() end
  end)

  local function create(n)
    local made = {}
    for i = 1, n do
      made[i] = assert(c:create_webhook{ topic = "order.created",
        target_url = "https://example.com/hooks/" .. i })
    end
    return made
  end

  describe("create_webhook, get_webhook, update_webhook, delete_webhook", function()
    it("creates a webhook and gives it back as the server sent it", function()
      local w = assert(c:create_webhook{ topic = "enrollment.created",
        target_url = "https://example.com/enrolled" })
      assert.are.equal("string", type(w.id))
      assert.truthy(w.id:find("^%d+$"), w.id)
      assert.are.equal("enrollment.created", w.topic)
      assert.are.equal("https://example.com/enrolled", w.target_url)
      assert.are.equal("active", w.status)
      -- The sandbox sends created_by as a string (as Thinkific's examples do): kept as is.
      assert.are.equal("string", type(w.created_by))
    end)

    it("fetches a webhook by its id", function()
      local w = create(2)[2]
      local got = assert(c:get_webhook(w.id))
      assert.are.same(w, got)
    end)

    it("updates both fields and answers with the updated webhook", function()
      local w = create(1)[1]
      local up = assert(c:update_webhook(w.id, { topic = "lesson.completed",
        target_url = "https://example.com/lessons" }))
      assert.are.equal(w.id, up.id)
      assert.are.equal("lesson.completed", up.topic)
      assert.are.equal("https://example.com/lessons", up.target_url)
      local got = assert(c:get_webhook(w.id))
      assert.are.equal("lesson.completed", got.topic)
      assert.are.equal("https://example.com/lessons", got.target_url)
    end)

    it("deletes a webhook: true, then get answers 404", function()
      local w = create(1)[1]
      local ok, err = c:delete_webhook(w.id)
      assert.is_nil(err)
      assert.are.equal(true, ok)
      local got, gerr = c:get_webhook(w.id)
      assert.is_nil(got)
      assert.are.equal("http", gerr.kind)
      assert.are.equal(404, gerr.status)
      assert.are.equal(0, #assert(c:list_webhooks()).items)
    end)

    it("answers nil, err (not a raise) when deleting a webhook that is not there", function()
      local ok, err = c:delete_webhook("20990101000000000000001")
      assert.is_nil(ok)
      assert.are.equal(404, err.status)
      assert.are.equal("DELETE", err.method)
    end)
  end)

  describe("list_webhooks", function()
    it("lists in creation order with a limit, following next= cursors", function()
      local made = create(3)
      local p1 = assert(c:list_webhooks{ limit = 2 })
      assert.are.same({ made[1].id, made[2].id }, helper.ids_of(p1.items))
      assert.are.equal("string", type(p1.next))
      assert.are.equal("table", type(p1.meta.page))
      assert.are.equal(3, p1.meta.page.total_items)
      local p2 = assert(c:list_webhooks{ limit = 2, next = p1.next })
      assert.are.same({ made[3].id }, helper.ids_of(p2.items))
      assert.is_nil(p2.next)
    end)

    it("lists page by page with page=, next being the page number", function()
      local made = create(3)
      local p1 = assert(c:list_webhooks{ limit = 2, page = 1 })
      assert.are.same({ made[1].id, made[2].id }, helper.ids_of(p1.items))
      assert.are.equal(2, p1.next)
      assert.are.equal("integer", helper.number_type(p1.next))
      assert.are.equal("table", type(p1.meta.pagination))
      local p2 = assert(c:list_webhooks{ limit = 2, page = p1.next })
      assert.are.same({ made[3].id }, helper.ids_of(p2.items))
      assert.is_nil(p2.next)
    end)

    it("gives an empty page with no next when there is nothing", function()
      local p = assert(c:list_webhooks())
      assert.are.same({}, p.items)
      assert.is_nil(p.next)
    end)

    it("accepts the limits 1 and 250", function()
      create(2)
      assert.are.equal(1, #assert(c:list_webhooks{ limit = 1 }).items)
      assert.are.equal(2, #assert(c:list_webhooks{ limit = 250 }).items)
    end)
  end)

  describe("webhooks iterator", function()
    it("visits every webhook across pages, once each, in order", function()
      local made = create(5)
      local seen = {}
      for w, err in c:webhooks{ limit = 2 } do
        assert.is_truthy(w, tostring(err))
        seen[#seen + 1] = w.id
      end
      assert.are.same(helper.ids_of(made), seen)
    end)

    it("ends at once when there are no webhooks", function()
      local n = 0
      for _ in c:webhooks() do n = n + 1 end
      assert.are.equal(0, n)
    end)
  end)

  describe("get_event", function()
    it("gives the seeded order.created event with integers, strings and nulls kept", function()
      local e = assert(c:get_event(ORDER))
      assert.are.equal(ORDER, e.id)
      assert.are.equal("order", e.resource)
      assert.are.equal("created", e.action)
      assert.are.equal("3", e.tenant_id)
      local p = e.payload
      assert.are.equal(5000, p.amount_cents)
      assert.are.equal("integer", helper.number_type(p.amount_cents))
      assert.are.equal("integer", helper.number_type(p.amount_dollars))
      assert.are.equal("integer", helper.number_type(p.id))
      assert.are.equal("integer", helper.number_type(p.user.id))
      assert.are.equal("integer", helper.number_type(p.items[1].amount_cents))
      assert.are.equal(12345678, p.coupon.id)
      assert.are.equal(thinkific.null, p.affiliate_referral_code)
      assert.truthy(tostring(p.id):find("^%d+$"), "an integer prints without .0")
      local found = false
      for k in pairs(p) do found = found or k == "affiliate_referral_code" end
      assert.is_true(found, "a null field stays visible as a key")
    end)

    it("gives the seeded enrollment.created event", function()
      local e = assert(c:get_event(ENROLLMENT))
      local p = e.payload
      assert.are.equal(thinkific.null, p.completed_at)
      assert.are.equal(thinkific.null, p.expiry_date)
      assert.are.equal("0.0", p.percentage_completed)
      assert.are.equal(4, p.course_id)
      assert.are.equal("integer", helper.number_type(p.course_id))
      assert.are.equal(false, p.free_trial)
      local ks = keys_of(p)
      assert.truthy(table.concat(ks, ","):find("completed_at,course,course_id", 1, true))
      assert.truthy(table.concat(ks, ","):find("expiry_date", 1, true))
    end)

    it("gives the seeded lesson.completed event", function()
      local e = assert(c:get_event(LESSON))
      assert.are.equal(LESSON, e.id)
      assert.are.equal("feb8d00d-8040-4382-afee-491a6c8013af", e.tenant_global_id)
      assert.are.equal(0, e.payload.lesson.position)
      assert.are.equal("integer", helper.number_type(e.payload.lesson.position))
      assert.are.equal(1084282, e.payload.enrollment.id)
    end)

    it("fetches an event by an integer id, written without a decimal point", function()
      assert(sb:record_event{ id = "4242", resource = "user", action = "signup",
        payload = { id = 7 } })
      local e = assert(c:get_event(4242))
      assert.are.equal("4242", e.id)
      assert.are.equal(7, e.payload.id)
      -- 16 digits: every digit, never an exponent (LuaJIT's tostring keeps 14).
      assert(sb:record_event{ id = "9007199254740991", resource = "user", action = "signup",
        payload = { id = 8 } })
      e = assert(c:get_event(9007199254740991))
      assert.are.equal("9007199254740991", e.id)
    end)

    it("answers nil, err 404 for an unknown event", function()
      local e, err = c:get_event("20000101000000000000000")
      assert.is_nil(e)
      assert.are.equal(404, err.status)
      assert.are.equal("/events/20000101000000000000000", err.path)
    end)
  end)

  describe("argument errors", function()
    local FIELDS = { topic = "order.created", target_url = "https://example.com/x" }

    it("refuses ids that are not strings or integers", function()
      for _, bad in ipairs{ 1.5, math.huge, -math.huge, 0 / 0, 2 ^ 80, {}, true, "" } do
        helper.argerror(1, "get_webhook", function() c:get_webhook(bad) end)
        helper.argerror(1, "delete_webhook", function() c:delete_webhook(bad) end)
        helper.argerror(1, "get_event", function() c:get_event(bad) end)
        helper.argerror(1, "update_webhook", function() c:update_webhook(bad, FIELDS) end)
      end
      helper.argerror(1, "get_webhook", function() c:get_webhook() end)
    end)

    it("refuses missing, empty, mistyped and unknown webhook fields", function()
      helper.argerror(1, "create_webhook", function() c:create_webhook() end)
      helper.argerror(1, "create_webhook", function() c:create_webhook("order.created") end)
      local msg = helper.argerror(1, "create_webhook", function()
        c:create_webhook{ topic = "order.created" }
      end)
      assert.truthy(msg:find("target_url", 1, true), msg)
      msg = helper.argerror(1, "create_webhook", function()
        c:create_webhook{ target_url = "https://example.com/x" }
      end)
      assert.truthy(msg:find("topic", 1, true), msg)
      helper.argerror(1, "create_webhook", function()
        c:create_webhook{ topic = "", target_url = "https://example.com/x" }
      end)
      helper.argerror(1, "create_webhook", function()
        c:create_webhook{ topic = 1, target_url = "https://example.com/x" }
      end)
      msg = helper.argerror(1, "create_webhook", function()
        c:create_webhook{ topic = "order.created", target_url = "https://example.com/x", url = "y" }
      end)
      assert.truthy(msg:find("url", 1, true), msg)
      helper.argerror(2, "update_webhook", function() c:update_webhook("1", { topic = "order.created" }) end)
      helper.argerror(2, "update_webhook", function() c:update_webhook("1") end)
      helper.argerror(2, "update_webhook", function()
        c:update_webhook("1", { topic = "order.created", target_url = "https://e.com", status = "x" })
      end)
    end)

    it("refuses a limit outside 1..250, unknown options, and next with page", function()
      for _, bad in ipairs{ 0, 251, -1, 2.5, "10" } do
        helper.argerror(1, "list_webhooks", function() c:list_webhooks{ limit = bad } end)
        helper.argerror(1, "webhooks", function() c:webhooks{ limit = bad } end)
      end
      helper.argerror(1, "list_webhooks", function() c:list_webhooks{ cursor = "x" } end)
      helper.argerror(1, "list_webhooks", function() c:list_webhooks("limit=5") end)
      helper.argerror(1, "list_webhooks", function() c:list_webhooks{ next = 5 } end)
      helper.argerror(1, "list_webhooks", function() c:list_webhooks{ page = 0 } end)
      helper.argerror(1, "list_webhooks", function() c:list_webhooks{ page = math.huge } end)
      helper.argerror(1, "list_webhooks", function() c:list_webhooks{ next = "abc", page = 2 } end)
      helper.argerror(1, "webhooks", function() c:webhooks{ next = "abc" } end)
      helper.argerror(1, "webhooks", function() c:webhooks(25) end)
    end)

    it("refuses a method called with '.' instead of ':'", function()
      helper.argerror(0, "get_webhook", function() c.get_webhook("1") end)
      helper.argerror(0, "list_webhooks", function() c.list_webhooks({}) end)
    end)

    it("sends nothing when it raises", function()
      assert(sb:reset_stats())
      pcall(c.list_webhooks, c, { limit = 0 })
      pcall(c.create_webhook, c, { topic = "order.created" })
      pcall(c.get_webhook, c, 1.5)
      assert.are.equal(0, assert(sb:stats()).requests)
    end)

    it("refuses unknown and mistyped options and a missing credential in thinkific.new", function()
      helper.argerror(1, "new", function() thinkific.new() end)
      helper.argerror(1, "new", function() thinkific.new{ base_url = sb.url } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", access_token = "t" } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", bogus = true } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", timeout = "30" } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", retries = 1.5 } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", retries = math.huge } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = "k", base_url = "ftp://x" } end)
      helper.argerror(1, "new", function() thinkific.new{ api_key = 42 } end)
    end)
  end)

  describe("lifetime", function()
    local function active()
      return assert(sb:stats()).active_connections
    end

    before_each(function()
      -- No connection of an earlier test is left open (or waiting for its client's __gc).
      assert(helper.wait_idle(sb, 5))
    end)

    it("raises on every method after close(), and close() twice is fine", function()
      local d = helper.client(sb)
      assert(d:list_webhooks())
      d:close()
      d:close()
      local calls = {
        function() d:list_webhooks() end,
        function() d:webhooks() end,
        function() d:create_webhook{ topic = "order.created", target_url = "https://e.com/x" } end,
        function() d:get_webhook("1") end,
        function() d:update_webhook("1", { topic = "order.created", target_url = "https://e.com/x" }) end,
        function() d:delete_webhook("1") end,
        function() d:get_event(ORDER) end,
      }
      for i, f in ipairs(calls) do
        local ok, msg = pcall(f)
        assert.is_false(ok, "call " .. i .. " after close")
        assert.truthy(tostring(msg):find("closed", 1, true), tostring(msg))
      end
    end)

    it("an iterator made before close() raises when used after it", function()
      local d = helper.client(sb)
      local it = d:webhooks()
      d:close()
      assert.has_error(function() it() end)
    end)

    it("close() releases the connection", function()
      assert(sb:reset_stats())
      local d = helper.client(sb)
      assert(d:list_webhooks())
      assert.are.equal(1, active())
      d:close()
      assert.is_true(helper.wait_until(function() return active() == 0 end, 5))
    end)

    it("releases the connection of a client that is garbage collected", function()
      do
        local d = helper.client(sb)
        assert(d:list_webhooks())
      end
      assert.is_true(helper.wait_idle(sb, 5))
    end)

    it("survives many clients created and collected", function()
      for i = 1, 30 do
        local d = helper.client(sb)
        if i % 3 == 0 then assert(d:list_webhooks{ limit = 1 }) end
        if i % 2 == 0 then d:close() end
      end
      collectgarbage()
      collectgarbage()
      assert(c:list_webhooks())
    end)
  end)

  describe("__tostring", function()
    it("names the class and the base URL, never the credential", function()
      local s = tostring(c)
      assert.truthy(s:find("thinkific.Client", 1, true), s)
      assert.truthy(s:find(sb.url, 1, true), s)
      assert.is_nil(s:find(KEY, 1, true), s)
      local t = tostring(assert(thinkific.new{ access_token = KEY, base_url = sb.url }))
      assert.is_nil(t:find(KEY, 1, true), t)
    end)

    it("says closed after close()", function()
      local d = helper.client(sb)
      d:close()
      local s = tostring(d)
      assert.truthy(s:find("thinkific.Client", 1, true), s)
      assert.truthy(s:find("closed", 1, true), s)
    end)
  end)
end)
