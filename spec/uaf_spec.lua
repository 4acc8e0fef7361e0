-- Strings the C core reads after converting a number: the converted string must stay on the
-- stack until it is copied. Each case puts that copy where the buffer outgrows its first block
-- (a new block: an allocation, so a collection may run) with the collector in the stress
-- setting; a string freed too early is a heap use-after-free for `make asan` and valgrind, and
-- wrong text otherwise. The lengths around the block size cover every position of the copy.
local helper = require("spec.helper")
local core = require("thinkific.core")

local WEBHOOKS = "/api/v2/webhooks"
local HOOK = { topic = "order.created", target_url = "https://example.com/hook" }
local LENGTHS = { from = 980, to = 1040 }

describe("strings converted from numbers, across a collection #memory", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  it("tostring(err) with a numeric status after a message of any length", function()
    helper.gc_stressed(function()
      for len = LENGTHS.from, LENGTHS.to do
        local message = ("m"):rep(len)
        local err = core.error{ kind = "http", status = 417, method = "GET", path = "/webhooks",
          message = message, attempts = 2 }
        for _ = 1, 3 do
          assert.are.equal("GET /webhooks: " .. message .. " (http 417, 2 attempts)", tostring(err))
        end
      end
    end)
  end)

  it("tostring(err) of a server's 1,001-byte error text with status 417", function()
    local message = ("e"):rep(1001)
    assert(sb:fault{ path = WEBHOOKS, status = 417, body = { error = message } })
    local c = helper.client(sb)
    local v, err = c:list_webhooks()
    c:close()
    assert.is_nil(v)
    assert.are.same({ "http", 417, message }, { err.kind, err.status, err.message })
    helper.gc_stressed(function()
      for _ = 1, 20 do
        assert.are.equal("GET /webhooks: " .. message .. " (http 417)", tostring(err))
      end
    end)
  end)

  -- The numbers' text is made at run time: a string constant of this file such as "54321"
  -- would keep the converted string alive, and hide the bug. core.response is what every
  -- transport's answer goes through.
  it("a 422 whose message is a number, after a field name of any length", function()
    helper.gc_stressed(function()
      for len = LENGTHS.from, LENGTHS.to do
        local field, code = ("f"):rep(len), 50000 + len
        local v, err = core.response({ status = 422, headers = {},
          body = '{"errors":{"' .. field .. '":' .. code .. '}}' }, "POST", "/webhooks")
        assert.is_nil(v)
        assert.are.equal(field .. " " .. code, err.message)
      end
    end)
  end)

  it("a server's 422 {\"errors\":{\"<1,020 x f>\":54321}}", function()
    local field, code = ("f"):rep(1020), 54321
    assert(sb:fault{ path = WEBHOOKS, method = "POST", status = 422,
      body = '{"errors":{"' .. field .. '":' .. code .. '}}' })
    local c = helper.client(sb)
    helper.gc_stressed(function()
      local v, err = c:create_webhook(HOOK)
      assert.is_nil(v)
      assert.are.same({ "http", 422, field .. " " .. code }, { err.kind, err.status, err.message })
      -- The number's text, as for the other shapes: every message is a string.
      assert.are.same({ { field = field, message = tostring(code) } }, err.errors)
    end)
    c:close()
  end)
end)
