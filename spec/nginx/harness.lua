-- A private nginx for the specs of spec/nginx (make test-nginx): a generated nginx.conf in a temp
-- prefix, ports picked at run time, started as a child process (master process, daemon off),
-- stopped by pid; every wait bounded. Never the system nginx, never a fixed port.
local socket = require("socket")
local process = require("thinkific.sandbox.process")
-- Loaded by busted as the helper of .busted (make test-nginx runs busted from the checkout).
local helper = require("spec.helper")

local H = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/nginx"
H.ROOT = (io.popen("cd '" .. HERE .. "/../..' && pwd"):read("l"))
H.NGINX = os.getenv("NGINX") or "/usr/sbin/nginx"
H.MODULES = os.getenv("NGINX_MODULES") or "/usr/lib/nginx/modules"
H.quote = process.quote
-- Run as root, nginx switches its workers to `nobody`, who cannot read a checkout inside a 0700
-- directory (/root, a mktemp -d directory): there the workers stay root. Anyone else: nginx
-- ignores `user`, and its workers are that user already.
H.USER = io.popen("id -u"):read("l") == "0" and "user root;" or ""

local gettime, sleep = socket.gettime, socket.sleep
H.now, H.sleep = gettime, sleep

-- Waits (bounded) until the sandbox has a 2xx delivery of event_id; returns that event's
-- attempts in order, or nil, err.
function H.delivered(sb, event_id, seconds)
  local deadline = gettime() + (seconds or 10)
  while true do
    local list, err = sb:deliveries()
    if not list then return nil, err end
    local mine, ok = {}, false
    for _, d in ipairs(list) do
      if d.event_id == event_id then
        mine[#mine + 1] = d
        if type(d.status) == "number" and d.status >= 200 and d.status < 300 then ok = true end
      end
    end
    if ok then return mine end
    if gettime() > deadline then
      return nil, ("no 2xx delivery of %s in %s s (%d attempts)"):format(event_id, seconds or 10, #mine)
    end
    sleep(0.02)
  end
end

function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function H.write(path, text)
  os.execute("mkdir -p " .. H.quote(path:match("^(.*)/[^/]*$")))
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Runs a shell command; returns its output (stdout and stderr) and whether it exited with 0.
function H.run(command)
  local out = os.tmpname()
  local ok = os.execute("(" .. command .. ") >" .. H.quote(out) .. " 2>&1")
  local text = H.read(out) or ""
  os.remove(out)
  return text, ok == true or ok == 0
end

function H.tmpdir()
  local dir = io.popen("mktemp -d \"${TMPDIR:-/tmp}/thinkific-nginx.XXXXXX\""):read("l")
  assert(dir and dir ~= "", "mktemp failed")
  return dir
end

-- "${name}" -> vars[name] (a missing name is an error: a typo in a spec).
local function fill(text, vars)
  return (text:gsub("%${([%w_]+)}", function(name)
    local v = vars[name]
    assert(v ~= nil, "no value for ${" .. name .. "}")
    return tostring(v)
  end))
end
H.fill = fill

local TEMPLATE = [[
load_module ${modules}/ndk_http_module.so;
load_module ${modules}/ngx_http_lua_module.so;
daemon off;
master_process on;
${user}
${main}
worker_processes ${workers};
pid ${prefix}/logs/nginx.pid;
error_log ${prefix}/logs/error.log info;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  lua_package_path "${prefix}/lua/?.lua;${root}/lua/?.lua;${root}/lua/?/init.lua;;";
  lua_package_cpath "${root}/build/luajit/?.so;;";
${http}
  server {
    listen 127.0.0.1:${port}${reuseport};
${server}
  }
}
]]

local Nginx = {}
Nginx.__index = Nginx

-- Starts nginx. opts: workers (1), reuseport (false), main (text for the main context, e.g.
-- `env NAME;`), http (text for the http block), server (locations of the one server), files
-- ({ ["lua/app/hooks.lua"] = text } written under the prefix), vars (more ${name} values; the
-- template's own: prefix, root, port, modules, workers, user), env (environment variables of
-- the nginx process). Raises with error.log's end when nginx does not come up within 10 s; a
-- port taken meanwhile is retried with another one.
function H.start(opts)
  opts = opts or {}
  local prefix = opts.prefix or H.tmpdir()
  os.execute("mkdir -p " .. H.quote(prefix .. "/logs") .. " " .. H.quote(prefix .. "/tmp"))
  local last
  for _ = 1, 5 do
    local vars = { prefix = prefix, root = H.ROOT, modules = H.MODULES,
      workers = opts.workers or 1, port = helper.closed_port(), user = H.USER,
      reuseport = opts.reuseport and " reuseport" or "" }
    for k, v in pairs(opts.vars or {}) do vars[k] = v end
    vars.main = fill(opts.main or "", vars)
    vars.http = fill(opts.http or "", vars)
    vars.server = fill(opts.server or "", vars)
    for path, text in pairs(opts.files or {}) do H.write(prefix .. "/" .. path, fill(text, vars)) end
    H.write(prefix .. "/nginx.conf", fill(TEMPLATE, vars))
    H.write(prefix .. "/logs/error.log", "")
    local self = setmetatable({ prefix = prefix, port = vars.port, vars = vars,
      url = "http://127.0.0.1:" .. vars.port, log_path = prefix .. "/logs/error.log" }, Nginx)
    self.process = process.start(table.concat({ H.quote(H.NGINX), "-p", H.quote(prefix .. "/"),
      "-c", H.quote(prefix .. "/nginx.conf"), "-e", H.quote(self.log_path) }, " "), opts.env or {})
    local ok, why = self:wait_ready(10)
    if ok then return self end
    last = why
    self:stop()
    if not why:find("Address already in use", 1, true) then break end
  end
  error("nginx did not start: " .. tostring(last), 2)
end

function Nginx:wait_ready(seconds)
  local deadline = gettime() + seconds
  while gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", self.port)
    c:close()
    if ok then return true end
    local pid = self.process:getpid()
    if pid and not process.alive(pid) then
      return false, "nginx exited: " .. (self:log():sub(-1500)) .. self.process:stderr()
    end
    sleep(0.02)
  end
  return false, "not listening after " .. seconds .. " s: " .. self:log():sub(-1500)
end

function Nginx:log()
  return H.read(self.log_path) or ""
end

-- The lines of an error.log's text at a level, e.g. H.lines(text, "error") for "[error]" (also
-- [crit], [alert], [emerg] when level is "error").
function H.lines(text, level)
  local found = {}
  local levels = level == "error" and { "error", "crit", "alert", "emerg" } or { level }
  for line in text:gmatch("[^\n]+") do
    for _, l in ipairs(levels) do
      if line:find("[" .. l .. "]", 1, true) then
        found[#found + 1] = line
        break
      end
    end
  end
  return found
end

-- This nginx's error.log lines at a level (H.lines).
function Nginx:lines(level)
  return H.lines(self:log(), level)
end

-- Empties error.log (nginx writes in append mode, so it goes on at the start).
function Nginx:reset_log()
  local f = assert(io.open(self.log_path, "w"))
  f:close()
end

-- Stops nginx by its pid (TERM, KILL after 5 s), bounded. Idempotent.
function Nginx:stop()
  if self.process then
    self.process:stop(5)
    self.process = nil
  end
end

function Nginx:remove()
  self:stop()
  if self.prefix and self.prefix:find("thinkific%-nginx%.") then
    os.execute("rm -rf " .. H.quote(self.prefix))
  end
end

------------------------------------------------------------------------------------------------
-- A small HTTP/1.1 client over LuaSocket: one request per connection (Connection: close), read
-- to the end, every wait bounded.
------------------------------------------------------------------------------------------------

-- Builds the request text. req: method, path, headers ({name = value}, or a list of
-- {name, value} sent in order), body, length (a
-- Content-Length to announce instead of #body), chunked (send the body chunked).
function H.request_text(req)
  local lines = { ("%s %s HTTP/1.1"):format(req.method or "GET", req.path or "/"),
    "Host: 127.0.0.1", "Connection: close" }
  local headers = req.headers or {}
  if type(headers[1]) == "table" then -- a list of { name, value }: sent in that order
    for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  else
    for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  end
  local body = req.body or ""
  if req.chunked then
    lines[#lines + 1] = "Transfer-Encoding: chunked"
    local parts, at = {}, 1
    while at <= #body do
      local piece = body:sub(at, at + 4095)
      parts[#parts + 1] = ("%x\r\n%s\r\n"):format(#piece, piece)
      at = at + #piece
    end
    parts[#parts + 1] = "0\r\n\r\n"
    body = table.concat(parts)
  elseif req.body or req.length then
    lines[#lines + 1] = "Content-Length: " .. (req.length or #body)
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

-- Parses a whole answer: status, headers (lower-case names), body (chunked decoded).
function H.parse_response(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil, "incomplete answer: " .. raw:sub(1, 200) end
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked") then
    local out, at = {}, 1
    while true do
      local size_hex, after = body:match("^(%x+)[^\r\n]*\r\n()", at)
      if not size_hex then break end
      local size = tonumber(size_hex, 16)
      if size == 0 then break end
      out[#out + 1] = body:sub(after, after + size - 1)
      at = after + size + 2
    end
    body = table.concat(out)
  end
  return status, headers, body
end

-- Reads one answer from a connection: status line, headers, then the body by Content-Length,
-- chunked, or to the end. Returns status, headers (lower-case names), body, or nil, err.
local function read_response(c)
  local line, err = c:receive("*l")
  if not line then return nil, "receive: " .. tostring(err) end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "not an HTTP answer: " .. line end
  local headers = {}
  while true do
    line, err = c:receive("*l")
    if not line then return nil, "receive: " .. tostring(err) end
    if line == "" then break end
    local name, value = line:match("^([^:]+):[ \t]*(.*)$")
    if name then headers[name:lower()] = value end
  end
  local body
  if (headers["transfer-encoding"] or ""):lower():find("chunked") then
    local parts = {}
    while true do
      line, err = c:receive("*l")
      if not line then return nil, "receive: " .. tostring(err) end
      local size = tonumber(line:match("^(%x+)"), 16)
      if not size or size == 0 then break end
      parts[#parts + 1] = c:receive(size)
      c:receive("*l")
    end
    body = table.concat(parts)
  elseif headers["content-length"] then
    local n = tonumber(headers["content-length"])
    body = n > 0 and c:receive(n) or ""
  else
    local rest, _, partial = c:receive("*a")
    body = rest or partial or ""
  end
  return status, headers, body
end

-- Sends a request and reads its answer. Returns status, headers, body, or nil, err.
function Nginx:request(req, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 10)
  local ok, err = c:connect("127.0.0.1", req.port or self.port)
  if not ok then return nil, "connect: " .. err end
  ok, err = c:send(H.request_text(req))
  if not ok then
    c:close()
    return nil, "send: " .. err
  end
  local status, headers, body = read_response(c)
  c:close()
  return status, headers, body
end

-- Opens a connection and sends a request without waiting for the answer; returns an object
-- with :finish() -> status, headers, body (or nil, err).
function Nginx:send(req, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 10)
  assert(c:connect("127.0.0.1", req.port or self.port))
  assert(c:send(H.request_text(req)))
  return {
    finish = function()
      local status, headers, body = read_response(c)
      c:close()
      return status, headers, body
    end,
  }
end

-- Sends every request of the list at once over its own connection (all written before any
-- answer is read), then reads the answers within `timeout` seconds in all. Returns a list of
-- { status, headers, body } (or { nil, err }), in the order of the requests.
function Nginx:parallel(reqs, timeout)
  local conns = {}
  for i, req in ipairs(reqs) do
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", req.port or self.port))
    conns[i] = { sock = c, text = H.request_text(req), sent = 0, data = {} }
  end
  for _, conn in ipairs(conns) do
    assert(conn.sock:send(conn.text))
    conn.sock:settimeout(0)
  end
  local deadline = gettime() + (timeout or 10)
  local open = #conns
  while open > 0 and gettime() < deadline do
    local socks = {}
    for _, conn in ipairs(conns) do
      if not conn.done then socks[#socks + 1] = conn.sock end
    end
    local readable = socket.select(socks, nil, 0.1)
    for _, conn in ipairs(conns) do
      if not conn.done and readable[conn.sock] then
        local chunk, err, partial = conn.sock:receive(65536)
        local piece = chunk or partial
        if piece and piece ~= "" then conn.data[#conn.data + 1] = piece end
        if err == "closed" then
          conn.done = true
          open = open - 1
          conn.sock:close()
        end
      end
    end
  end
  local results = {}
  for i, conn in ipairs(conns) do
    if not conn.done then
      conn.sock:close()
      results[i] = { nil, "no answer in time" }
    else
      results[i] = { H.parse_response(table.concat(conn.data)) }
    end
  end
  return results
end

------------------------------------------------------------------------------------------------
-- The client inside nginx: the pieces of doc/API.md for thinkific.ngx.transport
------------------------------------------------------------------------------------------------

-- For the http block: the variables the transport sets.
H.API_MAPS = [[
  map "" $thinkific_uri { default ""; }
  map "" $thinkific_host { default ""; }
  map "" $thinkific_authorization { default ""; }
  map "" $thinkific_accept { default ""; }
  map "" $thinkific_content_type { default ""; }
  map "" $thinkific_user_agent { default ""; }
  map "" $thinkific_subdomain { default ""; }
]]

-- An internal location `name` that proxies the transport's subrequests to `upstream`; extra:
-- more directives (a header filter, a timeout).
function H.api_location(name, upstream, extra)
  return ([[
    location = %s {
      internal;
      proxy_pass http://%s$thinkific_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_headers off;
      proxy_set_header Host $thinkific_host;
      proxy_set_header Authorization $thinkific_authorization;
      proxy_set_header Accept $thinkific_accept;
      proxy_set_header Content-Type $thinkific_content_type;
      proxy_set_header User-Agent $thinkific_user_agent;
      proxy_set_header X-Auth-Subdomain $thinkific_subdomain;
      proxy_buffering off;
      %s
    }
]]):format(name, upstream, extra or "")
end

------------------------------------------------------------------------------------------------
-- Counting what handlers did, and deliveries to count
------------------------------------------------------------------------------------------------

-- For H.start{ http = ..., server = ... }: a shared dict `counts` that handlers bump
-- (ngx.shared.counts:incr(key, 1, 0)), and GET /counts, which answers it as JSON.
H.COUNTS_HTTP = "  lua_shared_dict counts 1m;\n"
H.COUNTS_SERVER = [[
    location = /counts {
      content_by_lua_block {
        local d, out = ngx.shared.counts, {}
        for _, k in ipairs(d:get_keys(0)) do out[k] = d:get(k) end
        ngx.print(require("thinkific").encode(out))
      }
    }
]]

-- This nginx's counts (H.COUNTS_SERVER), decoded.
function Nginx:counts()
  local status, _, body = assert(self:request{ path = "/counts" })
  assert(status == 200, "GET /counts: " .. tostring(status))
  return assert(require("thinkific").decode(body))
end

-- A signed order.created delivery of event id with payload: its body and headers.
function H.order_created(secret, id, payload)
  local thinkific = require("thinkific")
  local body = assert(thinkific.encode{ id = id, resource = "order", action = "created",
    tenant_id = "3", created_at = "2024-01-26T17:23:20.940Z", payload = payload or {} })
  return body, { ["Content-Type"] = "application/json", ["X-Thinkific-Topic"] = "order.created",
    ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, secret) }
end

------------------------------------------------------------------------------------------------
-- A private redis-server (Debian's): its own config in a temp directory (the data there too,
-- appendonly yes), a free loopback port, a child process stopped by pid; restartable on the same
-- port and data, and freezable (SIGSTOP) to play a Redis that does not answer.
------------------------------------------------------------------------------------------------
H.REDIS = os.getenv("REDIS_SERVER") or "/usr/bin/redis-server"

local Redis = {}
Redis.__index = Redis

-- Starts redis-server. opts: password (requirepass). Raises with its log's end when it does
-- not answer PING within 10 s; a port taken meanwhile is retried with another one.
function H.redis(opts)
  opts = opts or {}
  local self = setmetatable({ dir = H.tmpdir(), password = opts.password }, Redis)
  self.log_path = self.dir .. "/redis.log"
  local last
  for _ = 1, 5 do
    self.port = helper.closed_port()
    local ok, why = self:start()
    if ok then return self end
    last = why
    self:stop()
    if not why:find("Address already in use", 1, true) then break end
  end
  self:remove()
  error("redis-server did not start: " .. tostring(last), 2)
end

-- (Re)starts the server on its port and data directory; true, or false, why.
function Redis:start()
  local conf = { "bind 127.0.0.1", "port " .. self.port, "daemonize no", "protected-mode yes",
    "dir " .. self.dir, "appendonly yes", 'save ""', "logfile " .. self.log_path }
  if self.password then conf[#conf + 1] = "requirepass " .. self.password end
  H.write(self.dir .. "/redis.conf", table.concat(conf, "\n") .. "\n")
  self.process = process.start(H.quote(H.REDIS) .. " " .. H.quote(self.dir .. "/redis.conf"), {})
  local deadline = gettime() + 10
  while gettime() < deadline do
    if self:call("PING") == "PONG" then return true end -- call sends AUTH first when needed
    local pid = self.process:getpid()
    if pid and not process.alive(pid) then
      return false, "redis-server exited: " .. (H.read(self.log_path) or ""):sub(-1500)
        .. self.process:stderr()
    end
    sleep(0.02)
  end
  return false, "no PONG after 10 s: " .. (H.read(self.log_path) or ""):sub(-1500)
end

-- Reads one RESP reply: a string or a number, a list, nil (null), or false, message (an error).
local function resp_reply(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return false, rest end
  if kind == ":" then return tonumber(rest) end
  local n = tonumber(rest)
  if kind == "$" then
    if n < 0 then return nil end
    local data = c:receive(n + 2)
    return data and data:sub(1, n)
  end
  if kind == "*" then
    if n < 0 then return nil end
    local list = {}
    for i = 1, n do list[i] = resp_reply(c) end
    return list
  end
  return nil, "not a RESP reply: " .. line
end

-- One command on a connection of its own (with AUTH when the server has a password), within
-- 2 s: the reply as resp_reply gives it; nil, err when the server does not answer.
function Redis:call(...)
  local c = socket.tcp()
  c:settimeout(2)
  local ok, err = c:connect("127.0.0.1", self.port)
  if not ok then return nil, err end
  local function send(args)
    local parts = { "*" .. #args .. "\r\n" }
    for _, a in ipairs(args) do
      a = tostring(a)
      parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return c:send(table.concat(parts))
  end
  if self.password then
    send({ "AUTH", self.password })
    resp_reply(c)
  end
  send({ ... })
  local reply, why = resp_reply(c)
  c:close()
  return reply, why
end

function Redis:pid()
  return self.process and self.process:getpid()
end

-- SIGSTOP: the server keeps its port (the kernel still accepts connections) and answers nothing.
function Redis:freeze()
  os.execute("kill -STOP " .. self:pid())
end

function Redis:thaw()
  os.execute("kill -CONT " .. self:pid())
end

-- Stops the server by its pid (TERM: it writes its append-only file; KILL after 5 s). A frozen
-- server is thawed first. Idempotent.
function Redis:stop()
  if self.process then
    local pid = self:pid()
    if pid then self:thaw() end
    self.process:stop(5)
    self.process = nil
  end
end

function Redis:remove()
  self:stop()
  if self.dir and self.dir:find("thinkific%-nginx%.") then os.execute("rm -rf " .. H.quote(self.dir)) end
end

return H
