-- router: router:handle(body, headers) as the receiver calls it. Fields: a flags byte, the
-- claimed signature, the X-Thinkific-Topic value, the body. Flags: 1 sign the body with the
-- router's secret (else the claimed text is the signature), 2 send the topic header, 4 spell
-- the names in Title-Case, 8 give each value as a list (OpenResty), 16 upper-case signature,
-- 32 no headers at all. The answer is one of the router's statuses with a JSON body; nothing
-- unsigned gets past 401; a 200 was a whole, valid envelope and its copy is a duplicate.
local thinkific = require("thinkific")
local core = require("thinkific.core")
local expect = require("fuzz.expect")
local input = require("fuzz.input")

local SECRET = "fuzz-secret"
local STATUSES = { [200] = true, [400] = true, [401] = true, [413] = true, [500] = true }

local router = thinkific.router({ secret = SECRET, max_body = 4096, dedupe = 16 })
router:on("*", function(event)
  if type(event.payload) == "table" and event.payload.fail == true then error("told to fail") end
end)
router:on("order.*", { ["user.email"] = "a@b.c" }, function() end)
router:on_error(function(err) return tostring(err) end)

local function headers_of(flags, signature, topic)
  if flags % 64 >= 32 then return nil end
  local h = {}
  local title = flags % 8 >= 4
  local function set(name, title_name, value)
    if flags % 16 >= 8 then value = { value } end
    h[title and title_name or name] = value
  end
  set("x-thinkific-hmac-sha256", "X-Thinkific-Hmac-Sha256", signature)
  if flags % 4 >= 2 then set("x-thinkific-topic", "X-Thinkific-Topic", topic) end
  return h
end

return function(bytes)
  local f = input.fields(bytes, 4)
  local flags, body = f[1]:byte(1) or 0, f[4]
  local signed = flags % 2 == 1
  local signature = signed and core.sign(body, SECRET) or f[2]
  if flags % 32 >= 16 then signature = signature:upper() end
  local really_signed = core.sign(body, SECRET) == signature:lower()
  local status, answer, event = router:handle(body, headers_of(flags, signature, f[3]))
  if not STATUSES[status] then expect.fail("status %s", tostring(status)) end
  if type(answer) ~= "string" or not core.decode(answer) then expect.fail("answer %q", tostring(answer)) end
  if #body > 4096 then
    if status ~= 413 then expect.fail("a body over max_body got %d", status) end
    return
  end
  if not really_signed or flags % 64 >= 32 then
    if status ~= 401 then expect.fail("an unsigned body got %d", status) end
    return
  end
  if status == 401 then expect.fail("a signed body got 401") end
  if status ~= 200 then return end
  expect.no_nul(body, "router:handle")
  if type(event) ~= "table" or not expect.json_equal(event, core.decode(body)) then
    expect.fail("the event is not the body")
  end
  if answer == '{"status":"ok"}' then
    local again, again_answer = router:handle(body, headers_of(flags, signature, f[3]))
    if again ~= 200 or again_answer ~= '{"status":"duplicate"}' then
      expect.fail("the same delivery twice got %s %s", tostring(again), tostring(again_answer))
    end
  end
end
