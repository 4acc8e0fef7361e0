-- Inside nginx a client must never block a worker: thinkific.new refuses libcurl there.
local thinkific = require("thinkific")

describe("thinkific.new under nginx", function()
  after_each(function() _G.ngx = nil end)

  it("raises without a transport, pointing to thinkific.ngx.transport", function()
    _G.ngx = {}
    local ok, err = pcall(thinkific.new, { api_key = "k" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("thinkific.ngx", 1, true), err)
    assert.truthy(tostring(err):find("bad argument #1 to 'new'", 1, true), err)
    assert.is_nil(tostring(err):find("k'", 1, true))
  end)

  it("accepts a transport, or allow_blocking on purpose", function()
    _G.ngx = {}
    local c1 = thinkific.new{ api_key = "k", transport = function() return nil, "unused" end }
    local c2 = thinkific.new{ api_key = "k", allow_blocking = true }
    assert.are.equal("thinkific.Client", tostring(c1):match("^(%S+)"))
    c1:close()
    c2:close()
  end)

  it("is not in force outside nginx", function()
    assert.is_nil(rawget(_G, "ngx"))
    local c = thinkific.new{ api_key = "k" }
    c:close()
  end)
end)
