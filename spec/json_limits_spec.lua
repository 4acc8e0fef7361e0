-- The JSON limits that must hold both ways and whatever the input's accidents: encode refuses
-- what decode would refuse (nesting deeper than 1000 levels), a sparse array is refused
-- however its table was built (never cut at whichever border # finds), and decoding reads
-- the whole text: bytes after a NUL are not ignored, in thinkific.decode, in the client's
-- answers and in the router; a number beyond a double's range (1e400: infinity, which JSON has
-- no word for and encode refuses) is refused by decode, by the client and by the router.
local helper = require("spec.helper")
local thinkific = require("thinkific")

-- n levels of nesting: {{...}} (arrays) or {a = {a = ...}} (objects), and the same as text.
local function nested(n, object)
  local root = {}
  local t = root
  for _ = 2, n do
    local inner = {}
    if object then t.a = inner else t[1] = inner end
    t = inner
  end
  if object then return root, ('{"a":'):rep(n - 1) .. "{}" .. ("}"):rep(n - 1) end
  return root, ("["):rep(n - 1) .. "{}" .. ("]"):rep(n - 1)
end

describe("JSON limits #memory", function()
  describe("the depth limit, the same both ways", function()
    for _, object in ipairs{ false, true } do
      local what = object and "objects" or "arrays"
      it("encode writes 1000 levels of " .. what .. " and refuses 1001, as decode does", function()
        local deepest, text = nested(1000, object)
        assert.are.equal(text, assert(thinkific.encode(deepest)))
        assert.is_table(assert(thinkific.decode(text)))

        local deeper, deeper_text = nested(1001, object)
        local out, err = thinkific.encode(deeper)
        assert.is_nil(out)
        assert.are.equal("encode", err.kind)
        assert.matches("deeper than 1000 levels", err.message)
        assert.is_nil((thinkific.decode(deeper_text)))
      end)
    end
  end)

  describe("sparse arrays", function()
    -- The same keys (2, 3, 4, 100), and other holes, reached in different orders: some give
    -- # (and lua_rawlen) the border 4, with 4 keys, which once encoded as [null,2,3,4].
    local SPARSE = {
      ["{[2]=2,[3]=3,[4]=4,[100]=5}"] = function() return { [2] = 2, [3] = 3, [4] = 4, [100] = 5 } end,
      ["{nil,2,3,4} then [100]"] = function()
        local t = { nil, 2, 3, 4 }
        t[100] = 5
        return t
      end,
      ["{1,2,3,4}, [100] set, [1] cleared"] = function()
        local t = { 1, 2, 3, 4 }
        t[100] = 5
        t[1] = nil
        return t
      end,
      ["assigned 2, 3, 4, 100"] = function()
        local t = {}
        for _, k in ipairs{ 2, 3, 4, 100 } do t[k] = k end
        return t
      end,
      ["assigned 100, 4, 3, 2"] = function()
        local t = {}
        for _, k in ipairs{ 100, 4, 3, 2 } do t[k] = k end
        return t
      end,
      ["a hole in the middle"] = function()
        local t = { 1, 2, 3, 4, 5 }
        t[3] = nil
        return t
      end,
      ["1..3 and 5"] = function() return { 1, 2, 3, [5] = 5 } end,
      ["marked, with a hole"] = function() return thinkific.array{ [1] = 1, [3] = 3 } end,
      ["marked, {1, nil, 3}"] = function() return thinkific.array{ 1, nil, 3 } end,
      ["marked, with a string key"] = function() return thinkific.array{ 1, x = 2 } end,
      ["index 0"] = function() return { [0] = 0, 1 } end,
    }
    for name, make in pairs(SPARSE) do
      it("refuses " .. name, function()
        local text, err = thinkific.encode(make())
        assert.is_nil(text)
        assert.are.equal("encode", err.kind)
        assert.matches("sparse array", err.message)
      end)
    end

    it("writes arrays whatever the order their keys were set in", function()
      local down = {}
      for i = 5, 1, -1 do down[i] = i end
      assert.are.equal("[1,2,3,4,5]", thinkific.encode(down))
      local filled = { nil, nil, 3 }
      filled[1], filled[2] = 1, 2
      assert.are.equal("[1,2,3]", thinkific.encode(filled))
      assert.are.equal("[]", thinkific.encode(thinkific.array()))
      assert.are.equal("[1,2]", thinkific.encode(thinkific.array{ 1, 2 }))
      assert.are.equal("{}", thinkific.encode({}))
    end)
  end)

  describe("the whole text is decoded", function()
    it("refuses bytes after a NUL, and a NUL after the value", function()
      for _, text in ipairs{ '{"a":1}\0xyz', '{"a":1}\0', '{"a":1} \0 ', '[1]\0]', '"s"\0' } do
        local v, err = thinkific.decode(text)
        assert.is_nil(v, text)
        assert.are.equal("decode", err.kind)
        assert.matches("NUL byte at character %d+$", err.message)
      end
      assert.is_nil((thinkific.decode("1\0"))) -- cjson: "does not support UTF-16 or UTF-32"
      local _, err = thinkific.decode('{"a":1}\0xyz')
      assert.are.equal("Expected the end but found a NUL byte at character 8", err.message)
    end)

    it("accepts whitespace after the value", function()
      assert.are.same({ a = 1 }, assert(thinkific.decode('{"a":1} \n\t\r ')))
    end)

    describe("in the client's answers", function()
      local sb
      helper.with_sandbox(function(s) sb = s end)

      it("a 200 answer of JSON, a NUL and garbage: kind decode", function()
        local body = '{"id":"1","topic":"order.created","target_url":"https://example.com/h"}'
        assert(sb:fault{ path = "/api/v2/webhooks/1", status = 200, body = body .. "\0garbage" })
        local c = helper.client(sb)
        local v, err = c:get_webhook("1")
        c:close()
        assert.is_nil(v)
        assert.are.same({ "decode", 200 }, { err.kind, err.status })
        assert.matches("NUL byte at character " .. (#body + 1), err.message)
      end)
    end)

    it("in the router: a signed body, a NUL and garbage, signed as a whole, gets 400", function()
      local secret = "json-limits-secret"
      local router = thinkific.router{ secret = secret }
      local calls = 0
      router:on("*", function() calls = calls + 1 end)
      local body = assert(thinkific.encode{ id = "1", resource = "order", action = "created",
        tenant_id = "3", created_at = "2024-01-01T00:00:00Z", payload = { id = 1 } })
      local function handle(raw)
        return router:handle(raw, { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(raw, secret) })
      end
      assert.are.equal(400, (handle(body .. "\0garbage")))
      assert.are.equal(400, (handle(body .. "\0")))
      assert.are.equal(0, calls)
      assert.are.equal(200, (handle(body .. "\r\n")))
      assert.are.equal(1, calls)
    end)
  end)

  describe("numbers beyond a double's range", function()
    local TEXTS = { "1e400", "-1e400", "[1,1e400]", '{"a":{"b":[-1e400]}}', '{"n":1E+999}' }
    local sb
    helper.with_sandbox(function(s) sb = s end)

    it("decode refuses them, at the top and nested", function()
      for _, text in ipairs(TEXTS) do
        local v, err = thinkific.decode(text)
        assert.is_nil(v, text)
        assert.are.equal("decode", err.kind)
        assert.matches("beyond the range of a double", err.message)
      end
      -- the largest double, and a number that underflows to 0, are numbers
      assert.are.equal(1.7976931348623157e308, thinkific.decode("1.7976931348623157e308"))
      assert.are.same({ 0.0 }, thinkific.decode("[1e-400]"))
    end)

    it("the client: a 200 answer with 1e400 is kind decode", function()
      assert(sb:fault{ path = "/api/v2/webhooks/1", status = 200,
        body = '{"id":"1","topic":"order.created","target_url":"https://example.com/h","n":1e400}' })
      local c = helper.client(sb)
      local v, err = c:get_webhook("1")
      c:close()
      assert.is_nil(v)
      assert.are.same({ "decode", 200 }, { err.kind, err.status })
      assert.matches("beyond the range of a double", err.message)
    end)

    it("the router: a correctly signed body with 1e400 gets 400", function()
      local secret = "json-limits-secret"
      local router = thinkific.router{ secret = secret }
      local calls = 0
      router:on("*", function() calls = calls + 1 end)
      local body = '{"id":"1","resource":"order","action":"created","tenant_id":"3",'
        .. '"created_at":"2024-01-01T00:00:00Z","payload":{"id":1,"total":%s}}'
      local function handle(raw)
        return router:handle(raw, { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(raw, secret) })
      end
      assert.are.equal(400, (handle(body:format("1e400"))))
      assert.are.equal(0, calls)
      assert.are.equal(200, (handle(body:format("1e300"))))
      assert.are.equal(1, calls)
    end)
  end)
end)
