-- Faults: canned answers (or delays, or dropped connections) for the next API requests
-- that match a path prefix and, optionally, a method. They apply in the order they were
-- queued; each one applies `count` times.
local json = require("thinkific.sandbox.json")

local _M = {}

local MAX_DELAY_MS = 600000

local Faults = {}
Faults.__index = Faults

function _M.new()
  return setmetatable({ queue = {} }, Faults)
end

local function is_int(v, lo, hi)
  return math.type(v) == "integer" and v >= lo and v <= hi
end

-- Checks a decoded fault description. Returns the fault, or nil, message.
function _M.parse(spec)
  if type(spec) ~= "table" then return nil, "a fault must be a JSON object" end
  local f = {}
  if type(spec.path) ~= "string" or spec.path:sub(1, 1) ~= "/" then
    return nil, "path must be a string starting with /"
  end
  f.path = spec.path
  if spec.method ~= nil then
    if type(spec.method) ~= "string" or not spec.method:find("^%a+$") then
      return nil, "method must be a method name such as GET"
    end
    f.method = spec.method:upper()
  end
  f.count = spec.count == nil and 1 or spec.count
  if not is_int(f.count, 1, 1000000) then return nil, "count must be a positive integer" end
  if spec.status ~= nil then
    if not is_int(spec.status, 200, 599) then return nil, "status must be an integer 200..599" end
    f.status = spec.status
  end
  if spec.delay_ms ~= nil then
    if type(spec.delay_ms) ~= "number" or spec.delay_ms < 0 or spec.delay_ms > MAX_DELAY_MS then
      return nil, "delay_ms must be a number of milliseconds, 0.." .. MAX_DELAY_MS
    end
    f.delay_ms = spec.delay_ms
  end
  if spec.drop ~= nil and type(spec.drop) ~= "boolean" then return nil, "drop must be a boolean" end
  f.drop = spec.drop == true
  if spec.headers ~= nil then
    if type(spec.headers) ~= "table" then return nil, "headers must be an object" end
    f.headers = {}
    for name, value in pairs(spec.headers) do
      if type(value) == "number" then value = tostring(value) end
      if type(name) ~= "string" or not name:find("^[%w!#$%%&'*+%-.^_`|~]+$")
          or type(value) ~= "string" or value:find("[\0\r\n]") then
        return nil, "headers must map header names to single-line strings"
      end
      f.headers[name] = value
    end
  end
  f.body = spec.body
  if f.body == json.null then f.body = nil end
  if not f.status and not f.drop and not f.delay_ms then
    return nil, "a fault needs status, drop or delay_ms"
  end
  return f
end

function Faults:add(fault)
  self.queue[#self.queue + 1] = fault
  return self:pending()
end

-- How many faulted requests are still to come (the counts added up).
function Faults:pending()
  local n = 0
  for _, f in ipairs(self.queue) do n = n + f.count end
  return n
end

function Faults:clear()
  self.queue = {}
end

-- The first queued fault for this request, used up by one; or nil.
function Faults:take(method, path)
  for i, f in ipairs(self.queue) do
    if (not f.method or f.method == method) and path:sub(1, #f.path) == f.path then
      f.count = f.count - 1
      if f.count == 0 then table.remove(self.queue, i) end
      return f
    end
  end
end

-- The answer of a fault with a status. A string body is sent as it is (HTML when it starts
-- with "<", as a CDN error page would be); any other body is sent as JSON.
function _M.response(f)
  local headers, body = {}, ""
  if type(f.body) == "string" then
    body = f.body
    headers["Content-Type"] = body:find("^%s*<") and "text/html" or "application/json"
  elseif f.body ~= nil then
    body = json.encode(f.body)
    headers["Content-Type"] = "application/json"
  end
  for name, value in pairs(f.headers or {}) do
    -- Given headers win, whatever the case of their names.
    for old in pairs(headers) do
      if old:lower() == name:lower() then headers[old] = nil end
    end
    headers[name] = value
  end
  return { status = f.status, headers = headers, body = body }
end

return _M
