-- thinkific.sign / thinkific.verify: HMAC-SHA256 over the raw bytes, as Thinkific signs.
local helper = require("spec.helper")
local thinkific = require("thinkific")

local VECTOR = "13bf8ff23844dbfb9e7e50333519b91cafa8ed20af2736b37425ba32a65f9ad1"

local function openssl_hmac(path, key)
  local p = assert(io.popen(("openssl dgst -sha256 -hmac '%s' '%s'"):format(key, path)))
  local out = p:read("a")
  p:close()
  return out:match("([0-9a-f]+)%s*$")
end

describe("signatures #memory", function()
  it("match Thinkific's test vector", function()
    assert.are.equal(VECTOR, thinkific.sign('{"id":"1"}', "my-api-key"))
  end)

  it("match openssl dgst -sha256 -hmac on every sample payload", function()
    for _, name in ipairs{ "order.created", "enrollment.created", "enrollment.progress",
                           "lesson.completed", "quiz.attempted", "user.signin", "user.signup" } do
      local path = helper.fixtures .. "/payloads/" .. name .. ".json"
      local want = openssl_hmac(path, "sandbox-key")
      assert.are.equal(64, #want, name)
      assert.are.equal(want, thinkific.sign(helper.read(path), "sandbox-key"), name)
    end
  end)

  it("stay right across many secrets, cached and past the cache", function()
    local path = helper.fixtures .. "/payloads/order.created.json"
    local body = helper.read(path)
    local first = {}
    for i = 1, 100 do first[i] = thinkific.sign(body, "secret-" .. i) end
    for _, i in ipairs{ 1, 2, 64, 65, 100 } do
      assert.are.equal(openssl_hmac(path, "secret-" .. i), first[i], i)
    end
    for i = 100, 1, -1 do -- again, interleaved with other bodies
      assert.are.equal(first[i], thinkific.sign(body, "secret-" .. i), i)
      assert.are_not.equal(first[i], thinkific.sign(body .. " ", "secret-" .. i), i)
      assert.is_true(thinkific.verify(body, first[i], { "other", "secret-" .. i }), i)
    end
  end)

  it("sign bodies with NUL bytes and empty bodies", function()
    assert.are.equal(64, #thinkific.sign("", "k"))
    assert.are_not.equal(thinkific.sign("a\0b", "k"), thinkific.sign("a\0c", "k"))
  end)

  it("verify lowercase and upper-case hex", function()
    assert.is_true(thinkific.verify('{"id":"1"}', VECTOR, "my-api-key"))
    assert.is_true(thinkific.verify('{"id":"1"}', VECTOR:upper(), "my-api-key"))
  end)

  it("refuse a tampered body, a wrong secret, a wrong length, non-hex, nil", function()
    local body = '{"id":"1"}'
    assert.is_false(thinkific.verify('{"id":"2"}', VECTOR, "my-api-key"))
    assert.is_false(thinkific.verify(body, VECTOR, "other-key"))
    assert.is_false(thinkific.verify(body, VECTOR:sub(1, 63), "my-api-key"))
    assert.is_false(thinkific.verify(body, VECTOR .. "0", "my-api-key"))
    assert.is_false(thinkific.verify(body, VECTOR:sub(1, 62) .. "zz", "my-api-key"))
    assert.is_false(thinkific.verify(body, "", "my-api-key"))
    assert.is_false(thinkific.verify(body, nil, "my-api-key"))
  end)

  it("accept any of several secrets (rotation)", function()
    local body = '{"id":"1"}'
    assert.is_true(thinkific.verify(body, VECTOR, { "new-key", "my-api-key" }))
    assert.is_true(thinkific.verify(body, VECTOR, { "my-api-key", "old-key" }))
    assert.is_false(thinkific.verify(body, VECTOR, { "new-key", "old-key" }))
  end)

  it("raise for programming mistakes", function()
    assert.has_error(function() thinkific.sign({}, "k") end)
    assert.has_error(function() thinkific.sign("body", "") end)
    assert.has_error(function() thinkific.sign("body") end)
    assert.has_error(function() thinkific.verify("body", VECTOR, {}) end)
    assert.has_error(function() thinkific.verify("body", VECTOR, { "ok", 42 }) end)
    assert.has_error(function() thinkific.verify("body", VECTOR) end)
    assert.has_error(function() thinkific.verify("body", 42, "k") end)
  end)

  it("never show the secret in an error", function()
    local ok, err = pcall(thinkific.verify, "body", VECTOR, { "sk_secret_value", 42 })
    assert.is_false(ok)
    assert.is_nil(tostring(err):find("sk_secret_value", 1, true))
  end)
end)
