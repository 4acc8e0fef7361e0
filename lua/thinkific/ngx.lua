-- thinkific.ngx: lua-thinkific inside OpenResty (ngx_lua). Nothing here blocks a worker:
--   serve(router)        a content handler that receives deliveries (body in memory or spilled)
--   transport{location}  the client's transport over ngx.location.capture to an internal
--                        location that proxy_passes to the API with nginx's keep-alive upstream
--   header_filter()      optional, in that location: tells the transport whether nginx reached
--                        the API at all (for err.sent)
--   store(dict, {ttl})   a de-duplication store on a lua_shared_dict, shared by all workers
--   client(opts)         thinkific.new with this transport and ngx.sleep filled in
-- The module loads without nginx (for docs and tooling); its functions raise when called there.
local args = require("thinkific.args")
local find_header = require("thinkific.headers").find

local argerror = args.error
local type, pairs, tostring, tonumber, setmetatable, pcall, error =
  type, pairs, tostring, tonumber, setmetatable, pcall, error
local lower, find, concat = string.lower, string.find, table.concat
local open = io.open

local _M = {}

-- ngx_lua's API, or a clear error where there is none.
local function need(fname)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.req) ~= "table" then
    error(("thinkific.ngx.%s needs OpenResty (nginx with ngx_lua): it was called outside nginx")
      :format(fname), 3)
  end
  return ngx
end

------------------------------------------------------------------------------------------------
-- The receiver
------------------------------------------------------------------------------------------------

local TOO_LARGE = '{"error":"body too large"}'
local NOT_POST = '{"error":"method not allowed: deliveries are POST"}'
local READ_FAILED = '{"error":"could not read the request body"}'
local CHUNK = 65536

local function reply(ngx, status, body)
  ngx.status = status
  local header = ngx.header
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
  local status, text, event = router:handle(body, headers)
  if status >= 500 then
    ngx.log(ngx.WARN, "thinkific.ngx.serve: ", status, " ", text, event and
      (" for event " .. tostring(event.id)) or "")
  end
  return reply(ngx, status, text)
end

------------------------------------------------------------------------------------------------
-- The transport
------------------------------------------------------------------------------------------------

-- request.headers forwarded, each through an nginx variable the user's location sends
-- (proxy_set_header Authorization $thinkific_authorization; ...). The parent request's own
-- headers never reach the API (proxy_pass_request_headers off).
local FORWARDED = {
  { "authorization", "thinkific_authorization" },
  { "accept", "thinkific_accept" },
  { "content-type", "thinkific_content_type" },
  { "user-agent", "thinkific_user_agent" },
  { "x-auth-subdomain", "thinkific_subdomain" },
}

-- Phases where ngx.location.capture is allowed.
local CAPTURE_PHASES = { rewrite = true, access = true, content = true }

local TRANSPORT_OPTIONS = { location = "string" }

local function transport_error(kind, sent, message, extra)
  local err = { kind = kind, sent = sent, message = "thinkific.ngx.transport: " .. message }
  for k, v in pairs(extra or {}) do err[k] = v end
  return err
end

local function phase_error(phase)
  local why = phase == "timer"
    and "nginx forbids subrequests in timers (ngx.timer.at): call the API from a request "
      .. "handler, and register webhooks at deploy time with `thinkific webhooks sync`"
    or ("nginx forbids subrequests in the %s phase: call the API from a rewrite, access or "
      .. "content handler, and register webhooks at deploy time with `thinkific webhooks sync`")
      :format(tostring(phase))
  -- Not retried: another attempt in this phase would fail the same way.
  return transport_error("network", false, why, { retryable = false })
end

-- "https://api.thinkific.com/api/v2/webhooks?limit=25" -> "api.thinkific.com",
-- "/api/v2/webhooks?limit=25" (the path is kept byte for byte, percent-escapes included).
local function split_url(url)
  if type(url) ~= "string" then return nil end
  local host, target = url:match("^[hH][tT][tT][pP][sS]?://([^/?#]+)(.*)$")
  if not host then return nil end
  host = host:gsub("^.*@", "")
  if target == "" then
    target = "/"
  elseif target:sub(1, 1) == "?" then
    target = "/" .. target
  end
  return host, target
