-- Renders this example for `sh examples/openresty/run` (offline, against a TLS sandbox):
--   lua5.4 render.lua PREFIX SANDBOX_URL CA_FILE
-- writes PREFIX/nginx.conf: this directory's nginx.conf with only what must differ replaced,
-- and PREFIX/webhooks.json: webhooks.json with its targets on that nginx; prints the port nginx
-- is to listen on (a free loopback port). Every replaced text must occur exactly once in
-- nginx.conf, so that a change to the example fails here at once instead of drifting away.
local socket = require("socket")

local function fail(message)
  io.stderr:write("examples/openresty/render.lua: ", message, "\n")
  os.exit(1)
end

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then fail(err) end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f, err = io.open(path, "wb")
  if not f then fail(err) end
  f:write(text)
  f:close()
end

-- text with `plain` replaced by `by`; `plain` must occur exactly once.
local function replace(text, plain, by)
  local at = text:find(plain, 1, true)
  if not at then fail("not in nginx.conf: " .. plain) end
  if text:find(plain, at + 1, true) then fail("twice in nginx.conf: " .. plain) end
  return text:sub(1, at - 1) .. by .. text:sub(at + #plain)
end

local prefix, sandbox_url, ca_file = arg[1], arg[2], arg[3]
if not ca_file then fail("usage: lua5.4 render.lua PREFIX SANDBOX_URL CA_FILE") end
local sandbox_port = sandbox_url:match("^https://127%.0%.0%.1:(%d+)/")
if not sandbox_port then fail("not a sandbox URL (https://127.0.0.1:PORT/...): " .. sandbox_url) end
local here = arg[0]:match("^(/.*)/[^/]*$") -- the run script passes an absolute path
local root = here and here:match("^(.*)/[^/]+/[^/]+$")
if not root then fail("run me with an absolute path (examples/openresty/run does)") end

-- A free loopback port: bound, read back, closed (nginx binds it a moment later).
local probe, err = socket.bind("127.0.0.1", 0)
if not probe then fail("no free port on 127.0.0.1: " .. tostring(err)) end
local _, port = probe:getsockname()
probe:close()

local conf = read(here .. "/nginx.conf")
conf = replace(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. port .. ";")
-- The sandbox plays api.thinkific.com: its port, the name and the self-signed certificate
-- (also its own CA) that the run script made for it.
conf = replace(conf, "server api.thinkific.com:443;", "server 127.0.0.1:" .. sandbox_port .. ";")
conf = replace(conf, "proxy_ssl_name api.thinkific.com;", "proxy_ssl_name localhost;")
conf = replace(conf, "proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;",
  ('proxy_ssl_trusted_certificate "%s";'):format(ca_file))
-- app/*.lua from this directory, lua-thinkific from this checkout (its LuaJIT build).
conf = replace(conf, 'lua_package_path "$prefix/lua/?.lua;;";',
  ('lua_package_path "%s/lua/?.lua;%s/lua/?.lua;%s/lua/?/init.lua;;";\n'
  .. '  lua_package_cpath "%s/build/luajit/?.so;;";'):format(here, root, root, root))
write(prefix .. "/nginx.conf", conf)

local hooks, n = read(here .. "/webhooks.json"):gsub("https://hooks%.example%.com/",
  "http://127.0.0.1:" .. port .. "/")
if n == 0 then fail("webhooks.json: no target on https://hooks.example.com/") end
write(prefix .. "/webhooks.json", hooks)

print(port)
