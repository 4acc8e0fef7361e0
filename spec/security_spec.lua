-- What users and servers send can never change a request's route or headers, and the
-- credential never shows in an error, a message or tostring.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local SECRET = "sk_live_9f8e7d6c5b4a3921"
local OTHER = "sk_wrong_1a2b3c4d5e6f"

-- Ids that would change the path or the query if they were not escaped as one segment.
local TRICKY = { "../x?y", "a b", "%2F", ".", "..", "x/y", "?limit=1", "#top", "a+b", "%",
  "..%2F..", "webhooks", "caf\xC3\xA9", "a\r\nX-Injected: 1", "\0", "/", "\\..\\x" }

-- Every key and value of v, deep, as text (tables once each), plus tostring(v).
local function serialise(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "table" then
    if seen[v] then return out end
    seen[v] = true
    for k, x in pairs(v) do
      serialise(k, out, seen)
      serialise(x, out, seen)
    end
  end
  out[#out + 1] = tostring(v)
  return table.concat(out, "\n")
end

local function assert_no_secret(secret, err, what)
  assert.is_table(err, what)
  local text = serialise(err) .. "\n" .. tostring(err)
  assert.is_nil(text:find(secret, 1, true), what .. ": " .. text)
  -- Nor a recognisable part of it.
  assert.is_nil(text:find(secret:sub(8), 1, true), what .. ": " .. text)
end

describe("security", function()
  local sb
  helper.with_sandbox(function(s) sb = s end, { api_key = SECRET })

  describe("ids stay one path segment #memory", function()
    for _, id in ipairs(TRICKY) do
      it(("get_event(%q) reaches exactly that event"):format(id), function()
        local c = helper.client(sb)
        assert(sb:record_event{ id = id, resource = "user", action = "signup", payload = { id = 1 } })
        local e, err = c:get_event(id)
        assert.is_nil(err)
        assert.are.equal(id, e.id)
      end)

      it(("webhook methods with %q answer Record not found, from the webhook route"):format(id), function()
        local c = helper.client(sb)
        assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/h" })
        local calls = {
          function() return c:get_webhook(id) end,
          function()
            return c:update_webhook(id, { topic = "order.created", target_url = "https://e.com/" })
          end,
          function() return c:delete_webhook(id) end,
        }
        for i, call in ipairs(calls) do
          local v, err = call()
          assert.is_nil(v, "call " .. i)
          assert.are.equal(404, err.status, "call " .. i)
          assert.are.equal("Record not found.", err.message, "call " .. i)
          local seg = err.path:match("^/webhooks/(.+)$")
          assert.truthy(seg, err.path)
          assert.truthy(seg:find("^[%w%%._~-]+$"), err.path)
          assert.is_truthy(seg ~= "." and seg ~= "..", err.path)
        end
        -- Nothing was changed or deleted by them.
        assert.are.equal(1, #assert(c:list_webhooks()).items)
      end)
    end

    it("integer ids become decimal segments", function()
      local c = helper.client(sb)
      -- The extremes: Lua 5.4's integer range; LuaJIT's whole numbers, exact up to 2^53.
      local big = math.maxinteger or 2 ^ 53
      local small = math.mininteger or -2 ^ 53
      for _, id in ipairs{ 0, -1, big, small } do
        local _, err = c:get_webhook(id)
        assert.are.equal("Record not found.", err.message)
        assert.are.equal("/webhooks/" .. string.format("%d", id), err.path)
      end
    end)

    it("a webhook created and fetched by its real id works", function()
      local c = helper.client(sb)
      local w = assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/h" })
      assert.are.same(w, assert(c:get_webhook(w.id)))
      assert(c:update_webhook(w.id, { topic = "user.signup", target_url = "https://example.com/u" }))
      assert.are.equal(true, c:delete_webhook(w.id))
    end)
  end)

  describe("queries and redirects #memory", function()
    it("a next cursor stays one query value, whatever it holds", function()
      local c = helper.client(sb)
      for _, cursor in ipairs{ "a&page=2", "x#y", "a b+c", "=&=", "%26" } do
        local v, err = c:list_webhooks{ next = cursor }
        assert.is_nil(v, cursor)
        -- The sandbox saw a single (unknown) cursor, not a page parameter or a cut value.
        assert.are.equal(400, err.status, cursor)
        assert.are.equal("Invalid next cursor.", err.message, cursor)
      end
      local log = {}
      local t = helper.client(sb, { transport = helper.socket_transport(log) })
      t:list_webhooks{ limit = 3, next = "a&page=2#f" }
      local query = log[1].url:match("%?(.*)$")
      local pairs_seen = {}
      for k, v in query:gmatch("([^&=]+)=([^&]*)") do
        pairs_seen[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      end
      assert.are.same({ limit = "3", next = "a&page=2#f" }, pairs_seen)
      assert.is_nil(log[1].url:find("#", 1, true), log[1].url)
    end)

    it("a redirect is not followed (the credential goes nowhere else)", function()
      local c = helper.client(sb, { retries = 0 })
      assert(sb:fault{ path = "/api/v2/webhooks/moved", status = 302,
        headers = { Location = sb.url .. "/events/20180126172320940835610" } })
      assert(sb:reset_stats())
      local v, err = c:get_webhook("moved")
      assert.is_nil(v)
      assert.are.equal("http", err.kind)
      assert.are.equal(302, err.status)
      assert.are.equal(1, assert(sb:stats()).requests)
    end)
  end)

  describe("no header injection through options #memory", function()
    local BAD = { "\r", "\n", "\0", "\r\n" }
    local FIELDS = { "api_key", "access_token", "subdomain", "user_agent" }

    for _, field in ipairs(FIELDS) do
      it("thinkific.new refuses CR, LF and NUL in " .. field, function()
        for _, ch in ipairs(BAD) do
          local value = "Zx9" .. SECRET .. ch .. "X-Evil: 1"
          local opts = { base_url = sb.url }
          if field ~= "access_token" then opts.api_key = SECRET end
          opts[field] = value
          local msg = helper.argerror(1, "new", function() thinkific.new(opts) end)
          assert.truthy(msg:find(field, 1, true), msg)
          assert.is_nil(msg:find(SECRET, 1, true), msg)
          assert.is_nil(msg:find("X-Evil", 1, true), msg)
        end
      end)
    end

    it("thinkific.new refuses CR, LF and NUL in base_url", function()
      for _, ch in ipairs(BAD) do
        helper.argerror(1, "new", function()
          thinkific.new{ api_key = SECRET, base_url = sb.url .. ch .. "X-Evil: 1" }
        end)
      end
    end)

    it("accepts clean values in every one of them", function()
      local c = assert(thinkific.new{ access_token = SECRET, subdomain = "acme-school",
        user_agent = "my-app/1.0 (+https://example.com)", base_url = sb.url })
      assert(c:list_webhooks())
      c:close()
    end)
  end)

  describe("the credential is never shown #memory", function()
    it("not in 401 errors (wrong key), with api_key or access_token", function()
      for _, field in ipairs{ "api_key", "access_token" } do
        local c = assert(thinkific.new{ [field] = OTHER, base_url = sb.url, retries = 0 })
        local _, err = c:list_webhooks()
        assert.are.equal(401, err.status)
        assert_no_secret(OTHER, err, "401 via " .. field)
        assert.is_nil(tostring(c):find(OTHER, 1, true))
      end
    end)

    it("not in 404, 422, 429, 5xx, decode and limit errors", function()
      local c = helper.client(sb, { retries = 0, max_response_size = 2000 })
      local _, err = c:get_webhook("missing")
      assert.are.equal(404, err.status)
      assert_no_secret(SECRET, err, "404")
      _, err = c:create_webhook{ topic = "nope", target_url = "x" }
      assert.are.equal(422, err.status)
      assert_no_secret(SECRET, err, "422")
      assert(sb:fault{ path = "/api/v2/webhooks", status = 429, headers = { ["Retry-After"] = "1" } })
      _, err = c:list_webhooks()
      assert.are.equal(429, err.status)
      assert_no_secret(SECRET, err, "429")
      assert(sb:fault{ path = "/api/v2/webhooks", status = 502, body = "<html>bad gateway</html>" })
      _, err = c:list_webhooks()
      assert.are.equal(502, err.status)
      assert_no_secret(SECRET, err, "502")
      assert(sb:fault{ path = "/api/v2/webhooks", status = 200, body = "{not json" })
      _, err = c:list_webhooks()
      assert.are.equal("decode", err.kind)
      assert_no_secret(SECRET, err, "decode")
      assert(sb:fault{ path = "/api/v2/webhooks", status = 200, body = ("x"):rep(5000) })
      _, err = c:list_webhooks()
      assert.are.equal("limit", err.kind)
      assert_no_secret(SECRET, err, "limit")
    end)

    it("not in network errors (dropped, refused)", function()
      local c = helper.client(sb, { retries = 0 })
      assert(sb:fault{ path = "/api/v2/webhooks", drop = true })
      local _, err = c:list_webhooks()
      assert.are.equal("network", err.kind)
      assert_no_secret(SECRET, err, "dropped")
      local refused = assert(thinkific.new{ api_key = SECRET, retries = 1, sleep = function() end,
        base_url = "http://127.0.0.1:" .. helper.closed_port() .. "/api/v2" })
      _, err = refused:create_webhook{ topic = "order.created", target_url = "https://e.com/" }
      assert.are.equal(false, err.sent)
      assert_no_secret(SECRET, err, "refused")
    end)

    it("not in raised errors", function()
      local c = helper.client(sb)
      local raisers = {
        function() c:get_webhook(1.5) end,
        function() c:create_webhook{ topic = "order.created" } end,
        function() c:list_webhooks{ limit = 0 } end,
        function() c.get_event("1") end,
        function() thinkific.new{ api_key = SECRET, timeout = "slow" } end,
        function() thinkific.new{ api_key = SECRET, access_token = SECRET } end,
        function() thinkific.new{ api_key = SECRET, base_url = "gopher://x" } end,
        function() thinkific.new{ api_key = SECRET, unknown = SECRET:upper() } end,
      }
      for i, f in ipairs(raisers) do
        local ok, msg = pcall(f)
        assert.is_false(ok, "raiser " .. i)
        assert.is_nil(tostring(msg):find(SECRET, 1, true), tostring(msg))
      end
      c:close()
      local ok, msg = pcall(c.list_webhooks, c)
      assert.is_false(ok)
      assert.is_nil(tostring(msg):find(SECRET, 1, true), tostring(msg))
    end)

    it("not in tostring(client), open or closed", function()
      local c = helper.client(sb)
      assert.is_nil(tostring(c):find(SECRET, 1, true))
      c:close()
      assert.is_nil(tostring(c):find(SECRET, 1, true))
    end)

    it("a password in base_url is not in tostring(client)", function()
      local c = thinkific.new{ api_key = "k", base_url = "https://user:pw-" .. SECRET
        .. "@api.example.com/api/v2" }
      local text = tostring(c)
      assert.is_nil(text:find(SECRET, 1, true), text)
      assert.truthy(text:find("https://api.example.com/api/v2", 1, true), text)
      c:close()
    end)
  end)

  describe("the credential is never shown, timeouts", function()
    it("not in timeout errors", function()
      local c = helper.client(sb, { retries = 0, timeout = 0.5 })
      assert(sb:fault{ path = "/api/v2/webhooks", delay_ms = 3000, status = 503 })
      local _, err = c:list_webhooks()
      assert.are.equal("timeout", err.kind)
      assert_no_secret(SECRET, err, "timeout")
    end)
  end)
end)
