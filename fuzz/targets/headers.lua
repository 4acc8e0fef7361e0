-- headers: a response's header block to the core's parser (env.parse_headers: the C function
-- itself under the fuzzer; a libcurl transfer from a loopback server in the spec), then the
-- parsed table to core.response as a 429's headers. Names come out lower-case, without ':' or
-- a line end, at most 128 bytes; values as strings of one line; the wait >= 0 when given.
local core = require("thinkific.core")
local expect = require("fuzz.expect")

return function(raw, env)
  local h = env.parse_headers(raw)
  if type(h) ~= "table" then expect.fail("parse_headers gave a %s", type(h)) end
  for name, value in pairs(h) do
    if type(name) ~= "string" or name == "" or name:find("[%u:\n]") or #name > 128 then
      expect.fail("bad header name %q", tostring(name))
    end
    if type(value) ~= "string" or value:find("\n", 1, true) then
      expect.fail("bad value %q for %s", tostring(value), name)
    end
  end
  local v, err = core.response({ status = 429, body = "", headers = h }, "GET", "/webhooks")
  if v ~= nil then expect.fail("a 429 gave a value") end
  expect.error_value(err, { http = true })
  local wait = err.retry_after
  if wait ~= nil and not (type(wait) == "number" and wait >= 0) then
    expect.fail("retry_after is %s", tostring(wait))
  end
end
