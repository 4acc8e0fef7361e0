-- thinkific.listen: a local receiver of deliveries. An HTTP server (thinkific.http.server on
-- its loop: several connections at once, keep-alive, every wait bounded) that hands the raw
-- body and headers of each POST to router:handle, or to an inbox (thinkific.inbox) that stores
-- it, and answers its status and JSON body. With an inbox, the deliveries read in one round of
-- the loop are stored in one transaction (group commit) and answered after it.
local socket = require("socket")
local args = require("thinkific.args")
local http_server = require("thinkific.http.server")
local respond = require("thinkific.http.respond")

local argerror, callable = args.error, args.callable
local gettime = socket.gettime
local format, lower, min = string.format, string.lower, math.min
local type, pcall, tostring, setmetatable = type, pcall, tostring, setmetatable

local is_integer = require("thinkific.integer").is_integer

local _M = {}

local OPTIONS = {
  router = true, inbox = true, group_commit = true, host = true, port = true, log = true,
  max_connections = true, idle_timeout = true,
}

local DEFAULT_MAX_BODY = 1048576

local HEALTH = "thinkific listen: ready\n"

local Server = {}
Server.__index = Server

-- Header names arrive lower-cased; looking one up in any case works (as in OpenResty).
local HEADERS = {
  __index = function(t, k)
    if type(k) == "string" then
      local l = lower(k)
      if l ~= k then return rawget(t, l) end
    end
  end,
}

-- What may appear of a peer's text in a log line: no control characters, no spaces, short.
local function clean(v)
  if v == nil then return "-" end
  local s = tostring(v):gsub("[^%w%._%-:*]", "?")
  if s == "" then return "-" end
  return s:sub(1, 80)
end

local function log_function(log)
  if log == false then return nil end
  if log == nil then log = io.stderr end
  if callable(log) then return log end
  return function(line)
    log:write(line, "\n")
    if log.flush then log:flush() end
  end
end

-- Topic and event id of a delivery: from the envelope the router verified and decoded, else
-- from the X-Thinkific-Topic header and "-".
local function describe(event, headers)
  if type(event) == "table" and type(event.resource) == "string"
      and type(event.action) == "string" then
    return clean(event.resource .. "." .. event.action), clean(event.id)
  end
  return clean(headers["x-thinkific-topic"]), "-"
end

-- The headers router:handle asked for (Retry-After with a 503): string names of token
-- characters, string or number values without CR, LF or NUL. Anything else is left out.
local function extra_headers(extra)
  if type(extra) ~= "table" then return nil end
  local out = {}
  for name, value in pairs(extra) do
    if type(name) == "string" and name:find("^[%w!#$%%&'*+.^_`|~-]+$")
        and (type(value) == "number" or type(value) == "string"
          and not value:find("[\r\n]") and not value:find("\0", 1, true)) then
      out[name] = value
    end
  end
  return out
end

-- Group commit: the delivery joins this round's group and its coroutine waits (parked) until
-- _commit_group has stored the group at the end of the round. Returns as pcall would.
function Server:_join_group(body, headers)
  local n = #self.group + 1
  self.group[n] = { body = body, headers = headers }
  self.parked[n] = coroutine.running()
  return self.httpd.loop:park()
end

