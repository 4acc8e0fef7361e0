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

  -- The cache of keyed contexts is per Lua state, and this one's is full after the test above:
  -- a fresh Lua 5.4 state does the signing. A cached secret's context stays in the Lua heap
  -- after a full collection (only the first sign adds it); an uncached one leaves nothing.
  -- Any string may be a secret: "n" once shared its slot with the cache's count, so that
  -- secret was never cached and 64 signs with it stopped the caching of every new secret.
  it("cache any secret, \"n\" too, and keep caching new ones after many signs with it", function()
    local script = [[
      local sign = require("thinkific.core").sign
      local function kept(secret) -- bytes still held after 10 signs and a full collection
        collectgarbage(); collectgarbage()
        local before = collectgarbage("count")
        for _ = 1, 10 do sign("body", secret) end
        collectgarbage(); collectgarbage()
        return math.floor((collectgarbage("count") - before) * 1024)
      end
      kept("other")
      local out = { kept("n"), kept("n") }
      for _ = 1, 70 do sign("body", "n") end
      out[3], out[4] = kept("fresh"), kept("fresh")
      print(table.concat(out, " "))
    ]]
    local quote = require("thinkific.sandbox.process").quote
    local path, cpath = helper.lua54_paths()
    local out, status = helper.capture(("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s lua5.4 -e %s"):format(
      quote(path), quote(cpath), quote(script)))
    assert.are.equal(0, status, out)
    local n1, n2, fresh1, fresh2 = out:match("^(%d+) (%d+) (%d+) (%d+)\n$")
    assert.is_truthy(n1, out)
    assert.is_true(tonumber(n1) > 0, "secret \"n\" not cached: " .. out)
    assert.are.equal("0", n2, "secret \"n\" cached again: " .. out)
    assert.is_true(tonumber(fresh1) > 0, "a new secret not cached after signs with \"n\": " .. out)
    assert.are.equal("0", fresh2, out)
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
