-- The C core reads Lua strings by their length: a NUL byte (a server's "\u0000" decodes to one,
-- a header may carry one) ends nothing, so the text after it is neither lost nor ignored.
local core = require("thinkific.core")

-- The error of a 429 answer with these headers.
local function answer_429(headers)
  local v, err = core.response({ status = 429, headers = headers, body = "" }, "GET", "/webhooks")
  assert.is_nil(v)
  return err
end

describe("NUL bytes in the C core #memory", function()
  it("tostring(err) keeps the bytes after a NUL in every field it shows", function()
    local err = core.error{ kind = "ht\0tp", status = 403, method = "G\0ET", path = "/a\0b",
      message = "denied\0 for a reason", attempts = 3 }
    assert.are.equal("G\0ET /a\0b: denied\0 for a reason (ht\0tp 403, 3 attempts)", tostring(err))
  end)

  it("tostring(err) keeps a server's \\u0000 in its error text", function()
    local v, err = core.response({ status = 403, headers = {},
      body = '{"error":"Access token has insufficie\\u0000nt scope"}' }, "GET", "/webhooks")
    assert.is_nil(v)
    assert.are.equal("Access token has insufficie\0nt scope", err.message)
    assert.are.equal("GET /webhooks: Access token has insufficie\0nt scope (http 403)", tostring(err))
  end)

  it("a Retry-After value is all of its bytes, a finite number of seconds", function()
    assert.are.equal(5, answer_429{ ["retry-after"] = "5" }.retry_after)
    for _, bad in ipairs{ "5\0junk", "5\0", "inf", "-inf", "nan", "1e400" } do
      assert.is_nil(answer_429{ ["retry-after"] = bad }.retry_after, ("%q"):format(bad))
    end
    -- one that is not a number leaves RateLimit-Reset to say (3000 ms)
    assert.are.equal(3, answer_429{ ["retry-after"] = "nan", ["ratelimit-reset"] = "3000" }.retry_after)
    assert.is_nil(answer_429{ ["ratelimit-reset"] = "3000\0" }.retry_after)
  end)

  it("a header's name is all of its bytes", function()
    assert.is_nil(answer_429{ ["retry-after\0x"] = "9" }.retry_after)
    assert.are.equal(9, answer_429{ ["Retry-After"] = "9" }.retry_after)
  end)

  it("422 fields are ordered by all of their bytes, whatever the object's order", function()
    for _, body in ipairs{ '{"errors":{"a\\u0000z":"m1","a\\u0000b":"m2","a":"m0"}}',
        '{"errors":{"a\\u0000b":"m2","a\\u0000z":"m1","a":"m0"}}',
        '{"errors":{"a":"m0","a\\u0000z":"m1","a\\u0000b":"m2"}}' } do
      local _, err = core.response({ status = 422, headers = {}, body = body }, "POST", "/webhooks")
      assert.are.equal("a m0; a\0b m2; a\0z m1", err.message)
    end
  end)
end)
