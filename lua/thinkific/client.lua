-- The client's API methods (policy: arguments, pagination) and its options (names, defaults,
-- messages); the C core builds requests and decodes answers, retry.lua decides on retries.
-- The API methods are added to core.client_methods, the __index table of the C userdata
-- thinkific.Client (its C methods are listed in src/client.c), so a client is one object with
-- one close().
local core = require("thinkific.core")
local retry = require("thinkific.retry")
local sync = require("thinkific.sync")
local integer = require("thinkific.integer")
local budget_mod = require("thinkific.budget")
local VERSION = require("thinkific.version")

local methods = core.client_methods
local client_state = core.client_state
local new_client = core.new_client
local make_error = core.error
local run = retry.run
local via_transport = retry.via_transport
local exchange = methods._exchange
local is_integer, is_id = integer.is_integer, integer.is_id
local type, pairs, ipairs, getmetatable, error, tostring = type, pairs, ipairs, getmetatable, error,
  tostring

local _M = {}

-- Each client's Lua-side state (also its C user value), found here without a C call.
local states = setmetatable({}, { __mode = "k" })

local DEFAULTS = {
  base_url = "https://api.thinkific.com/api/v2", user_agent = "lua-thinkific/" .. VERSION,
  timeout = 30, connect_timeout = 10, max_response_size = 16 * 1024 * 1024,
  retries = 3, max_retry_wait = 60, max_pages = 10000,
}

local OPTION_TYPES = {
  api_key = "string", access_token = "string", subdomain = "string", base_url = "string",
  timeout = "number", connect_timeout = "number", retries = "number",
  max_retry_wait = "number", verify_tls = "boolean", ca_file = "string",
  user_agent = "string", transport = "function", sleep = "function",
  allow_blocking = "boolean", max_response_size = "number", max_pages = "number",
  rate_limit = "number", rate_limit_store = "string", rate_window = "number",
}

-- Options that reach the wire (or name a file), checked for CR, LF and NUL.
local ONE_LINE = { "api_key", "access_token", "subdomain", "user_agent", "ca_file", "base_url" }

local args = require("thinkific.args")
local argerror, callable, webhook_fields = args.error, args.callable, args.webhook_fields
local one_line = args.one_line

