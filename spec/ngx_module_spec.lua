-- thinkific.ngx outside nginx: it loads (for tools and docs); its functions raise with a clear
-- message, and option mistakes are caught before any request. Inside nginx: spec/nginx.
local helper = require("spec.helper")

describe("thinkific.ngx outside nginx", function()
  local tngx = require("thinkific.ngx")

  after_each(function() _G.ngx = nil end)

  it("loads and exports serve, transport, header_filter, store and client", function()
    for _, name in ipairs({ "serve", "transport", "header_filter", "store", "client" }) do
      assert.are.equal("function", type(tngx[name]), name)
    end
  end)

  it("is a facade: each function is the one of its own module under thinkific.ngx", function()
    local home = { serve = "serve", transport = "transport", header_filter = "upstream",
      store = "store", client = "client" }
    for name, module in pairs(home) do
      assert.are.equal(require("thinkific.ngx." .. module)[name], tngx[name], name)
    end
  end)

  it("raises when its functions are called outside nginx", function()
    local router = require("thinkific").router{ secret = "s" }
    for name, call in pairs({
      serve = function() tngx.serve(router) end,
      store = function() tngx.store("d") end,
      client = function() tngx.client{ api_key = "k" } end,
      header_filter = function() tngx.header_filter() end,
      transport = function() tngx.transport()({ method = "GET", url = "http://x/" }) end,
    }) do
      local ok, err = pcall(call)
      assert.is_false(ok, name)
      assert.truthy(tostring(err):find("thinkific.ngx." .. name .. " needs OpenResty", 1, true), err)
    end
  end)

  it("checks the transport's options when it is made", function()
    helper.argerror(1, "transport", function() tngx.transport{ location = "_thinkific" } end)
    helper.argerror(1, "transport", function() tngx.transport{ url = "/x" } end)
    helper.argerror(1, "transport", function() tngx.transport("/_thinkific") end)
    assert.are.equal("function", type(tngx.transport{ location = "/_api" }))
  end)

  it("raises for a serve without a router, and for bad store arguments", function()
    _G.ngx = { req = {}, shared = { d = {} } }
    helper.argerror(1, "serve", function() tngx.serve({}) end)
    helper.argerror(1, "store", function() tngx.store(42) end)
    helper.argerror(2, "store", function() tngx.store("d", { ttl = -1 }) end)
    helper.argerror(2, "store", function() tngx.store("d", { size = 1 }) end)
    local msg = helper.argerror(1, "store", function() tngx.store("missing") end)
    assert.truthy(msg:find("lua_shared_dict missing 10m;", 1, true), msg)
  end)

  it("answers nil, err (not retried) where nginx forbids subrequests", function()
    _G.ngx = { req = {}, get_phase = function() return "timer" end }
    local res, err = tngx.transport()({ method = "GET", url = "http://x/api/v2/webhooks" })
    assert.is_nil(res)
    assert.are.equal("network", err.kind)
    assert.is_false(err.sent)
    assert.is_false(err.retryable)
    assert.truthy(err.message:find("thinkific webhooks sync", 1, true))
  end)

  it("makes thinkific.new wait with ngx.sleep under nginx when a transport is given", function()
    local slept = {}
    _G.ngx = { sleep = function(s) slept[#slept + 1] = s end }
    local calls = 0
    local c = require("thinkific").new{ api_key = "k", retries = 2, max_retry_wait = 0.01,
      transport = function()
        calls = calls + 1
        return { status = 503, headers = {}, body = "" }
      end }
    local v, err = c:get_webhook("1")
    c:close()
    assert.is_nil(v)
    assert.are.equal(503, err.status)
    assert.are.equal(3, calls)
    assert.are.equal(2, #slept)
  end)

  it("gives up at once on a transport error marked retryable = false", function()
    local calls = 0
    local c = require("thinkific").new{ api_key = "k", retries = 3, sleep = function() end,
      transport = function()
        calls = calls + 1
        return nil, { kind = "network", sent = false, retryable = false, message = "no" }
      end }
    local v, err = c:list_webhooks()
    c:close()
    assert.is_nil(v)
    assert.are.equal(1, calls)
    assert.are.equal(1, err.attempts)
  end)
end)
