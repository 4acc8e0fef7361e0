-- Numbers beyond what a C integer holds (1e300, math.huge, NaN) where the C core turns a Lua
-- number into one: checked before the conversion, which is undefined behaviour out of range
-- (make asan fails on it: -fsanitize=float-cast-overflow), and each gets the answer it means.
local helper = require("spec.helper")
local core = require("thinkific.core")
local thinkific = require("thinkific")

local HUGE = { 1e300, math.huge }

describe("numbers beyond a C integer's range #memory", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  it("a transport's status of 1e300, -1e300, math.huge, NaN or 200.5 is refused", function()
    for _, status in ipairs{ 1e300, -1e300, math.huge, -math.huge, 0 / 0, 200.5, 99, 600 } do
      local c = thinkific.new{ api_key = "k", retries = 0,
        transport = function() return { status = status, headers = {}, body = "{}" } end }
      local ok, err = pcall(c.get_webhook, c, "1")
      c:close()
      assert.is_false(ok, tostring(status))
      assert.matches("without a valid status", err)
    end
  end)

  it("max_response_size and timeout of 1e300 or math.huge: no limit, the call answers", function()
    for _, n in ipairs(HUGE) do
      local c = helper.client(sb, { max_response_size = n, timeout = n, connect_timeout = n })
      assert.are.same({}, assert(c:list_webhooks()).items)
      c:close()
    end
  end)

  it("core.send with max_response_size and timeout of 1e300 or math.huge", function()
    for _, n in ipairs(HUGE) do
      local status, _, body = core.send{ method = "GET", url = sb.url .. "/webhooks", timeout = n,
        connect_timeout = n, max_response_size = n }
      assert.are.equal(401, status, body)
    end
  end)

  it("tostring(err) shows attempts only for a count it can print", function()
    local function shown(attempts)
      return tostring(core.error{ kind = "http", status = 500, message = "m", attempts = attempts })
    end
    assert.are.equal("m (http 500, 3 attempts)", shown(3))
    for _, attempts in ipairs{ 1e300, math.huge, -1e300, 0 / 0, 1 } do
      assert.are.equal("m (http 500)", shown(attempts), tostring(attempts))
    end
  end)
end)
