-- Raw HTTP/1.1 to a sandbox over a socket, for the sandbox specs (sandbox_*_spec.lua):
-- what goes on the wire is exactly what the test wrote, and what comes back is read as it is.
-- Every read is bounded by the socket's timeout.
local socket = require("socket")
local core = require("thinkific.core")

local wire = {}

wire.KEY = "sandbox-key"
wire.TIMEOUT = 5
wire.HOOK = { topic = "order.created", target_url = "https://example.com/hooks" }

local Conn = {}
Conn.__index = Conn

-- A connection over an already connected socket (plain, or LuaSec's after the handshake).
function wire.wrap(sock)
  return setmetatable({ sock = sock }, Conn)
end

function wire.connect(sb)
  local c = socket.tcp()
  c:settimeout(wire.TIMEOUT)
  assert(c:connect("127.0.0.1", sb.port))
  return wire.wrap(c)
end

function Conn:send_raw(text)
  assert(self.sock:send(text))
end

function Conn:send(method, path, opts)
  opts = opts or {}
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  local headers = opts.headers or { Authorization = "Bearer " .. wire.KEY }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  local body = opts.body
  if type(body) == "table" then body = assert(core.encode(body)) end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  if opts.close then lines[#lines + 1] = "Connection: close" end
  self:send_raw(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
end

-- Reads one response: status, headers (lower-case names), body text. nil, err when the
-- connection closed without one.
function Conn:receive()
  local line, err = self.sock:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  while true do
    local h = assert(self.sock:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    headers[name:lower()] = value
  end
  local body = ""
  local n = tonumber(headers["content-length"] or "0")
  if n > 0 then body = assert(self.sock:receive(n)) end
  return status, headers, body
end

function Conn:request(method, path, opts)
  self:send(method, path, opts)
  return self:receive()
end

function Conn:close()
  self.sock:close()
end

-- One request on its own connection: status, headers, body text, decoded body.
function wire.request(sb, method, path, opts)
  local c = wire.connect(sb)
  opts = opts or {}
  opts.close = true
  local status, headers, body = c:request(method, path, opts)
  c:close()
  return status, headers, body, body ~= "" and core.decode(body) or nil
end

-- wire.request under the API's base path: api(sb, "GET", "/webhooks").
function wire.api(sb, method, path, opts)
  return wire.request(sb, method, "/api/v2" .. path, opts)
end

-- An id as the sandbox makes them (and Thinkific sends them): 23 digits, as a string.
function wire.is_id(s)
  return type(s) == "string" and #s == 23 and s:find("^%d+$") ~= nil
end

return wire
