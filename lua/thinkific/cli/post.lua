-- One HTTP POST for `thinkific deliver`, over http or over https with the server verified:
-- its certificate chain against a CA bundle (OpenSSL, through LuaSec) and its host name against
-- the certificate (thinkific.cli.hostname), both before a byte of the request is sent. One
-- deadline bounds the whole request: connecting, the TLS handshake, sending, reading the answer.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local url = require("socket.url")
local hostname = require("thinkific.cli.hostname")

local gettime = socket.gettime

local M = {}

M.SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
M.ENV_CA_FILE = require("thinkific.cli.common").ENV_CA_FILE

-- The CA bundle for https: ca_file (--ca-file), else $SSL_CERT_FILE, else the system's.
-- Returns a readable path, or nil and a message that says what to do.
function M.ca_file(ca_file, getenv)
  local from = "--ca-file"
  if not ca_file or ca_file == "" then
    ca_file = (getenv or os.getenv)(M.ENV_CA_FILE)
    from = "$" .. M.ENV_CA_FILE
    if not ca_file or ca_file == "" then
      ca_file, from = M.SYSTEM_CA_FILE, "the system CA bundle"
    end
  end
  local f, err = io.open(ca_file, "rb")
  if not f then
    local hint = from == "--ca-file" and "" or " (install ca-certificates, or pass --ca-file FILE)"
    return nil, string.format("%s: cannot read %s%s", from, tostring(err), hint)
  end
  f:close()
  return ca_file
end

-- The URL as it may be shown: no user information, no query, no fragment.
function M.shown(u)
  return (u:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1"):gsub("[?#].*$", ""))
end

-- The verification errors LuaSec recorded, as one text: "self-signed certificate; ...".
local function reasons(errs)
  local seen, out = {}, {}
  if type(errs) == "table" then
    for _, at_depth in pairs(errs) do
      for _, why in ipairs(type(at_depth) == "table" and at_depth or { at_depth }) do
        why = tostring(why)
        if not seen[why] then
          seen[why] = true
          out[#out + 1] = why
        end
      end
    end
  end
  table.sort(out)
  return #out > 0 and table.concat(out, "; ") or "not verified"
end

-- A connection object for socket.http (its `create`): every operation gets what is left of
-- the deadline; with tls, connect() also does the handshake and both checks.
local Conn = {}
Conn.__index = Conn

-- Sets the socket's timeout to the time left; false once the deadline has passed.
function Conn:_arm()
  local left = self.deadline - gettime()
  if left <= 0 then return false end
  self.sock:settimeout(left)
  return true
end

-- socket.http sets its own timeout; the deadline rules instead.
function Conn.settimeout() return 1 end

function Conn:_handshake(host)
  local ssl = require("ssl")
  local tls, err = ssl.wrap(self.sock, {
    mode = "client", protocol = "any",
    options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
    cafile = self.ca_file,
    -- The chain is checked by OpenSSL during the handshake; lsec_continue only lets the
    -- handshake finish so that the reason can be read below. Nothing is sent before both
    -- checks pass.
    verify = "peer", verifyext = { "lsec_continue" },
  })
  if not tls then
    return nil, "TLS: cannot use the CA file " .. self.ca_file .. " (" .. tostring(err) .. ")"
  end
  self.sock = tls
  if not hostname.ip_bytes(host) then tls:sni((host:gsub("%.$", ""))) end -- none for an IP (RFC 6066)
  if not self:_arm() then return nil, "timeout" end
  local ok
  ok, err = tls:dohandshake()
  if not ok then
    if err == "wantread" or err == "wantwrite" then err = "timeout" end
    if err == "timeout" or err == "closed" then return nil, err end
    return nil, "TLS handshake: " .. tostring(err)
  end
  local verified, errs = tls:getpeerverification()
  if not verified then
    return nil, "TLS: the server's certificate is not trusted (" .. reasons(errs) .. "); "
      .. "for a private CA or a self-signed test certificate pass --ca-file FILE"
  end
  local cert = tls:getpeercertificate()
  if not cert then return nil, "TLS: the server sent no certificate" end
  local matched, why = hostname.check(host, hostname.names(cert))
  if not matched then return nil, "TLS: " .. why end
  return true
end

function Conn:connect(host, port)
  if not self:_arm() then return nil, "timeout" end
  local ok, err = self.sock:connect(host, port)
  if not ok then return nil, err end
  if self.tls then
    ok, err = self:_handshake(host)
    if not ok then return nil, err end -- socket.http closes the connection
  end
  return 1
end

function Conn:send(...)
  if not self:_arm() then return nil, "timeout" end
  return self.sock:send(...)
end

function Conn:receive(...)
  if not self:_arm() then return nil, "timeout" end
  return self.sock:receive(...)
end

function Conn:close() return self.sock:close() end
function Conn:getfd() return self.sock:getfd() end
function Conn:dirty() return self.sock:dirty() end

-- opts: url (http or https), headers ({lower-case name = value}), body (string), timeout
-- (seconds for the whole request), ca_file (https: a readable PEM bundle, see M.ca_file).
-- Returns status, body; or nil and a one-line message that names the URL as M.shown gives it.
function M.send(opts)
  local parsed = url.parse(opts.url)
  local scheme = parsed and parsed.scheme and parsed.scheme:lower()
  local tls = scheme == "https"
  local deadline = gettime() + opts.timeout
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if parsed.host and parsed.host:find(":", 1, true) then -- socket.http forgets the brackets
    headers.host = "[" .. parsed.host .. "]" .. (parsed.port and ":" .. parsed.port or "")
  end
  local chunks = {}
  local ok, one, code = pcall(http.request, {
    url = opts.url, method = "POST", headers = headers,
    source = ltn12.source.string(opts.body), sink = ltn12.sink.table(chunks),
    redirect = false,
    create = function()
      local sock, err = socket.tcp()
      if not sock then return nil, err end
      return setmetatable({ sock = sock, deadline = deadline, tls = tls,
        ca_file = opts.ca_file }, Conn)
    end,
  })
  local where = "POST " .. M.shown(opts.url) .. ": "
  if not ok then return nil, where .. tostring(one) end
  if not one or type(code) ~= "number" then
    if code == "timeout" then
      code = string.format("no answer within %g s (--timeout)", opts.timeout)
    end
    return nil, where .. tostring(code)
  end
  return code, table.concat(chunks)
end

return M