local function check_options(opts)
  if type(opts) ~= "table" then argerror(1, "new", "table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local want = OPTION_TYPES[k]
    if not want then argerror(1, "new", "unknown option '" .. tostring(k) .. "'") end
    local ok = type(v) == want or (want == "function" and callable(v))
      or (k == "rate_limit" and v == false)
    if not ok then
      argerror(1, "new", ("option '%s' must be a %s, got %s"):format(k, want, type(v)))
    end
  end
  -- Nothing user-supplied may add a header or split a request line.
  for _, k in ipairs(ONE_LINE) do
    local v = opts[k]
    if v and not one_line(v) then
      argerror(1, "new", ("'%s' must not contain CR, LF or NUL"):format(k))
    end
  end
  local credential = opts.api_key or opts.access_token
  if (opts.api_key == nil) == (opts.access_token == nil) then
    argerror(1, "new", "give exactly one of 'api_key' and 'access_token'")
  end
  if credential == "" then argerror(1, "new", "the credential must not be empty") end
  if opts.base_url and not (opts.base_url:find("^http://") or opts.base_url:find("^https://")) then
    argerror(1, "new", "'base_url' must start with http:// or https://")
  end
  -- What is a password must be certain before tostring(client) and messages can hide it.
  local at_problem = opts.base_url and args.userinfo_problem(opts.base_url)
  if at_problem then argerror(1, "new", "'base_url' " .. at_problem) end
  for _, k in ipairs{ "timeout", "connect_timeout", "max_response_size" } do
    local v = opts[k]
    if v and (v ~= v or v <= 0) then -- NaN too
      argerror(1, "new", ("'%s' must be a positive number"):format(k))
    end
  end
  if opts.retries and (not is_integer(opts.retries) or opts.retries < 0) then
    argerror(1, "new", "option 'retries' must be an integer >= 0")
  end
  if opts.max_pages and (not is_integer(opts.max_pages) or opts.max_pages < 1) then
    argerror(1, "new", "option 'max_pages' must be an integer >= 1")
  end
  if opts.max_retry_wait and opts.max_retry_wait < 0 then
    argerror(1, "new", "option 'max_retry_wait' must be >= 0")
  end
  if opts.rate_limit ~= nil then budget_mod.check_limit(opts.rate_limit, "new") end
  if opts.rate_window and not (opts.rate_window > 0 and opts.rate_window <= 60) then -- NaN too
    argerror(1, "new", "option 'rate_window' must be a number of seconds, over 0 and at most 60")
  end
end

-- The client's budget (thinkific.budget), or nil when it has no rate limit. Raises for a
-- store URL that names no store, or a store for a client without a limit.
local function budget_of(opts, base_url, timeout)
  local limit = opts.rate_limit
  if limit == nil then limit = budget_mod.default_limit(base_url) end
  local store = opts.rate_limit_store
  if not limit then
    if store then
      argerror(1, "new", "'rate_limit_store' needs a rate limit: give 'rate_limit' (there is no "
        .. "default for a base_url other than Thinkific's API)")
    end
    return nil
  end
  local spec = store and budget_mod.check_store(store, "new")
  if spec and spec.kind == "sql" and rawget(_G, "ngx") and not opts.allow_blocking then
    argerror(1, "new", "inside nginx a SQL 'rate_limit_store' would block the worker: use "
      .. "\"ngx:DICT\" (a lua_shared_dict), or allow_blocking = true on purpose")
  end
  return budget_mod.new{ limit = limit, window = opts.rate_window, store = spec,
    attempt_time = timeout,
    site = budget_mod.site(opts.subdomain, base_url, opts.api_key or opts.access_token) }
end

--- thinkific.new(opts) -> client
function _M.new(opts)
  check_options(opts)
  -- Inside nginx, libcurl would block the worker: refuse unless asked for on purpose.
  if rawget(_G, "ngx") and not opts.transport and not opts.allow_blocking then
    error("bad argument #1 to 'new' (inside nginx a client needs a non-blocking transport: pass "
      .. "transport = require('thinkific.ngx').transport{ location = '/_thinkific' } "
      .. "(or allow_blocking = true on purpose, e.g. in init_by_lua))", 2)
  end
  local base_url = (opts.base_url or DEFAULTS.base_url):gsub("/+$", "")
  local timeout = opts.timeout or DEFAULTS.timeout
  local budget = budget_of(opts, base_url, timeout)
  local client = new_client{
    authorization = "Bearer " .. (opts.api_key or opts.access_token),
    user_agent = opts.user_agent or DEFAULTS.user_agent, subdomain = opts.subdomain,
    base_url = base_url,
    ca_file = opts.ca_file, verify_tls = opts.verify_tls ~= false,
    timeout = timeout,
    connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
    max_response_size = opts.max_response_size or DEFAULTS.max_response_size,
  }
  local state = client_state(client)
  states[client] = state
  state.transport = opts.transport
  state.sleep = opts.sleep
  -- Under nginx, waits between retries must not block the worker either: with a transport
  -- (thinkific.ngx.transport), ngx.sleep unless another sleep was given.
  local ngx = rawget(_G, "ngx")
  if not state.sleep and opts.transport and type(ngx) == "table" and type(ngx.sleep) == "function" then
    state.sleep = ngx.sleep
  end
  state.retries = opts.retries or DEFAULTS.retries
  state.max_retry_wait = opts.max_retry_wait or DEFAULTS.max_retry_wait
  state.max_pages = opts.max_pages or DEFAULTS.max_pages
  state.budget = budget
  return client
end

-- close() also lets go of the budget's store (a database connection); a closed client has no
-- budget, so that its calls reach the C method's "closed" error.
local c_close = methods.close
function methods:close()
  local state = states[self]
  if state and state.budget then
    state.budget:close()
    state.budget = nil
  end
  return c_close(self)
end

local function check_self(self, fname)
  local mt = getmetatable(self)
  if type(mt) ~= "table" or mt.__index ~= methods then
    argerror(0, fname, ("thinkific.Client expected, got %s: call it with ':'"):format(type(self)))
  end
end

--- client:budget() -> { limit, remaining, refill_at, window } | false (no rate limit) | nil, err
function methods:budget()
  check_self(self, "budget")
  local state = client_state(self) -- raises on a closed client
  if not state.budget then return false end
  local b, err = state.budget:state()
  return b, err
end

local function check_id(id, n, fname)
  if not is_id(id) then
    argerror(n, fname, id == "" and "id must not be empty"
      or "id must be a string or an integer, got " .. type(id))
  end
end

-- A decode error for a 2xx answer that is not the JSON expected.
local function decode_error(message, method, path, attempts, status)
  return make_error{ kind = "decode", message = message, method = method, path = path,
    attempts = attempts, status = status, sent = true }
end

-- One API call through the retry policy, over the user's transport or the built-in libcurl
-- one. A 2xx answer must be a JSON object (a list page, a webhook, an event) unless it is the
-- answer of a DELETE.
local function call(self, method, path, id, query, body)
  local state = states[self] or client_state(self)
  local want_object = method ~= "DELETE"
  if state.transport then
    local req, full_path = self:_build_request(method, path, id, query, body)
    return run(state, method, via_transport, state.transport, req, full_path, want_object)
  end
  return run(state, method, exchange, self, method, path, id, query, body, want_object)
end

local function check_limit(limit, fname)
  if limit ~= nil and (not is_integer(limit) or limit < 1 or limit > 250) then
    argerror(1, fname, "limit must be an integer from 1 to 250")
  end
end

local function list_query(opts, fname)
  if opts == nil then return nil end
  if type(opts) ~= "table" then argerror(1, fname, "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "limit" and k ~= "next" and k ~= "page" then
      argerror(1, fname, "unknown option '" .. tostring(k) .. "'")
    end
  end
  check_limit(opts.limit, fname)
  if opts.next ~= nil and type(opts.next) ~= "string" then
    argerror(1, fname, "next must be a string cursor")
  end
  if opts.page ~= nil and (not is_integer(opts.page) or opts.page < 1) then
    argerror(1, fname, "page must be an integer >= 1")
  end
  if opts.next ~= nil and opts.page ~= nil then
    argerror(1, fname, "give next or page, not both")
  end
  return { limit = opts.limit, next = opts.next, page = opts.page }
end

-- The next page from either pagination shape, nil at the end.
local function next_of(meta)
  if type(meta) ~= "table" then return nil end
  local page, pagination = meta.page, meta.pagination
  if type(page) == "table" then
    local cursor = page.next_page
    if type(cursor) == "string" and cursor ~= "" and page.has_next ~= false then return cursor end
    if type(cursor) == "number" and page.has_next ~= false then return cursor end
  elseif type(pagination) == "table" then
    local n = pagination.next_page
    if type(n) == "number" then return n end
    if type(n) == "string" and n:match("^%d+$") then return tonumber(n) end
  end
  return nil
end

function methods:list_webhooks(opts)
  check_self(self, "list_webhooks")
  local query = list_query(opts, "list_webhooks")
  local body, err, attempts, status = call(self, "GET", "/webhooks", nil, query)
  if not body then return nil, err end
  if type(body.items) ~= "table" then
    return nil, decode_error("expected 'items' in the list response", "GET", "/webhooks",
      attempts, status)
  end
  return { items = body.items, meta = body.meta, next = next_of(body.meta) }
end

-- The number of webhooks the server says the account has (either pagination shape), or nil.
local function total_of(meta)
  if type(meta) ~= "table" then return nil end
  local shape = type(meta.page) == "table" and meta.page or meta.pagination
  local total = type(shape) == "table" and shape.total_items
  return type(total) == "number" and total or nil
end

function methods:webhooks(opts)
  check_self(self, "webhooks")
  if opts ~= nil and type(opts) ~= "table" then
    argerror(1, "webhooks", "table expected, got " .. type(opts))
  end
  for k in pairs(opts or {}) do
    if k ~= "limit" then argerror(1, "webhooks", "unknown option '" .. tostring(k) .. "'") end
  end
  local limit = opts and opts.limit
  check_limit(limit, "webhooks")
  -- client_state raises now, not at the first step, on a closed client.
  local max_pages = client_state(self).max_pages
  local items, i, cursor, total = nil, 0, nil, nil
  local done, seen, pages = false, {}, 0
  return function()
    while true do
      if items and i < #items then
        i = i + 1
        return items[i], nil, total
      end
      if done then return nil end
      -- A server that gives a fresh cursor for ever would page for ever: bounded.
      if pages == max_pages then
        done = true
        return false, make_error{ kind = "limit", method = "GET", path = "/webhooks",
          message = ("stopped after %d pages, the bound set by max_pages: the server still "
            .. "gives a next page"):format(max_pages) }
      end
      pages = pages + 1
      local query = { limit = limit }
      if type(cursor) == "string" then query.next = cursor else query.page = cursor end
      local page, err = self:list_webhooks(query)
      if not page then
        done = true
        return false, err
      end
      items, i = page.items, 0
      cursor, total = page.next, total_of(page.meta)
      if cursor == nil then
        done = true
      elseif seen[cursor] then -- a server that repeats a cursor would loop forever
        done, items = true, nil
        return false, decode_error("the server repeated the page cursor " .. tostring(cursor),
          "GET", "/webhooks")
      else
        seen[cursor] = true
      end
    end
  end
end

function methods:create_webhook(fields)
  check_self(self, "create_webhook")
  local body = webhook_fields(fields, 1, "create_webhook")
  local value, err = call(self, "POST", "/webhooks", nil, nil, body)
  return value, err
end

function methods:get_webhook(id)
  check_self(self, "get_webhook")
  check_id(id, 1, "get_webhook")
  local value, err = call(self, "GET", "/webhooks", id)
  return value, err
end

function methods:update_webhook(id, fields)
  check_self(self, "update_webhook")
  check_id(id, 1, "update_webhook")
  local body = webhook_fields(fields, 2, "update_webhook")
  local value, err = call(self, "PUT", "/webhooks", id, nil, body)
  return value, err
end

function methods:delete_webhook(id)
  check_self(self, "delete_webhook")
  check_id(id, 1, "delete_webhook")
  local ok, err = call(self, "DELETE", "/webhooks", id)
  if ok == nil then return nil, err end
  return true
end

function methods:sync_webhooks(desired, opts)
  check_self(self, "sync_webhooks")
  local report, err = sync(self, desired, opts)
  return report, err
end

function methods:get_event(id)
  check_self(self, "get_event")
  check_id(id, 1, "get_event")
  local value, err = call(self, "GET", "/events", id)
  return value, err
end

-- client:get_events(ids, opts) -> results, errs. With libcurl: the ids go over the multi
-- handle (_exchange_many) in the rounds of retry.rounds, which under a rate limit hands it only
-- as many ids at a time as the budget has slots. With a custom transport: one call after the
-- other. opts.progress(done, total) is called as ids get their final answer; for it, the ids
-- of a round go to the multi handle in slices of PROGRESS_SLICE * concurrency (a slice drains
-- before the next starts, which costs a few percent, so only when asked; under a rate limit,
-- slices of `concurrency`).
local exchange_many = methods._exchange_many
local rounds = retry.rounds
local PROGRESS_SLICE = 32

local function check_ids(ids, opts)
  if type(ids) ~= "table" then argerror(1, "get_events", "table expected, got " .. type(ids)) end
  for i = 1, #ids do check_id(ids[i], 1, "get_events") end
  local concurrency, progress = 8, nil
  if opts ~= nil then
    if type(opts) ~= "table" then argerror(2, "get_events", "table expected, got " .. type(opts)) end
    for k in pairs(opts) do
      if k ~= "concurrency" and k ~= "progress" then
        argerror(2, "get_events", "unknown option '" .. tostring(k) .. "'")
      end
    end
    if opts.concurrency ~= nil then
      concurrency = opts.concurrency
      if not is_integer(concurrency) or concurrency < 1 or concurrency > 64 then
        argerror(2, "get_events", "concurrency must be an integer from 1 to 64")
      end
    end
    progress = opts.progress
    if progress ~= nil and not callable(progress) then
      argerror(2, "get_events", "option 'progress' must be a function, got " .. type(progress))
    end
  end
  return concurrency, progress
end

local function via_custom_transport(self, ids, progress)
  local n = #ids
  local results, errs = {}, {}
  for i = 1, n do
    local value, err = call(self, "GET", "/events", ids[i])
    results[i] = value or false
    errs[i] = err
    if progress then progress(i, n) end
  end
  return results, errs
end

function methods:get_events(ids, opts)
  check_self(self, "get_events")
  local concurrency, progress = check_ids(ids, opts)
  local state = states[self] or client_state(self)
  if state.transport then return via_custom_transport(self, ids, progress) end
  local n = #ids
  -- One attempt for ids[pending[j]] (ids[j] in round 1), j = first..last. The whole list is
  -- passed as it is (the C side reads it raw: not with a metatable); else a slice is copied.
  local function attempt(pending, first, last)
    local batch = ids
    if pending or first > 1 or last < n or getmetatable(ids) ~= nil then
      batch = {}
      for j = first, last do batch[j - first + 1] = ids[pending and pending[j] or j] end
    end
    return exchange_many(self, batch, concurrency)
  end
  -- Under a rate limit a slice is one wave: progress then follows the budget's pace.
  local slice = n
  if progress then slice = state.budget and concurrency or PROGRESS_SLICE * concurrency end
  return rounds(state, "GET", n, slice, attempt, progress, concurrency)
end

return _M
