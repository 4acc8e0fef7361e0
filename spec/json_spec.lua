-- thinkific.decode / thinkific.encode: the number rule, the null sentinel, the depth limit.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local cjson = require("cjson")

describe("JSON #memory", function()
  describe("decode", function()
    it("gives the integer 5000 for 5000, 5000.0 and 5e3", function()
      for _, text in ipairs{ "5000", "5000.0", "5e3", "5.0e3", "50000e-1" } do
        local v = assert(thinkific.decode(text))
        assert.are.equal("integer", helper.number_type(v), text)
        assert.are.equal(5000, v, text)
      end
    end)

    it("keeps non-integral numbers as floats", function()
      assert.are.equal("float", helper.number_type(thinkific.decode("0.5")))
      assert.are.equal(0.5, thinkific.decode("0.5"))
      assert.are.equal(-1.25, thinkific.decode("[-1.25]")[1])
    end)

    it("makes integers only within +-2^53; beyond, the nearest float #lua54", function()
      local exact = thinkific.decode("9007199254740991")
      assert.are.equal("integer", math.type(exact))
      assert.are.equal(9007199254740991, exact)
      local beyond = thinkific.decode("9007199254740993")
      assert.are.equal("float", math.type(beyond))
      assert.are.equal(9007199254740992.0, beyond)
      assert.are.equal("integer", math.type(thinkific.decode("-9007199254740991")))
      assert.are.equal("float", math.type(thinkific.decode("1e300")))
    end)

    it("gives the exact value up to 2^53 and the nearest double beyond", function()
      assert.are.equal(9007199254740991, thinkific.decode("9007199254740991"))
      assert.are.equal(-9007199254740991, thinkific.decode("-9007199254740991"))
      assert.are.equal(2 ^ 53, thinkific.decode("9007199254740993"))
      assert.are.equal(1e300, thinkific.decode("1e300"))
      assert.are.equal("9007199254740991", thinkific.encode(thinkific.decode("9007199254740991")))
    end)

    it("converts numbers at every depth, in arrays and objects", function()
      local v = assert(thinkific.decode('{"a":[1,{"b":[2.0,{"c":3e0}]}],"d":{"e":4}}'))
      assert.are.equal("integer", helper.number_type(v.a[1]))
      assert.are.equal("integer", helper.number_type(v.a[2].b[1]))
      assert.are.equal("integer", helper.number_type(v.a[2].b[2].c))
      assert.are.equal("integer", helper.number_type(v.d.e))
    end)

    it("keeps keys with null values visible as thinkific.null", function()
      local v = assert(thinkific.decode('{"coupon":null,"list":[null,1]}'))
      assert.are.equal(thinkific.null, v.coupon)
      assert.are.equal(cjson.null, thinkific.null)
      assert.are.equal(thinkific.null, v.list[1])
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "coupon", "list" }, keys)
    end)

    it("accepts 1000 levels of nesting and refuses 1001", function()
      assert.is_table(thinkific.decode(("["):rep(1000) .. ("]"):rep(1000)))
      local v, err = thinkific.decode(("["):rep(1001) .. ("]"):rep(1001))
      assert.is_nil(v)
      assert.are.equal("decode", err.kind)
      assert.truthy(tostring(err):find("nested", 1, true))
    end)

    it("refuses very deep nesting without a crash", function()
      local v, err = thinkific.decode(("[{\"a\":"):rep(50000))
      assert.is_nil(v)
      assert.are.equal("decode", err.kind)
    end)

    it("returns nil, err for text that is not JSON", function()
      for _, text in ipairs{ "", "{", "[1,]", "{'a':1}", "NaN", "Infinity", "0x10", "1 2", "nul" } do
        local v, err = thinkific.decode(text)
        assert.is_nil(v, text)
        assert.are.equal("decode", err.kind, text)
        assert.is_string(err.message)
        assert.is_string(tostring(err))
      end
    end)

    it("raises for a non-string argument", function()
      assert.has_error(function() thinkific.decode({}) end)
      assert.has_error(function() thinkific.decode() end)
    end)

    it("decodes the sample payloads with Thinkific's types", function()
      local order = assert(thinkific.decode(helper.fixture("payloads/order.created.json")))
      assert.are.equal("string", type(order.id))
      assert.are.equal("20180126172320940835610", order.id)
      assert.are.equal("string", type(order.tenant_id))
      assert.are.equal("integer", helper.number_type(order.payload.amount_cents))
      assert.are.equal(5000, order.payload.amount_cents)
      assert.are.equal("integer", helper.number_type(order.payload.amount_dollars))
      assert.are.equal("integer", helper.number_type(order.payload.id))
      assert.are.equal("integer", helper.number_type(order.payload.user.id))
      assert.are.equal("integer", helper.number_type(order.payload.items[1].amount_cents))
      assert.are.equal(thinkific.null, order.payload.affiliate_referral_code)

      local enrollment = assert(thinkific.decode(helper.fixture("payloads/enrollment.created.json")))
      assert.are.equal("0.0", enrollment.payload.percentage_completed)
      assert.are.equal(thinkific.null, enrollment.payload.completed_at)
      assert.are.equal(thinkific.null, enrollment.payload.expiry_date)
      assert.are.equal("integer", helper.number_type(enrollment.payload.course_id))
      assert.is_false(enrollment.payload.free_trial)

      local variant = assert(thinkific.decode(
        helper.fixture("payloads/variants/order.created.2018-help-center.json")))
      assert.are.equal(thinkific.null, variant.payload.coupon)
    end)

    it("decodes every sample payload and API example", function()
      local names = {
        "payloads/enrollment.progress.json", "payloads/lesson.completed.json",
        "payloads/quiz.attempted.json", "payloads/user.signin.json", "payloads/user.signup.json",
        "payloads/variants/enrollment.created.gist-2019.json",
        "api-examples/webhooks_list_200.json", "api-examples/webhook_create_201.json",
      }
      for _, name in ipairs(names) do
        local v, err = thinkific.decode(helper.fixture(name))
        assert.is_table(v, name .. ": " .. tostring(err))
      end
    end)
  end)

  describe("encode", function()
    it("writes integers exactly, never in exponent form", function()
      assert.are.equal("123456789012345", thinkific.encode(123456789012345))
      assert.are.equal("[9007199254740992,-42,0]", thinkific.encode({ 9007199254740992, -42, 0 }))
      assert.are.equal("5000", thinkific.encode(5000.0))
    end)

    it("writes math.maxinteger exactly #lua54", function()
      assert.are.equal("9223372036854775807", thinkific.encode(math.maxinteger))
      assert.are.equal("-9223372036854775808", thinkific.encode(math.mininteger))
    end)

    it("round-trips 123456789012345 and the sample payloads", function()
      local v = assert(thinkific.decode(assert(thinkific.encode({ n = 123456789012345 }))))
      assert.are.equal(123456789012345, v.n)
      assert.are.equal("integer", helper.number_type(v.n))
      for _, name in ipairs{ "payloads/order.created.json", "payloads/enrollment.created.json" } do
        local original = assert(thinkific.decode(helper.fixture(name)))
        local again = assert(thinkific.decode(assert(thinkific.encode(original))))
        assert.are.same(original, again)
      end
    end)

    it("writes floats so that they read back the same", function()
      for _, x in ipairs{ 0.1, 0.5, 1 / 3, 2.5e-300, 1e300, -123.456 } do
        assert.are.equal(x, thinkific.decode(thinkific.encode(x)))
      end
    end)

    it("escapes strings", function()
      assert.are.equal('"a\\"b\\\\c\\n\\t\\u0001/é"', thinkific.encode('a"b\\c\n\t\1/é'))
    end)

    it("writes null, booleans, objects and arrays", function()
      assert.are.equal("null", thinkific.encode(thinkific.null))
      assert.are.equal("[true,false,null]", thinkific.encode({ true, false, thinkific.null }))
      assert.are.equal('{"a":{"b":[]}}', thinkific.encode({ a = { b = thinkific.array() } }))
      assert.are.equal("{}", thinkific.encode({}))
    end)

    it("returns nil, err for what JSON cannot hold", function()
      local cycle = {}
      cycle[1] = cycle
      for _, bad in ipairs{ { print }, { 1, nil, 3 }, { [1] = 1, a = 2 }, { [0.5] = 1 },
                            cycle, { 0 / 0 }, { math.huge } } do
        local text, err = thinkific.encode(bad)
        assert.is_nil(text)
        assert.are.equal("encode", err.kind)
      end
    end)
  end)
end)
