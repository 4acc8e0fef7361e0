-- The router for incoming deliveries: verifies the signature over the raw bytes, decodes the
-- envelope, claims its id, and runs every handler registered for its topic, each protected.
-- A claim is a lease ("running" for lease seconds), then "done" for keep seconds once the
-- handlers succeeded: a copy that finds it running is told to come back later (503), never
-- acknowledged while the attempt may still fail (doc/API.md, "Claims").
local integer = require("thinkific.integer")
local lru = require("thinkific.lru")
local intake = require("thinkific.intake")
local args = require("thinkific.args")
local argerror, callable = args.error, args.callable

local type, pairs, ipairs, tostring, xpcall, pcall = type, pairs, ipairs, tostring, xpcall, pcall
local traceback, setmetatable, format = debug.traceback, setmetatable, string.format
local ceil, huge = math.ceil, math.huge

local _M = {}
local Router = {}
Router.__index = Router

local OK = '{"status":"ok"}'
local DUPLICATE = '{"status":"duplicate"}'
local STORE_FAILED = '{"error":"dedupe store failed"}'
local IN_PROGRESS = '{"error":"in progress"}'
local HANDLER_FAILED = '{"error":"a handler failed"}'

local id_text = integer.id_text
-- The intake checks (size, signature, envelope, topic header) live in intake.lua, which the
-- inbox shares, so both refuse exactly the same deliveries.
local intake_check, canonical, header = intake.check, intake.canonical, intake.header

local OPTIONS = {
  secret = true, secrets = true, max_body = true, dedupe = true, lease = true, keep = true,
}

-- What a claim holds: an attempt is running, or the handlers succeeded. Any other value a
-- store holds (true, as 0.1.0 wrote) counts as done.
local RUNNING, DONE = "running", "done"
local STORE_METHODS = { "add", "set", "get", "delete" }

-- A count (dedupe, max_body): a number >= 0 with no fractional part (100.0 counts too).
local function is_count(n)
  return type(n) == "number" and n >= 0 and n == math.floor(n)
end

local function check_secrets(opts)
  local secrets = opts.secrets
  if opts.secret ~= nil and secrets ~= nil then
    argerror(1, "router", "give secret or secrets, not both")
  end
  if opts.secret ~= nil then secrets = { opts.secret } end
  if type(secrets) ~= "table" or #secrets == 0 then
    argerror(1, "router", "a router needs secret = \"...\" or secrets = {\"new\", \"old\"}")
  end
  local list = {}
  for i, s in ipairs(secrets) do
    if type(s) ~= "string" or s == "" then
      argerror(1, "router", "each secret must be a non-empty string")
    end
    list[i] = s
  end
  return list
end