end

local function header_value(headers, name)
  if type(headers) ~= "table" then return nil end
  return find_header(headers, name)
end

-- Whether nginx opened a connection to the API for this subrequest, from what header_filter
-- recorded: $upstream_connect_time is "-" for each server it could not connect to. nil when
-- header_filter is not in the location.
local function connected(info)
  if type(info) ~= "table" then return nil end
  local times = info.connect_time
  if type(times) ~= "string" or times == "" then return false end
  return find(times, "[%d]") ~= nil
end

-- A subrequest without a complete answer of the API (ngx_lua's res.truncated): nginx answered
-- itself (502: connection failed or reset, 504: timed out, 404/500: the location is missing
-- or broken), or the answer was cut off. A complete answer, whatever its status (the API's own
-- 502 or 504 included), is never truncated.
local function no_answer(res, ctx, location)
  local status = res.status
  local info = ctx.thinkific_upstream
  local reached = connected(info)
  local sent = reached ~= false -- unknown (no header_filter) counts as possibly sent
  local kind, message
  if info and info.status == nil and info.addr == nil then
    kind, sent = "network", false
    message = ("nginx answered %s without proxying: is %s the internal proxy_pass location of "
      .. "doc/API.md?"):format(tostring(status), location)
  elseif status == 504 then
    kind = "timeout"
    message = reached == false and "timed out connecting to the API (nginx 504)"
      or "timed out waiting for the API (nginx 504; see proxy_read_timeout)"
  elseif status == 502 then
    kind = "network"
    message = reached == false and "could not connect to the API (nginx 502; see error.log)"
      or "no answer from the API (nginx 502: connection failed or reset; see error.log)"
  elseif info == nil and (status == 404 or status == 500) then
    kind = "network"
    message = ("nginx answered %d without a complete answer from the API: is %s the internal "
      .. "proxy_pass location of doc/API.md?"):format(status, location)
  else
    kind = "network"
    message = ("the API's answer (%s) was cut off"):format(tostring(status))
  end
  return nil, transport_error(kind, sent, message)
end

local function check_transport_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(1, "transport", "table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local want = TRANSPORT_OPTIONS[k]
    if not want then argerror(1, "transport", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= want then
      argerror(1, "transport", ("option '%s' must be a %s, got %s"):format(k, want, type(v)))
    end
  end
  if opts.location and opts.location:sub(1, 1) ~= "/" then
    argerror(1, "transport", "location must start with '/', e.g. \"/_thinkific\"")
  end
  return opts
end

--- thinkific.ngx.transport{ location = "/_thinkific" } -> function(request) -> response | nil, err
function _M.transport(opts)
  opts = check_transport_options(opts)
  local location = opts.location or "/_thinkific"
  local methods -- ngx.HTTP_* by name, on first use (this may run outside a request)

  return function(request)
    local ngx = need("transport")
    local phase = ngx.get_phase()
    if not CAPTURE_PHASES[phase] then return nil, phase_error(phase) end
    if not methods then
      methods = { GET = ngx.HTTP_GET, POST = ngx.HTTP_POST, PUT = ngx.HTTP_PUT,
        DELETE = ngx.HTTP_DELETE, PATCH = ngx.HTTP_PATCH, HEAD = ngx.HTTP_HEAD }
    end
    if type(request) ~= "table" then
      argerror(1, "transport", "request table expected, got " .. type(request))
    end
    local method = methods[request.method]
    if not method then
      return nil, transport_error("network", false, "method " .. tostring(request.method)
        .. " is not supported", { retryable = false })
    end
    local host, target = split_url(request.url)
    if not host then
      return nil, transport_error("network", false, "not an http(s) URL", { retryable = false })
    end

    local vars = { thinkific_uri = target, thinkific_host = host }
    local headers = request.headers
    for i = 1, #FORWARDED do
      local name, var = FORWARDED[i][1], FORWARDED[i][2]
      local v = header_value(headers, name)
      if v == nil then
        v = ""
      elseif type(v) ~= "string" or find(v, "[%z\r\n]") then
        -- Never a header that could add another one.
        return nil, transport_error("network", false, "header " .. name
          .. " must be a string without CR, LF or NUL", { retryable = false })
      end
      vars[var] = v
    end
    if find(target, "[%z\r\n ]") or find(host, "[%z\r\n /]") then
      return nil, transport_error("network", false, "the URL contains a space or a control "
        .. "character", { retryable = false })
    end

    local ctx = {}
    local body = request.body
    if body == nil and (method == ngx.HTTP_POST or method == ngx.HTTP_PUT) then
      body = "" -- never the parent request's body
    end
    local ok, res = pcall(ngx.location.capture, location,
      { method = method, body = body, vars = vars, ctx = ctx })
    if not ok then
      -- A configuration mistake (the variables are not declared): say what is missing.
      error("thinkific.ngx.transport: the subrequest to " .. location .. " failed (" .. tostring(res)
        .. "): nginx.conf needs the map blocks for $thinkific_uri, $thinkific_host, "
        .. "$thinkific_authorization, $thinkific_accept, $thinkific_content_type, "
        .. "$thinkific_user_agent and $thinkific_subdomain and the location of doc/API.md "
        .. "(see error.log)", 2)
    end
    if res.truncated then return no_answer(res, ctx, location) end

    local out = {}
    for k, v in pairs(res.header) do
      if type(v) == "table" then v = concat(v, ", ") end
      out[lower(k)] = v
    end
    return { status = res.status, headers = out, body = res.body or "" }
  end
end

--- thinkific.ngx.header_filter(): in the internal location (header_filter_by_lua_block), records
-- for the transport what nginx knows of the upstream: whether it connected at all.
function _M.header_filter()
  local ngx = need("header_filter")
  if not ngx.is_subrequest then return end
  local var = ngx.var
  ngx.ctx.thinkific_upstream = {
    status = var.upstream_status, addr = var.upstream_addr,
    connect_time = var.upstream_connect_time,
  }
end

------------------------------------------------------------------------------------------------
-- The de-duplication store
------------------------------------------------------------------------------------------------

local Store = {}
Store.__index = Store

--- store:add(id, value) -> true | false, "exists" | false, message (e.g. "no memory")
function Store:add(id, value)
  if value == nil then value = true end
  local ok, err = self.dict:add(id, value, self.ttl)
  if ok then return true end
  return false, err
end

--- store:delete(id) -> true
function Store:delete(id)
  self.dict:delete(id)
  return true
end

--- thinkific.ngx.store(dict_name, { ttl = seconds }) -> store
function _M.store(name, opts)
  local ngx = need("store")
  if type(name) ~= "string" or name == "" then
    argerror(1, "store", "the name of a lua_shared_dict expected, got " .. type(name))
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "store", "table expected, got " .. type(opts))
  end
  local ttl = 0
  for k, v in pairs(opts or {}) do
    if k ~= "ttl" then argerror(2, "store", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= "number" or v < 0 or v ~= v then
      argerror(2, "store", "ttl must be a number of seconds >= 0 (0: no expiry)")
    end
    ttl = v
  end
  local dict = ngx.shared[name]
  if not dict then
    argerror(1, "store", ("no lua_shared_dict named '%s': add `lua_shared_dict %s 10m;` to the "
      .. "http block of nginx.conf"):format(name, name))
  end
  return setmetatable({ dict = dict, ttl = ttl, name = name }, Store)
end

------------------------------------------------------------------------------------------------
-- A client
------------------------------------------------------------------------------------------------

--- thinkific.ngx.client(opts) -> client: thinkific.new(opts) with transport =
-- transport{ location = opts.location } and sleep = ngx.sleep unless given.
function _M.client(opts)
  local ngx = need("client")
  if type(opts) ~= "table" then argerror(1, "client", "table expected, got " .. type(opts)) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local location = o.location
  o.location = nil
  if location ~= nil and type(location) ~= "string" then
    argerror(1, "client", "option 'location' must be a string, got " .. type(location))
  end
  if o.transport == nil then o.transport = _M.transport{ location = location } end
  if o.sleep == nil then o.sleep = ngx.sleep end
  return require("thinkific").new(o)
end

return _M
