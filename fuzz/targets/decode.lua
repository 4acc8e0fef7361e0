-- decode: any bytes to core.decode. A value must be all the input was (no raw NUL, so nothing
-- hidden after one), follow the integer rule, and survive encode -> decode unchanged;
-- anything else is nil, err of kind "decode".
local core = require("thinkific.core")
local expect = require("fuzz.expect")

local KINDS = { decode = true }

-- Lua 5.4: every integral float strictly within +-2^53 was made an integer.
local function check_integers(v)
  if type(v) == "number" then
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
      expect.fail("decode left the integral float %.17g a float", v)
    end
  elseif type(v) == "table" then
    for _, x in pairs(v) do check_integers(x) end
  end
end

return function(input)
  local v, derr = core.decode(input)
  if expect.result(v, derr, KINDS) == nil then return end
  expect.no_nul(input, "decode")
  if math.type then check_integers(v) end
  local text, err = core.encode(v)
  if not text then expect.fail("encode refused a decoded value: %s", tostring(err)) end
  local again, aerr = core.decode(text)
  if again == nil then
    expect.fail("decode refused encode's output %q: %s", text:sub(1, 200), tostring(aerr))
  end
  if not expect.json_equal(v, again) then
    expect.fail("decode(encode(v)) differs from v; encode wrote %q", text:sub(1, 200))
  end
end