local function check_store(dedupe)
  if dedupe == nil then return lru.new(10000) end
  if is_count(dedupe) then return dedupe > 0 and lru.new(dedupe) or nil end
  if type(dedupe) ~= "table" and type(dedupe) ~= "userdata" then
    argerror(1, "router", "dedupe must be a whole number or a store with add, set, get and "
      .. "delete, got " .. type(dedupe))
  end
  local missing = {}
  for _, name in ipairs(STORE_METHODS) do
    local ok, method = pcall(function() return dedupe[name] end)
    if not (ok and callable(method)) then missing[#missing + 1] = name end
  end
  if #missing > 0 then
    argerror(1, "router", "the dedupe store has no method " .. table.concat(missing, " or ")
      .. " (a store needs add, set, get and delete)")
  end
  return dedupe
end

-- A finite number of seconds: lease > 0 (a claim that never expires is what a dead holder
-- leaves behind), keep >= 0 (0: kept for ever).
local function check_seconds(value, name, default, bound)
  if value == nil then return default end
  local ok = type(value) == "number" and value < huge
    and (bound == "> 0" and value > 0 or bound == ">= 0" and value >= 0)
  if not ok then argerror(1, "router", name .. " must be a number of seconds " .. bound) end
  return value
end

--- router.new{ secret | secrets, max_body, dedupe, lease, keep } -> router
function _M.new(opts)
  if type(opts) ~= "table" then argerror(1, "router", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then argerror(1, "router", "unknown option '" .. tostring(k) .. "'") end
  end
  local max_body = opts.max_body or 1048576
  if not is_count(max_body) or max_body < 1 then
    argerror(1, "router", "max_body must be a whole number of bytes >= 1")
  end
  local secrets = check_secrets(opts)
  return setmetatable({
    secrets = #secrets == 1 and secrets[1] or secrets,
    max_body = max_body,
    store = check_store(opts.dedupe),
    lease = check_seconds(opts.lease, "lease", 60, "> 0"),
    keep = check_seconds(opts.keep, "keep", 604800, ">= 0"),
    routes = {},      -- registrations in order
    by_topic = {},    -- topic -> the registrations that match it, in order (a cache)
    error_handler = nil,
  }, Router)
end

local function check_router(self, fname)
  if getmetatable(self) ~= Router then argerror(0, fname, "router expected: call it with ':'") end
end

local function check_topic(topic, fname)
  if type(topic) ~= "string"
    or not (topic == "*" or topic:match("^[%w_]+%.%*$") or topic:match("^[%w_]+%.[%w_]+$")) then
    argerror(1, fname, "topic must be \"resource.action\", \"resource.*\" or \"*\", got "
      .. (type(topic) == "string" and ("%q"):format(topic) or type(topic)))
  end
  return canonical(topic)
end

-- Value at a dotted path ("user.email") of t, or nil.
local function at_path(t, path)
  for key in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    t = t[key]
  end
  return t
end

-- A table filter: every path's value equals the wanted one (thinkific.null matches null).
local function table_matcher(filter)
  local checks = {}
  for path, want in pairs(filter) do
    if type(path) ~= "string" or path == "" then
      argerror(2, "on", "filter keys must be field names or dotted paths")
    end
    checks[#checks + 1] = { path, want }
  end
  return function(event)
    local payload = event.payload
    for i = 1, #checks do
      local check = checks[i]
      if at_path(payload, check[1]) ~= check[2] then return false end
    end
    return true
  end
end

--- router:on(topics, [filter], handler) -> registration
function Router:on(topics, filter, handler)
  check_router(self, "on")
  if handler == nil then filter, handler = nil, filter end
  if not callable(handler) then argerror(2, "on", "handler function expected") end
  local list = type(topics) == "table" and topics or { topics }
  if #list == 0 then argerror(1, "on", "at least one topic expected") end
  local set = {}
  for i = 1, #list do set[check_topic(list[i], "on")] = true end
  local match
  if type(filter) == "table" then
    match = table_matcher(filter)
  elseif callable(filter) then
    match = filter
  elseif filter ~= nil then
    argerror(2, "on", "filter must be a table of field values or a function")
  end
  local route = { topics = set, match = match, handler = handler }
  self.routes[#self.routes + 1] = route
  self.by_topic = {}
  return route
end

--- router:off(registration) -> true when it was registered
function Router:off(route)
  check_router(self, "off")
  for i, r in ipairs(self.routes) do
    if r == route then
      table.remove(self.routes, i)
      self.by_topic = {}
      return true
    end
  end
  return false
end

--- router:on_error(function(err, event, ctx)) -> router
function Router:on_error(fn)
  check_router(self, "on_error")
  if fn ~= nil and not callable(fn) then argerror(1, "on_error", "function expected") end
  self.error_handler = fn
  return self
end

local function routes_for(self, topic)
  local found = self.by_topic[topic]
  if found then return found end
  local resource = topic:match("^([^.]*)%.")
  local wild = resource and (resource .. ".*")
  found = {}
  for _, r in ipairs(self.routes) do
    local t = r.topics
    if t[topic] or t["*"] or (wild and t[wild]) then found[#found + 1] = r end
  end
  self.by_topic[topic] = found
  return found
end

local function report(self, err, event, ctx)
  local fn = self.error_handler
  if fn then pcall(fn, err, event, ctx) end -- an error handler that fails changes nothing
end

local function envelope_topic(event)
  local resource, action = event.resource, event.action
  if type(resource) ~= "string" or type(action) ~= "string" then return nil end
  return canonical(resource .. "." .. action)
end

-- Runs the handlers of topic in registration order, each protected; each failure goes to
-- on_error. Returns true, or false and the error messages.
local function run(self, event, topic, ctx)
  local errs
  local routes = routes_for(self, topic)
  for i = 1, #routes do
    local r = routes[i]
    local wanted, ok, err = true, true, nil
    if r.match then
      ok, err = xpcall(r.match, traceback, event, ctx)
      wanted = ok and err
    end
    if wanted then ok, err = xpcall(r.handler, traceback, event, ctx) end
    if not ok then
      errs = errs or {}
      errs[#errs + 1] = err
      report(self, err, event, ctx)
    end
  end
  if errs then return false, errs end
  return true
end

--- router:dispatch(event, ctx) -> ok, errs
-- The handlers of a decoded event: no signature, no dedupe.
function Router:dispatch(event, ctx)
  check_router(self, "dispatch")
  if type(event) ~= "table" then argerror(1, "dispatch", "event table expected") end
  local topic = envelope_topic(event)
  if not topic then argerror(1, "dispatch", "event needs string resource and action") end
  local ok, errs = run(self, event, topic, ctx or { topic = topic, headers = {} })
  return ok, errs or {}
end

-- The dedupe key of an id: its text, every digit of an integer kept (LuaJIT's tostring
-- keeps 14 significant digits, so distinct 15- and 16-digit ids would share one key).
local function id_key(id)
  return id_text(id) or tostring(id)
end

-- Did a protected set or delete fail? It raised, or said false, or nil with a message (a raw
-- ngx.shared.DICT's delete returns nothing at all: success).
local function failed(ok, result, err)
  return not ok or result == false or (result == nil and err ~= nil)
end

-- Claims id for lease seconds. Returns "new" (claimed now: run the handlers), RUNNING (another
-- attempt holds it), DONE, or nil when the store failed (or raised).
local function claim(store, id, lease)
  for _ = 1, 2 do
    local ok, added, err = pcall(store.add, store, id, RUNNING, lease)
    if not ok then return nil end
    if added then return "new" end
    if err ~= "exists" then return nil end
    local value
    ok, value, err = pcall(store.get, store, id)
    if not ok or (value == nil and err ~= nil) then return nil end
    if value == RUNNING then return RUNNING end
    if value ~= nil then return DONE end
    -- Gone between add and get (expired, or its attempt failed): claim it once more.
  end
  return RUNNING -- gone twice in a row: other copies are at it; come back later
end

--- router:handle(raw_body, headers) -> status, body, event, response_headers
-- event: the decoded envelope, once the signature and its shape were checked (for logs).
-- response_headers: with 503, { ["Retry-After"] = lease seconds, rounded up }.
function Router:handle(body, headers)
  check_router(self, "handle")
  if type(body) ~= "string" then
    argerror(1, "handle", "the raw body string expected (signatures are over the raw bytes), got "
      .. type(body))
  end
  if headers ~= nil and type(headers) ~= "table" then
    argerror(2, "handle", "headers table expected, got " .. type(headers))
  end
  headers = headers or {}
  local event, topic_or_status, refusal, decoded = intake_check(self, body, headers)
  if not event then return topic_or_status, refusal, decoded end
  local topic = topic_or_status

  local store, id = self.store, id_key(event.id)
  if store then
    -- Claimed before the handlers run: concurrent copies of one delivery run them once.
    local state = claim(store, id, self.lease)
    if state == nil then return 500, STORE_FAILED, event end
    if state == RUNNING then
      return 503, IN_PROGRESS, event, { ["Retry-After"] = format("%.0f", ceil(self.lease)) }
    end
    if state == DONE then return 200, DUPLICATE, event end
  end
  local ctx = { topic = topic, subdomain = header(headers, "x-thinkific-subdomain"),
    headers = headers }
  if run(self, event, topic, ctx) then
    -- The handlers ran, but an id the store failed to mark done is answered 500 all the same
    -- (a store failure anywhere is): Thinkific delivers again, and once the lease is over the
    -- handlers run again (at least once, never lost).
    if store and failed(pcall(store.set, store, id, DONE, self.keep)) then
      return 500, STORE_FAILED, event
    end
    return 200, OK, event
  end
  -- Forgotten, so that Thinkific's next attempt runs them again. When even that fails, the
  -- claim expires with its lease.
  if store then pcall(store.delete, store, id) end
  return 500, HANDLER_FAILED, event
end

return _M
