-- The sandbox's own HTTP/1.1 client over thinkific.http.stream: one request per connection,
-- everything bounded by one deadline. With stream.blocking as the waiter it blocks (the spawn
-- object's control calls); with the loop as the waiter it runs inside a loop coroutine
-- (deliveries), which a blocking libcurl call could not do (see doc/DESIGN.md).
local socket = require("socket")
local stream_mod = require("thinkific.http.stream")
local http = require("thinkific.http.message")

local gettime = socket.gettime

local _M = {}

_M.MAX_BODY = 16 * 1024 * 1024

-- "https://host:port/path?q" -> scheme, host, port, target
function _M.split_url(u)
  local scheme, authority, target = u:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil end
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if target == "" then target = "/" end
  return scheme, host, port, target
end

local function connect(host, port, waiter, deadline)
  local sock = host:find(":", 1, true) and socket.tcp6() or socket.tcp()
  sock:settimeout(0)
  local ok, err = sock:connect(host, port)
  if not ok and err == "timeout" then
    if not waiter:wait(sock, "w", deadline) then
      sock:close()
      return nil, "timeout"
    end
    ok, err = sock:connect(host, port)
    if not ok and err == "already connected" then ok = true end
  end
  if not ok then
    sock:close()
    return nil, err
  end
  return sock
end

local function tls_wrap(sock, host, waiter, deadline)
  local ssl = require("ssl")
  -- Only our own loopback sandboxes and test servers are reached this way: no verification.
  local tls, err = ssl.wrap(sock, { mode = "client", protocol = "any", verify = "none",
    options = { "all" } })
  if not tls then return nil, err end
  if tls.sni then tls:sni(host) end
  return stream_mod.handshake(tls, waiter, deadline)
end

-- opts: url, method ("GET"), headers ({Name = value}), body (string), timeout (seconds, 10),
-- waiter (stream.blocking), max_body. Returns { status, headers, body } or nil, message.
function _M.request(opts)
  local scheme, host, port, target = _M.split_url(opts.url)
  if not scheme then return nil, "not an http or https URL" end
  local waiter = opts.waiter or stream_mod.blocking
  local deadline = gettime() + (opts.timeout or 10)
  local sock, err = connect(host, port, waiter, deadline)
  if not sock then return nil, "connect: " .. tostring(err) end
  if scheme == "https" then
    local tls
    tls, err = tls_wrap(sock, host, waiter, deadline)
    if not tls then return nil, "TLS: " .. tostring(err) end
    sock = tls
  end
  local stream = stream_mod.new(sock, waiter)
  local headers = { Host = host:find(":", 1, true) and "[" .. host .. "]:" .. port
    or host .. ":" .. port, Connection = "close" }
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local method = opts.method or "GET"
  local res
  local ok, werr = http.write_request(stream, method, target, headers, opts.body, deadline)
  if ok then
    res, err = http.read_response(stream, method, opts.max_body or _M.MAX_BODY, deadline)
  else
    err = werr
  end
  stream:close()
  if not res then return nil, tostring(err) end
  return res
end

return _M
