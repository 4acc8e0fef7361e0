-- thinkific.integer, the integer rule in Lua (src/number.c is C's): which numbers stand for
-- integers, which values are ids, and every digit of an id written out.
local integer = require("thinkific.integer")

describe("thinkific.integer", function()
  it("writes an id with every digit, where tostring would not", function()
    assert.are.equal("20180126172320940835610", integer.id_text("20180126172320940835610"))
    assert.are.equal("", integer.id_text(""))
    -- 16 digits: LuaJIT's tostring gives 1.2345678901235e+15, Lua 5.4's a float "...0.0".
    assert.are.equal("1234567890123456", integer.id_text(1234567890123456))
    assert.are.equal("1234567890123456", integer.id_text(1234567890123456.0))
    assert.are.equal("9007199254740992", integer.id_text(2 ^ 53))
    assert.are.equal("-9007199254740992", integer.id_text(-2 ^ 53))
    assert.are.equal("0", integer.id_text(0))
  end)

  it("has no text for what is no id", function()
    for _, v in ipairs{ 1.5, 2 ^ 54, -2 ^ 54, math.huge, -math.huge, 0 / 0, true, {} } do
      assert.is_nil(integer.id_text(v), tostring(v))
    end
    assert.is_nil(integer.id_text(nil))
  end)

  it("takes non-empty strings and integers as ids", function()
    assert.is_true(integer.is_id("x"))
    assert.is_true(integer.is_id(7))
    assert.is_false(integer.is_id(""))
    assert.is_false(integer.is_id(7.5))
    assert.is_false(integer.is_id(nil))
    assert.is_false(integer.is_id({}))
  end)

  it("takes integers as integers: Lua 5.4's subtype, LuaJIT's whole numbers within +-2^53", function()
    assert.is_true(integer.is_integer(5))
    assert.is_true(integer.is_integer(-5))
    assert.is_false(integer.is_integer(5.5))
    assert.is_false(integer.is_integer(math.huge))
    assert.is_false(integer.is_integer("5"))
    if math.type then
      assert.is_true(integer.is_integer(math.maxinteger))
      assert.is_false(integer.is_integer(5.0))
      assert.are.equal(tostring(math.maxinteger), integer.id_text(math.maxinteger))
    else
      assert.is_true(integer.is_integer(2 ^ 53))
      assert.is_false(integer.is_integer(2 ^ 53 + 2))
    end
  end)
end)
