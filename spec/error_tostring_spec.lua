-- tostring(err) copies each field by its length: a Lua string may hold a NUL (a server's
-- "\u0000" in its error text decodes to one), and the text after it is part of the message.
local core = require("thinkific.core")

describe("tostring(err) #memory", function()
  it("keeps the bytes after a NUL in every field it shows", function()
    local err = core.error{ kind = "ht\0tp", status = 403, method = "G\0ET", path = "/a\0b",
      message = "denied\0 for a reason", attempts = 3 }
    assert.are.equal("G\0ET /a\0b: denied\0 for a reason (ht\0tp 403, 3 attempts)", tostring(err))
  end)

  it("keeps a server's \\u0000 in its error text", function()
    local v, err = core.response({ status = 403, headers = {},
      body = '{"error":"Access token has insufficie\\u0000nt scope"}' }, "GET", "/webhooks")
    assert.is_nil(v)
    assert.are.equal("Access token has insufficie\0nt scope", err.message)
    assert.are.equal("GET /webhooks: Access token has insufficie\0nt scope (http 403)", tostring(err))
  end)
end)
