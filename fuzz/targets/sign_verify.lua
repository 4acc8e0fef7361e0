-- sign_verify: fields body, secret, a second secret and a claimed signature (fuzz.input's
-- separator). sign gives 64 lowercase hex digits that verify accepts, in any case and among
-- other secrets; a changed digit, another secret or the claimed text (unless it is the right
-- one) is refused. Every secret seen fills the core's cache of keyed contexts, so runs past the
-- 64th take the one-shot HMAC() path too.
local core = require("thinkific.core")
local expect = require("fuzz.expect")
local input = require("fuzz.input")

-- HMAC pads a key of up to 64 bytes with NULs: "k" and "k\0" are the same key.
local function same_key(a, b)
  if #a > 64 or #b > 64 then return a == b end
  return a:gsub("%z+$", "") == b:gsub("%z+$", "")
end

local function raises(f, ...)
  local ok, err = pcall(f, ...)
  if ok then expect.fail("an empty secret was accepted") end
  if not tostring(err):find("secret", 1, true) then expect.fail("unexpected error: %s", tostring(err)) end
end

return function(bytes)
  local f = input.fields(bytes, 4)
  local body, secret, other, claimed = f[1], f[2], f[3], f[4]
  if secret == "" then
    raises(core.sign, body, secret)
    raises(core.verify, body, claimed, secret)
    return
  end
  local sig = core.sign(body, secret)
  if type(sig) ~= "string" or not sig:find("^[0-9a-f]+$") or #sig ~= 64 then
    expect.fail("sign gave %q", tostring(sig))
  end
  if core.verify(body, sig, secret) ~= true then expect.fail("verify refused sign's output") end
  if core.verify(body, sig:upper(), secret) ~= true then expect.fail("verify refused upper case") end
  local flipped = (sig:sub(1, 1) == "0" and "1" or "0") .. sig:sub(2)
  if core.verify(body, flipped, secret) ~= false then expect.fail("verify accepted a changed digit") end
  if other ~= "" then
    if core.verify(body, sig, { other, secret }) ~= true then
      expect.fail("verify refused the right secret second in a list")
    end
    if not same_key(other, secret) and core.verify(body, sig, other) ~= false then
      expect.fail("verify accepted another secret")
    end
  end
  if core.verify(body, claimed, secret) ~= (claimed:lower() == sig) then
    expect.fail("verify's answer for the claimed signature %q is wrong", claimed)
  end
  if core.verify(body, nil, secret) ~= false then expect.fail("verify accepted no signature") end
end