-- At the end of each round (the loop's after_round, in the main thread): one accept_many for
-- the deliveries read in the round, then each parked coroutine resumes with its answer.
function Server:_commit_group(loop)
  local group, parked = self.group, self.parked
  if #group == 0 then return end
  self.group, self.parked = {}, {}
  local ok, results = pcall(self.inbox.accept_many, self.inbox, group)
  -- Ctrl-C lands in the main thread, here too: it ends the server, not this group's answers.
  if not ok and tostring(results):find("interrupted!$") then error(results, 0) end
  for i, co in ipairs(parked) do
    local r = ok and results[i]
    if r then
      loop:unpark(co, true, r.status, r.body, r.event, r.headers)
    else
      loop:unpark(co, false, ok and "no result" or results)
    end
  end
end

-- The answer to a delivery: ok, status, body, event, headers (as pcall of router:handle).
function Server:_answer(body, headers)
  local inbox = self.inbox
  if not inbox then return pcall(self.router.handle, self.router, body, headers) end
  if self.group then return self:_join_group(body, headers) end
  return pcall(inbox.accept, inbox, body, headers)
end

function Server:_delivery(req)
  local headers = setmetatable(req.headers, HEADERS)
  local t0 = gettime()
  local ok, status, body, event, extra = self:_answer(req.body, headers)
  local ms = (gettime() - t0) * 1000
  if not ok then
    self.httpd.on_error("thinkific listen: " .. self.what .. " raised: " .. tostring(status))
    status, body, extra = 500, '{"error":"the router failed"}', nil
  elseif not is_integer(status) or status < 200 or status > 599 then
    self.httpd.on_error("thinkific listen: " .. self.what .. " returned no HTTP status")
    status, body, extra = 500, '{"error":"the router failed"}', nil
  end
  if self.log then
    local topic, id = describe(event, headers)
    self.log(format("%s %s %d %.1f ms", topic, id, status, ms))
  end
  return respond.json(status, type(body) == "string" and body or "", extra_headers(extra))
end

function Server:_handle(_, req)
  if req.method == "POST" then return self:_delivery(req) end
  if req.method == "GET" or req.method == "HEAD" then
    if req.path ~= "/" then return respond.error(404, "Not found") end
    -- (The server leaves out the body of an answer to HEAD.)
    return { status = 200, headers = { ["Content-Type"] = "text/plain; charset=utf-8" },
      body = HEALTH }
  end
  return respond.error(405, "Method not allowed", { Allow = "GET, HEAD, POST" })
end

local function check_open(self, name)
  if getmetatable(self) ~= Server then argerror(0, name, "listen server expected: call it with ':'") end
  if self.httpd.closed then
    error(format("thinkific.listen: '%s' on a closed server", name), 3)
  end
end

-- Runs one round of the loop: waits at most max_wait seconds (default 1) for requests.
function Server:step(max_wait)
  check_open(self, "step")
  if max_wait ~= nil and type(max_wait) ~= "number" then
    argerror(1, "step", "seconds expected, got " .. type(max_wait))
  end
  self.httpd:step(max_wait)
end

-- Serves until stop() (from a handler, say), then closes.
function Server:run()
  check_open(self, "run")
  self.httpd:run()
end

-- Serves until predicate() is true (checked before each round) or timeout seconds (default
-- 10) have passed. Returns true when predicate() became true, false on timeout.
function Server:run_until(predicate, timeout)
  check_open(self, "run_until")
  if not callable(predicate) then argerror(1, "run_until", "function expected") end
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    argerror(2, "run_until", "seconds expected")
  end
  local deadline = gettime() + (timeout or 10)
  while true do
    if predicate() then return true end
    local left = deadline - gettime()
    if left <= 0 or self.httpd.closed then return false end
    self.httpd:step(min(left, 0.05))
  end
end

function Server:stop()
  self.httpd:stop()
end

-- Closes the listening socket and every connection. Idempotent.
function Server:close()
  if self.httpd then self.httpd:close() end
end

Server.__close = Server.close
Server.__gc = Server.close
Server.__name = "thinkific.listen.Server"
Server.__tostring = function(self)
  return "thinkific.listen.Server (" .. tostring(self.url) .. ")"
end

local function check_options(opts)
  if type(opts) ~= "table" then argerror(1, "serve", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then argerror(1, "serve", "unknown option '" .. tostring(k) .. "'") end
  end
  local router, inbox = opts.router, opts.inbox
  if (router == nil) == (inbox == nil) then
    argerror(1, "serve", "router or inbox expected, one of them (router = thinkific.router{...})")
  end
  local ok, fits
  if inbox ~= nil then
    ok, fits = pcall(function()
      return callable(inbox.accept) and callable(inbox.accept_many) and inbox.router ~= nil
    end)
  else
    ok, fits = pcall(function() return callable(router.handle) end)
  end
  local what = inbox ~= nil and "inbox" or "router"
  if (type(opts[what]) ~= "table" and type(opts[what]) ~= "userdata") or not ok or not fits then
    argerror(1, "serve", what .. " expected (" .. what .. " = thinkific." .. what .. "{...})")
  end
  if opts.group_commit ~= nil and type(opts.group_commit) ~= "boolean" then
    argerror(1, "serve", "group_commit must be a boolean")
  end
  if opts.host ~= nil and type(opts.host) ~= "string" then
    argerror(1, "serve", "host must be a string")
  end
  local port = opts.port
  if port ~= nil and (not is_integer(port) or port < 0 or port > 65535) then
    argerror(1, "serve", "port must be an integer 0..65535")
  end
  local log = opts.log
  if not (log == nil or log == false or callable(log)
      or (type(log) == "userdata" or type(log) == "table") and log.write) then
    argerror(1, "serve", "log must be a file, a function(line) or false")
  end
  local maxc = opts.max_connections
  if maxc ~= nil and (not is_integer(maxc) or maxc < 1 or maxc > 1000) then
    argerror(1, "serve", "max_connections must be an integer 1..1000")
  end
  local idle = opts.idle_timeout
  if idle ~= nil and (type(idle) ~= "number" or idle ~= idle or idle <= 0) then
    argerror(1, "serve", "idle_timeout must be a positive number of seconds")
  end
end

--- listen.serve{ router | inbox, group_commit = true, host, port, log, max_connections,
---   idle_timeout } -> server | nil, err
function _M.serve(opts)
  check_options(opts)
  local inbox = opts.inbox
  local router = opts.router or inbox.router
  -- Bodies over the router's limit get 413 from the Content-Length, before they are read.
  local max_body = type(router.max_body) == "number" and router.max_body or DEFAULT_MAX_BODY
  local self = setmetatable({ router = router, inbox = inbox, log = log_function(opts.log),
    what = inbox and "inbox:accept" or "router:handle" }, Server)
  local grouped = inbox and opts.group_commit ~= false
  if grouped then self.group, self.parked, self.what = {}, {}, "inbox:accept_many" end
  local httpd, err = http_server.new({
    host = opts.host or "127.0.0.1", port = opts.port or 0,
    max_connections = opts.max_connections or 128, idle_timeout = opts.idle_timeout or 30,
    limits = { body = math.floor(max_body) }, name = "thinkific-listen",
    on_error = function(message)
      io.stderr:write("thinkific listen: ", tostring(message), "\n")
    end,
    handle = function(conn, req) return self:_handle(conn, req) end,
    after_round = grouped and function(loop) self:_commit_group(loop) end or nil,
    -- Every delivery already on its way joins the group before the commit: one disk sync less.
    -- (A connection joins once a round: when all have, there is nothing to wait for.)
    gather = grouped and function()
      local n = #self.group
      return n > 0 and n < self.httpd.nconns
    end or nil,
  })
  if not httpd then return nil, err end
  self.httpd, self.host, self.port = httpd, httpd.host, httpd.port
  self.url = httpd.root .. "/"
  return self
end

return _M
