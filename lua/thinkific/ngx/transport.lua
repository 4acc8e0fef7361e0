-- thinkific.ngx.transport{location}: the client's transport over ngx.location.capture to an
-- internal location that proxy_passes to the API with nginx's keep-alive upstream (the
-- location and its map blocks: doc/API.md, "nginx.conf"; why it is built so: doc/DESIGN.md).
local argerror = require("thinkific.args").error
local find_header = require("thinkific.headers").find
local need = require("thinkific.ngx.need")
local upstream = require("thinkific.ngx.upstream")

local type, pairs, tostring, pcall, error = type, pairs, tostring, pcall, error
local lower, find, concat = string.lower, string.find, table.concat

local _M = {}

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

local OPTIONS = { location = "string" }

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

-- A subrequest without a complete answer of the API (ngx_lua's res.truncated): nginx answered
-- itself (502: connection failed or reset, 504: timed out, 404/500: the location is missing
-- or broken), or the answer was cut off. A complete answer, whatever its status (the API's own
-- 502 or 504 included), is never truncated.
local function no_answer(res, ctx, location)
  local status = res.status
  local up = upstream.read(ctx)
  local never_connected = up ~= nil and not up.connected
  local sent = not never_connected -- unknown (no header_filter) counts as possibly sent
  local kind, message
  if up and not up.proxied then
    kind, sent = "network", false
    message = ("nginx answered %s without proxying: is %s the internal proxy_pass location of "
      .. "doc/API.md?"):format(tostring(status), location)
  elseif status == 504 then
    kind = "timeout"
    message = never_connected and "timed out connecting to the API (nginx 504)"
      or "timed out waiting for the API (nginx 504; see proxy_read_timeout)"
  elseif status == 502 then
    kind = "network"
    message = never_connected and "could not connect to the API (nginx 502; see error.log)"
      or "no answer from the API (nginx 502: connection failed or reset; see error.log)"
  elseif up == nil and (status == 404 or status == 500) then
    kind = "network"
    message = ("nginx answered %d without a complete answer from the API: is %s the internal "
      .. "proxy_pass location of doc/API.md?"):format(status, location)
  else
    kind = "network"
    message = ("the API's answer (%s) was cut off"):format(tostring(status))
  end
  return nil, transport_error(kind, sent, message)
end

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(1, "transport", "table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
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
  opts = check_options(opts)
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

return _M
