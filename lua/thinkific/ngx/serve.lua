-- thinkific.ngx.serve(router): the receiver as a content handler. The body comes from nginx,
-- in memory or spilled to a temporary file, and goes to router:handle as raw bytes.
local argerror = require("thinkific.args").error
local need = require("thinkific.ngx.need")

local type, tostring, tonumber, pairs = type, tostring, tonumber, pairs
local concat = table.concat
local open = io.open

local _M = {}

local TOO_LARGE = '{"error":"body too large"}'
local NOT_POST = '{"error":"method not allowed: deliveries are POST"}'
local READ_FAILED = '{"error":"could not read the request body"}'
local CHUNK = 65536

-- extra: the headers router:handle asked for (Retry-After with a 503); string names, string or
-- number values (ngx_lua refuses or escapes what a header cannot hold).
local function reply(ngx, status, body, extra)
  ngx.status = status
  local header = ngx.header
  if type(extra) == "table" then
    for name, value in pairs(extra) do
      if type(name) == "string" and (type(value) == "string" or type(value) == "number") then
        header[name] = value
      end
    end
  end
  header["Content-Type"] = "application/json"
  header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

-- The body nginx spilled to a temporary file, read in chunks up to max bytes.
-- Returns the text, false when it is larger than max, or nil, message.
local function read_spilled(path, max)
  local f, err = open(path, "rb")
  if not f then return nil, err end
  local size = f:seek("end")
  if size and size > max then
    f:close()
    return false
  end
  f:seek("set")
  local chunks, n = {}, 0
  while true do
    local chunk = f:read(CHUNK)
    if not chunk then break end
    n = n + #chunk
    if n > max then
      f:close()
      return false
    end
    chunks[#chunks + 1] = chunk
  end
  f:close()
  return concat(chunks)
end

local function check_router(router, fname)
  local t = type(router)
  if (t ~= "table" and t ~= "userdata") or type(router.handle) ~= "function" then
    argerror(1, fname, "router expected (thinkific.router{...}, e.g. the value of "
      .. "require(\"app.hooks\")), got " .. t)
  end
end

--- thinkific.ngx.serve(router): answers the current request (content phase) and ends it.
function _M.serve(router)
  local ngx = need("serve")
  check_router(router, "serve")
  local req = ngx.req
  if req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return reply(ngx, 405, NOT_POST)
  end
  local max = router.max_body or 1048576
  -- Lower-case names; any-case look-ups work through ngx_lua's metatable. 0: every header
  -- (nginx's own header buffers bound them).
  local headers = req.get_headers(0)
  -- Refused from the announced size, before anything is read.
  local length = headers["content-length"]
  if length and (tonumber(length) or 0) > max then return reply(ngx, 413, TOO_LARGE) end

  req.read_body()
  local body = req.get_body_data()
  if body == nil then
    local file = req.get_body_file()
    if file then
      local err
      body, err = read_spilled(file, max)
      if body == false then return reply(ngx, 413, TOO_LARGE) end
      if body == nil then
        ngx.log(ngx.ERR, "thinkific.ngx.serve: cannot read the spilled request body: ", err)
        return reply(ngx, 500, READ_FAILED)
      end
    else
      body = ""
    end
  end
  local status, text, event, extra = router:handle(body, headers)
  if status >= 500 then
    -- 503: a copy of a delivery whose first attempt still runs (routine, told to come back).
    ngx.log(status == 503 and ngx.INFO or ngx.WARN, "thinkific.ngx.serve: ", status, " ", text,
      event and (" for event " .. tostring(event.id)) or "")
  end
  return reply(ngx, status, text, extra)
end

return _M
