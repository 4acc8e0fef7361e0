-- response: an HTTP answer to core.response, as every transport hands it over. Fields: control
-- bytes (the status, want_object, how the headers are spelled), Retry-After, RateLimit-Reset,
-- the body. A 2xx answer is a value or a "decode" error; anything else an "http" error with the
-- status, the body (cut at 4 KiB), the origin, a retry_after >= 0 when there is one, and the
-- 422 "errors" as a list of {field, message}. A status that is no HTTP status raises.
local core = require("thinkific.core")
local expect = require("fuzz.expect")
local input = require("fuzz.input")

local COMMON = { 200, 201, 204, 400, 401, 403, 404, 417, 422, 429, 500, 503 }
local NAMES = {
  { "retry-after", "ratelimit-reset" },
  { "Retry-After", "RateLimit-Reset" },
  { "RETRY-AFTER", "ratelimit-RESET" },
}

local function status_of(r)
  local how = r:byte() % 4
  if how == 0 then return r:choose(COMMON) end
  if how == 1 then return 100 + (r:byte() * 256 + r:byte()) % 500 end
  if how == 2 then return r:number() end
  return tostring(r:choose(COMMON)) -- a string: the transport broke its contract
end

local function headers_of(r, retry, reset)
  local names = r:choose(NAMES)
  local h = {}
  local shape = r:byte()
  if shape % 2 == 1 then h[names[1]] = retry end
  if shape % 4 >= 2 then h[names[2]] = reset end
  if shape % 8 >= 4 then h[names[1]] = tonumber(retry) or retry end -- a number value
  if shape % 16 >= 8 then h["x-other"] = { retry } end -- a list value (OpenResty's)
  if shape >= 128 then return nil end
  return h
end

local function check_errors(list)
  if type(list) ~= "table" then expect.fail("err.errors is a %s", type(list)) end
  for i, item in ipairs(list) do
    -- a number stays a number (54321 in {"errors": {"f": 54321}}); a table became text
    local t = type(item.message)
    if t ~= "string" and t ~= "number" then expect.fail("errors[%d].message is a %s", i, t) end
    if item.field ~= nil and type(item.field) ~= "string" then
      expect.fail("errors[%d].field is a %s", i, type(item.field))
    end
  end
end

local function check_http_error(err, status, body)
  if err.status ~= math.floor(status) or (math.type and math.type(err.status) ~= "integer") then
    expect.fail("err.status %s for status %s", tostring(err.status), tostring(status))
  end
  if err.sent ~= true then expect.fail("err.sent is not true") end
  if err.body ~= body:sub(1, 4096) then expect.fail("err.body is not the body's start") end
  if err.method ~= "GET" or err.path ~= "/webhooks" then expect.fail("err lost its origin") end
  local wait = err.retry_after
  if wait ~= nil and not (type(wait) == "number" and wait >= 0) then
    expect.fail("retry_after is %s", tostring(wait))
  end
  if err.errors ~= nil then check_errors(err.errors) end
end

return function(bytes)
  local f = input.fields(bytes, 4)
  local r = input.reader(f[1])
  local status, want_object = status_of(r), r:byte() % 2 == 1
  local resp = { status = status, body = f[4], headers = headers_of(r, f[2], f[3]) }
  local valid = type(status) == "number" and status >= 100 and status < 600
  local ok, v, err = pcall(core.response, resp, "GET", "/webhooks", want_object)
  if not ok then
    if valid and status == math.floor(status) then expect.fail("status %s raised: %s", status, v) end
    if not tostring(v):find("status", 1, true) then expect.fail("unexpected raise: %s", tostring(v)) end
    return
  end
  if not valid then expect.fail("status %s was taken", tostring(status)) end
  local code = math.floor(status)
  local is_2xx = code >= 200 and code <= 299
  local value = expect.result(v, err, is_2xx and { decode = true } or { http = true })
  if value == nil then
    if not is_2xx then check_http_error(err, status, f[4]) end
    return
  end
  if not is_2xx then expect.fail("status %s gave a value", tostring(status)) end
  if value == true then
    if want_object or not (code == 204 or not f[4]:find("%S")) then
      expect.fail("true for a body that is not empty")
    end
  elseif type(value) ~= "table" then
    expect.fail("a 2xx answer gave a %s", type(value))
  else
    expect.no_nul(f[4], "response")
  end
end
