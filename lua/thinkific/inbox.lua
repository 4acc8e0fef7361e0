-- thinkific.inbox: a delivery is acknowledged once it is committed to a store (SQLite or
-- PostgreSQL, through thinkific.sql), and processed after the answer by workers that claim due
-- events with a lease, run router:dispatch, and mark each done, retrying (with backoff) or
-- dead. Nothing here runs under nginx: every database call blocks.
local socket = require("socket")
local core = require("thinkific.core")
local sql = require("thinkific.sql")
local intake = require("thinkific.intake")
local args = require("thinkific.args")
local integer = require("thinkific.integer")

local argerror, callable = args.error, args.callable
local decode, encode = core.decode, core.encode
local gettime, sleep = socket.gettime, socket.sleep
local type, pairs, ipairs, tostring, tonumber, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, tonumber, pcall, setmetatable, getmetatable
local format, lower, sub, byte, concat = string.format, string.lower, string.sub, string.byte,
  table.concat
local min, max, floor, random = math.min, math.max, math.floor, math.random
local unpack = table.unpack or rawget(_G, "unpack")

local _M = {}

local Inbox = {}
Inbox.__index = Inbox
Inbox.__name = "thinkific.Inbox"

local STORED = '{"status":"stored"}'
local DUPLICATE = '{"status":"duplicate"}'
local UNAVAILABLE = '{"error":"store unavailable"}'
local RETRY_AFTER = "5" -- seconds a sender is asked to wait when the store is unavailable

local OPTIONS = {
  store = true, router = true, lease = true, max_attempts = true, backoff = true, keep = true,
  on_error = true,
}
local STATES = { pending = true, running = true, retrying = true, dead = true, done = true }

local PURGE_EVERY = 60       -- seconds between a worker's deletions of expired done events
local FLUSH_EVERY = 0.25     -- seconds a worker holds finished outcomes before writing them
local BATCH_WORK = 0.2       -- seconds of handler time a worker claims at once
local MAX_BATCH = 32
local MAX_ERROR = 16384      -- bytes of last_error kept

---------------------------------------------------------------------------------------------
-- The schema: steps[v] takes the tables from version v-1 to v (thinkific.sql's migrate).
-- due_at is when an event is next due: pending and retrying, when it may run; running, when
-- its lease ends; done and dead, NULL. seq gives the order of arrival.

local STEPS = {
  {
    [[CREATE TABLE thinkific_inbox (
      seq {serial},
      event_id TEXT NOT NULL UNIQUE,
      topic TEXT NOT NULL,
      headers TEXT NOT NULL,
      body TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'retrying', 'done', 'dead')),
      attempts BIGINT NOT NULL,
      received_at DOUBLE PRECISION NOT NULL,
      due_at DOUBLE PRECISION,
      finished_at DOUBLE PRECISION,
      claim TEXT,
      worker TEXT,
      last_error TEXT)]],
    "CREATE INDEX thinkific_inbox_due ON thinkific_inbox (seq, due_at) WHERE due_at IS NOT NULL",
    "CREATE INDEX thinkific_inbox_claim ON thinkific_inbox (claim) WHERE claim IS NOT NULL",
    "CREATE INDEX thinkific_inbox_state ON thinkific_inbox (state, seq)",
  },
}
_M._STEPS = STEPS -- for the schema spec

local INSERT_INTO = [[INSERT INTO thinkific_inbox (event_id, topic, headers, body, state, attempts,
  received_at, due_at) VALUES ]]
local ROW = "(?, ?, ?, ?, 'pending', 0, ?, ?)"
local NO_CONFLICT = " ON CONFLICT (event_id) DO NOTHING"
local INSERT = INSERT_INTO .. ROW .. NO_CONFLICT
local INSERTS = {} -- INSERTS[n]: the statement that inserts n rows
local MAX_ROWS = 64 -- rows in one INSERT
local MAX_SQL = 4194304 -- bytes of bodies in one INSERT (past one body)

-- A claim is one UPDATE: the oldest due events get the lease, this claim's token and one more
-- attempt. The rows are then read back by their token, in the same transaction.
local CLAIM = [[UPDATE thinkific_inbox SET state = 'running', attempts = attempts + 1, due_at = ?,
  claim = ?, worker = ? WHERE due_at <= ? AND event_id IN (SELECT event_id FROM thinkific_inbox
  WHERE due_at <= ? ORDER BY seq LIMIT ?{skip_locked})]]

local ITEM_TYPES = { seq = "integer", attempts = "integer", received_at = "number",
  due_at = "number", finished_at = "number" }

local function typed(text)
  local t = { text }
  for k, v in pairs(ITEM_TYPES) do t[k] = v end
  return t
end

local CLAIMED = typed([[SELECT event_id, topic, headers, body, attempts, received_at
  FROM thinkific_inbox WHERE claim = ? ORDER BY seq]])

local ITEM_COLUMNS = "seq, event_id, topic, state, attempts, received_at, due_at, finished_at, "
  .. "worker, last_error"

-- An outcome, written only while the claim is still this worker's.
local FINISH = [[UPDATE thinkific_inbox SET state = ?, due_at = ?, finished_at = ?, claim = NULL,
  last_error = COALESCE(?, last_error) WHERE event_id = ? AND claim = ?]]
local RELEASE = [[UPDATE thinkific_inbox SET state = 'pending', due_at = ?, attempts = attempts - 1,
  claim = NULL WHERE event_id IN (?) AND claim = ?]]
local PURGE = "DELETE FROM thinkific_inbox WHERE state = 'done' AND finished_at < ?"

local COUNTS = { "SELECT state, count(*) AS n FROM thinkific_inbox GROUP BY state", n = "integer" }
local OLDEST = { "SELECT min(received_at) AS t FROM thinkific_inbox WHERE state = 'pending'",
  t = "number" }
local GET = typed("SELECT " .. ITEM_COLUMNS .. ", headers, body FROM thinkific_inbox "
  .. "WHERE event_id = ?")

---------------------------------------------------------------------------------------------
-- Options.

local function positive(v) return type(v) == "number" and v > 0 and v < math.huge end

local function check_options(opts)
  if type(opts) ~= "table" then argerror(1, "inbox", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then argerror(1, "inbox", "unknown option '" .. tostring(k) .. "'") end
  end
  local router = opts.router
  local ok, is_router = pcall(function()
    return callable(router.dispatch) and type(router.max_body) == "number" and router.secrets ~= nil
  end)
  if (type(router) ~= "table" and type(router) ~= "userdata") or not ok or not is_router then
    argerror(1, "inbox", "router expected (router = thinkific.router{...})")
  end
  if opts.lease ~= nil and not positive(opts.lease) then
    argerror(1, "inbox", "lease must be a positive number of seconds")
  end
  local attempts = opts.max_attempts
  if attempts ~= nil and not (integer.is_integer(attempts) and attempts >= 1) then
    argerror(1, "inbox", "max_attempts must be an integer >= 1")
  end
  local backoff = opts.backoff
  if backoff ~= nil then
    if type(backoff) ~= "table" or not positive(backoff.base)
        or (backoff.max ~= nil and not (positive(backoff.max) and backoff.max >= backoff.base)) then
      argerror(1, "inbox", "backoff must be { base = seconds > 0, max = seconds >= base }")
    end
  end
  if opts.keep ~= nil and not (type(opts.keep) == "number" and opts.keep >= 0) then
    argerror(1, "inbox", "keep must be a number of seconds >= 0")
  end
  if opts.on_error ~= nil and not callable(opts.on_error) then
    argerror(1, "inbox", "on_error must be a function(err)")
  end
end

-- "host:pid" of this process, the default name of its worker.
local function process_name()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("*l"):match("^(%d+)")
  if f then f:close() end
  local host = socket.dns.gethostname() or "localhost"
  return host .. ":" .. (pid or tostring(os.time()))
end

-- Random hex that tells this inbox's claims from every other process's.
local function random_tag()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(6)
  if f then f:close() end
  if not bytes or #bytes < 6 then return format("%x%x", floor(gettime() * 1e6), random(0, 0xffffff)) end
  return (bytes:gsub(".", function(c) return format("%02x", byte(c)) end))
end

--- inbox.new{ store, router, lease = 60, max_attempts = 8, backoff = { base = 2, max = 3600 },
---   keep = 604800, on_error = nil } -> inbox | nil, err
function _M.new(opts)
  if rawget(_G, "ngx") then
    argerror(1, "inbox", "thinkific.inbox does not run under nginx, where a database call would "
      .. "block the worker: accept with thinkific listen --inbox, or in a process of its own")
  end
  check_options(opts)
  local db, err = sql.open(opts.store, { name = "inbox" })
  if not db then return nil, err end
  local version
  version, err = db:migrate("inbox", STEPS)
  if not version then
    db:close()
    return nil, err
  end
  local backoff = opts.backoff or {}
  return setmetatable({
    router = opts.router,
    store = db.url,
    lease = opts.lease or 60,
    max_attempts = opts.max_attempts or 8,
    backoff = { base = backoff.base or 2, max = backoff.max or 3600 },
    keep = opts.keep or 604800,
    _db = db,
    _on_error = opts.on_error,
    _name = process_name(),
    _tag = random_tag(),
    _claims = 0,
    _purged_at = 0,
    _per_event = 0.01, -- seconds a handler takes, on average (sizes the claims)
  }, Inbox)
end

local function check_self(self, name)
  if getmetatable(self) ~= Inbox then argerror(0, name, "inbox expected: call it with ':'") end
  if self._closed then error(format("thinkific.inbox: '%s' on a closed inbox", name), 3) end
end

local function report(self, err)
  if self._on_error then pcall(self._on_error, err) end
  return nil, err
end

---------------------------------------------------------------------------------------------
-- Intake.

-- The X-Thinkific-* headers of a delivery, as stored with it (JSON), for the handlers' ctx.
local function kept_headers(headers)
  local kept = {}
  for name, value in pairs(headers) do
    if type(name) == "string" then
      local l = lower(name)
      if type(value) == "table" then value = value[1] end
      if sub(l, 1, 12) == "x-thinkific-" and type(value) == "string" and sql.is_text(value) then
        kept[l] = value
      end
    end
  end
  return encode(kept)
end

-- A delivery checked as router:handle checks it, then for what a store can hold: the record
-- to insert, or nil and the refusal (status, body, event).
local function prepare(self, body, headers, fname)
  if type(body) ~= "string" then
    argerror(1, fname, "the raw body string expected (signatures are over the raw bytes), got "
      .. type(body))
  end
  if headers ~= nil and type(headers) ~= "table" then
    argerror(2, fname, "headers table expected, got " .. type(headers))
  end
  headers = headers or {}
  local event, topic, refused_body, refused_event = intake.check(self.router, body, headers)
  if not event then return nil, topic, refused_body, refused_event end -- (topic: the status)
  -- A raw NUL or bytes that are not UTF-8 cannot be in JSON text (RFC 8259), nor in either store.
  if not sql.is_text(body) then return nil, 400, intake.BAD_JSON end
  local id = integer.id_text(event.id) or tostring(event.id)
  if not (sql.is_text(id) and sql.is_text(topic)) then -- a \u0000 in the id or the topic
    return nil, 400, intake.BAD_ENVELOPE, event
  end
  return { id, topic, kept_headers(headers), body, event = event }
end

local function insert(db, rec, now)
  return db:exec(INSERT, rec[1], rec[2], rec[3], rec[4], now, now)
end

-- Inside a transaction (a failed statement raises to it), stores records (ids all different)
-- with one INSERT per MAX_ROWS records or MAX_SQL bytes of bodies: true when every one of them
-- was new, false when some id was stored already (the caller rolls back: it cannot tell
-- which). (An INSERT of n rows costs the store one parse, not n: a third of its time per row.)
local function insert_all(db, records, now)
  local i, all_new = 1, true
  while i <= #records do
    local n, bytes, values = 0, 0, {}
    repeat
      local rec = records[i + n]
      local k = n * 6
      values[k + 1], values[k + 2], values[k + 3], values[k + 4] = rec[1], rec[2], rec[3], rec[4]
      values[k + 5], values[k + 6] = now, now
      n, bytes = n + 1, bytes + #rec[4]
    until i + n > #records or n == MAX_ROWS or bytes >= MAX_SQL
    local text = INSERTS[n]
    if not text then
      text = INSERT_INTO .. string.rep(ROW, n, ", ") .. NO_CONFLICT
      INSERTS[n] = text
    end
    all_new = db:exec(text, unpack(values, 1, n * 6)) == n and all_new
    i = i + n
  end
  return all_new
end

-- Stores a group in one transaction: counts[j] = 1 when records[j] was new, 0 when its id was
-- stored already (an earlier record of the group with the same id included); nil, err when
-- nothing was stored. One INSERT for all the new ids; only when some id proves to be stored
-- already (a sender's retry: rare) is the group stored again one INSERT per record, to tell
-- which.
local function store_group(db, records, now)
  local counts, first, new = {}, {}, {}
  for j, rec in ipairs(records) do
    if first[rec[1]] then
      counts[j] = 0
    else
      first[rec[1]] = true
      new[#new + 1] = rec
    end
  end
  local all_new, err = db:transaction(function(tx)
    if not insert_all(tx, new, now) then return nil, false end -- rolled back
    return true
  end)
  if all_new then
    for j in ipairs(records) do counts[j] = counts[j] or 1 end
    return counts
  end
  if err then return nil, err end
  return db:transaction(function(tx)
    for j, rec in ipairs(records) do counts[j] = counts[j] or insert(tx, rec, now) end
    return counts
  end)
end

--- inbox:accept(raw_body, headers) -> status, body, event [, headers]
-- 200 {"status":"stored"} once committed, 200 {"status":"duplicate"} for a stored id, the
-- router's 413/401/400, or 503 {"error":"store unavailable"} with { ["Retry-After"] = "5" }.
function Inbox:accept(body, headers)
  check_self(self, "accept")
  local rec, status, rbody, event = prepare(self, body, headers, "accept")
  if not rec then return status, rbody, event end
  local n, err = insert(self._db, rec, gettime())
  if not n then
    report(self, err)
    return 503, UNAVAILABLE, rec.event, { ["Retry-After"] = RETRY_AFTER }
  end
  return 200, n == 1 and STORED or DUPLICATE, rec.event
end

--- inbox:accept_many(deliveries) -> results
-- Group commit: deliveries = { { body = raw, headers = h }, … } are checked, and the valid ones
-- stored in one transaction; results[i] = { status, body, event, headers } as accept answers
-- deliveries[i], every 200 only after the commit (a failed commit: 503 for each of them).
function Inbox:accept_many(deliveries)
  check_self(self, "accept_many")
  if type(deliveries) ~= "table" then
    argerror(1, "accept_many", "list of { body = raw, headers = h } expected, got " .. type(deliveries))
  end
  local results, records = {}, {}
  for i, d in ipairs(deliveries) do
    if type(d) ~= "table" then argerror(1, "accept_many", "entry " .. i .. " is not a table") end
    local rec, status, rbody, event = prepare(self, d.body, d.headers, "accept_many")
    if rec then
      rec.index = i
      records[#records + 1] = rec
    else
      results[i] = { status = status, body = rbody, event = event }
    end
  end
  if #records == 0 then return results end
  local counts, err = store_group(self._db, records, gettime())
  if not counts then report(self, err) end
  for j, rec in ipairs(records) do
    results[rec.index] = counts
      and { status = 200, body = counts[j] == 1 and STORED or DUPLICATE, event = rec.event }
      or { status = 503, body = UNAVAILABLE, event = rec.event,
        headers = { ["Retry-After"] = RETRY_AFTER } }
  end
  return results
end

---------------------------------------------------------------------------------------------
-- Work.

-- The delay before attempt n + 1 (equal jitter): uniform in [d/2, d], d = min(max, base*2^(n-1)).
local function delay(backoff, n)
  local d = min(backoff.max, backoff.base * 2 ^ (n - 1))
  return d / 2 + random() * d / 2
end
_M._delay = delay -- for the spec of its bounds

-- A message that a store can hold: NUL bytes shown as \0, text that is not UTF-8 as ASCII,
-- at most MAX_ERROR bytes.
local function storable(message)
  message = tostring(message):gsub("%z", "\\0")
  if #message > MAX_ERROR then
    local cut = MAX_ERROR
    while cut > 1 and (byte(message, cut + 1) or 0) >= 0x80 and byte(message, cut + 1) < 0xC0 do
      cut = cut - 1
    end
    message = sub(message, 1, cut) .. "\n…(cut)"
  end
  if not sql.is_text(message) then message = message:gsub("[\128-\255]", "?") end
  return message
end

-- dispatch's errors as one text: a handler may raise any value, not only a string.
local function messages(errs)
  local texts = {}
  for i, e in ipairs(type(errs) == "table" and errs or {}) do texts[i] = tostring(e) end
  return concat(texts, "\n")
end

local function claim(self, count, worker, now)
  self._claims = self._claims + 1
  local token = format("%s/%s/%d", worker, self._tag, self._claims)
  local rows, err = self._db:transaction(function(db)
    db:exec(CLAIM, now + self.lease, token, worker, now, now, count)
    return db:query(CLAIMED, token)
  end)
  if not rows then return nil, err end
  return rows, token
end

-- Runs one claimed event; returns its outcome { state, due_at, finished_at, last_error, id }.
function Inbox:_run(row)
  local attempt = row.attempts
  local event, headers = decode(row.body), decode(row.headers)
  local ok, err
  if attempt > self.max_attempts then
    err = format("attempt %d of %d ended without an outcome: its worker stopped or lost the lease",
      attempt - 1, self.max_attempts)
    attempt = self.max_attempts
  elseif type(event) ~= "table" then
    err, attempt = "the stored body does not decode as JSON", self.max_attempts
  else
    headers = type(headers) == "table" and headers or {}
    local ctx = { topic = row.topic, subdomain = intake.header(headers, "x-thinkific-subdomain"),
      headers = headers, event_id = row.event_id, attempt = attempt, received_at = row.received_at }
    local called, done, errs = pcall(self.router.dispatch, self.router, event, ctx)
    ok = called and done
    if not ok then err = called and messages(errs) or tostring(done) end
  end
  local now = gettime()
  if ok then return { "done", nil, now, nil, row.event_id } end
  err = storable(err ~= "" and err or "a handler failed")
  if attempt >= self.max_attempts then return { "dead", nil, now, err, row.event_id } end
  return { "retrying", now + delay(self.backoff, attempt), nil, err, row.event_id }
end

-- Writes outcomes (and gives back the claimed events not started) in one transaction.
local function flush(self, outcomes, token, unstarted)
  if #outcomes == 0 and #unstarted == 0 then return true end
  return self._db:transaction(function(db)
    for _, o in ipairs(outcomes) do db:exec(FINISH, o[1], o[2], o[3], o[4], o[5], token) end
    if #unstarted > 0 then db:exec(RELEASE, gettime(), unstarted, token) end
    return true
  end)
end

-- Runs a claimed batch in order. An event is started only within lease/2 of the claim (so it
-- has half the lease at least); the rest go back to pending. Returns the number run, or nil, err.
local function run_batch(self, rows, token, claimed_at)
  local outcomes, unstarted, ran, flushed_at = {}, {}, 0, gettime()
  for i, row in ipairs(rows) do
    if gettime() - claimed_at > self.lease / 2 then
      for j = i, #rows do unstarted[#unstarted + 1] = rows[j].event_id end
      break
    end
    local t0 = gettime()
    outcomes[#outcomes + 1] = self:_run(row)
    ran = ran + 1
    local t1 = gettime()
    self._per_event = 0.8 * self._per_event + 0.2 * (t1 - t0)
    if t1 - flushed_at > FLUSH_EVERY and i < #rows then
      local ok, err = flush(self, outcomes, token, {})
      if not ok then return nil, err end
      outcomes, flushed_at = {}, t1
    end
  end
  local ok, err = flush(self, outcomes, token, unstarted)
  if not ok then return nil, err end
  return ran
end

-- Deletes done events older than keep, at most once a minute per inbox.
local function maybe_purge(self, now)
  if now - self._purged_at < PURGE_EVERY then return end
  self._purged_at = now
  local n, err = self._db:exec(PURGE, now - self.keep)
  if not n then report(self, err) end
end

--- inbox:work{ limit = 100, wait = 0, worker = "host:pid" } -> n | nil, err
function Inbox:work(opts)
  check_self(self, "work")
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "work", "table expected, got " .. type(opts)) end
  local limit, wait, worker = opts.limit or 100, opts.wait or 0, opts.worker or self._name
  if not (integer.is_integer(limit) and limit >= 1) then
    argerror(1, "work", "limit must be an integer >= 1")
  end
  if not (type(wait) == "number" and wait >= 0) then argerror(1, "work", "wait must be seconds >= 0") end
  if type(worker) ~= "string" or worker == "" or #worker > 200 or not sql.is_text(worker) then
    argerror(1, "work", "worker must be a name (UTF-8, 1 to 200 bytes)")
  end
  local ran, pause = 0, 0.01
  local deadline = gettime() + wait
  maybe_purge(self, gettime())
  while ran < limit do
    local size = min(limit - ran, MAX_BATCH, max(1, floor(BATCH_WORK / max(self._per_event, 1e-6))))
    local now = gettime()
    local rows, token = claim(self, size, worker, now)
    if not rows then return report(self, token) end
    if #rows > 0 then
      local n, err = run_batch(self, rows, token, now)
      if not n then return report(self, err) end
      if n == 0 then break end -- the claim itself took half the lease: the store is too slow now
      ran, pause = ran + n, 0.01
    else
      local left = deadline - gettime()
      if ran > 0 or left <= 0 then break end
      sleep(min(pause, left))
      pause = min(pause * 2, 0.25)
    end
  end
  return ran
end

---------------------------------------------------------------------------------------------
-- Looking and repairing.

local function item(row)
  return {
    event_id = row.event_id, topic = row.topic, state = row.state, attempts = row.attempts,
    received_at = row.received_at, next_attempt_at = row.due_at, finished_at = row.finished_at,
    worker = row.worker, last_error = row.last_error,
  }
end

--- inbox:stats() -> { pending, running, retrying, dead, done, oldest_pending_age } | nil, err
function Inbox:stats()
  check_self(self, "stats")
  local rows, err = self._db:query(COUNTS)
  if not rows then return nil, err end
  local oldest
  oldest, err = self._db:first(OLDEST)
  if oldest == nil then return nil, err end
  local stats = { pending = 0, running = 0, retrying = 0, dead = 0, done = 0 }
  for _, row in ipairs(rows) do stats[row.state] = row.n end
  stats.oldest_pending_age = oldest and oldest.t and max(0, gettime() - oldest.t) or 0
  return stats
end

-- The condition for a topic pattern as the router takes them ("order.created", "order.*",
-- "*"), appended to where/values; raises argument n of fname for another pattern.
local function topic_condition(topic, where, values, fname)
  if topic == nil or topic == "*" then return end
  if type(topic) ~= "string" or not (topic:match("^[%w_]+%.%*$") or topic:match("^[%w_]+%.[%w_]+$")) then
    argerror(1, fname, "topic must be \"resource.action\", \"resource.*\" or \"*\"")
  end
  local resource = topic:match("^([%w_]+)%.%*$")
  if resource then
    where[#where + 1] = "substr(topic, 1, ?) = ?"
    values[#values + 1], values[#values + 2] = #resource + 1, resource .. "."
  else
    where[#where + 1] = "topic = ?"
    values[#values + 1] = intake.canonical(topic)
  end
end

local function check_state(state, fname, allowed)
  if state ~= nil and not (type(state) == "string" and (allowed or STATES)[state]) then
    argerror(1, fname, "unknown state " .. format("%q", tostring(state)))
  end
end

--- inbox:list{ state, topic, limit = 50, after = cursor } -> items, next_cursor | nil, err
function Inbox:list(opts)
  check_self(self, "list")
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "list", "table expected, got " .. type(opts)) end
  local limit = opts.limit or 50
  if not (integer.is_integer(limit) and limit >= 1 and limit <= 1000) then
    argerror(1, "list", "limit must be an integer 1..1000")
  end
  check_state(opts.state, "list")
  local after = 0
  if opts.after ~= nil then
    after = type(opts.after) == "string" and opts.after:match("^%d+$") and tonumber(opts.after)
    if not after then argerror(1, "list", "after must be a cursor that list returned") end
  end
  local where, values = { "seq > ?" }, { after }
  if opts.state then
    where[#where + 1] = "state = ?"
    values[#values + 1] = opts.state
  end
  topic_condition(opts.topic, where, values, "list")
  values[#values + 1] = limit + 1
  local rows, err = self._db:query(typed("SELECT " .. ITEM_COLUMNS .. " FROM thinkific_inbox WHERE "
    .. concat(where, " AND ") .. " ORDER BY seq LIMIT ?"), unpack(values, 1, #values))
  if not rows then return nil, err end
  local items = {}
  for i = 1, min(#rows, limit) do items[i] = item(rows[i]) end
  local next_cursor = #rows > limit and tostring(rows[limit].seq) or nil
  return items, next_cursor
end

local function check_id(id, fname)
  local text = integer.id_text(id)
  if not text or text == "" or not sql.is_text(text) then
    argerror(1, fname, "event id expected (a non-empty string or an integer)")
  end
  return text
end

--- inbox:get(event_id) -> item plus .event (decoded) and .headers | nil | nil, err
function Inbox:get(event_id)
  check_self(self, "get")
  local row, err = self._db:first(GET, check_id(event_id, "get"))
  if row == nil then return nil, err end
  if not row then return nil end
  local it = item(row)
  it.event = decode(row.body)
  it.headers = decode(row.headers) or {}
  return it
end

-- UPDATE … SET <set> WHERE state IN (states) AND <conditions>; -> n | nil, err
local function move(self, set, set_values, states, where, values)
  local all = {}
  for _, v in ipairs(set_values) do all[#all + 1] = v end
  all[#all + 1] = states
  for _, v in ipairs(values) do all[#all + 1] = v end
  local text = "UPDATE thinkific_inbox SET " .. set .. " WHERE state IN (?)"
  if #where > 0 then text = text .. " AND " .. concat(where, " AND ") end
  return self._db:exec(text, unpack(all, 1, #all))
end

local RESET = "state = 'pending', attempts = 0, due_at = ?, finished_at = NULL"

--- inbox:retry(event_id) or inbox:retry{ state = "dead" | "retrying", topic } -> n | nil, err
-- Dead or retrying events become pending now, with their attempts reset.
function Inbox:retry(what)
  check_self(self, "retry")
  local states, where, values = { "dead", "retrying" }, {}, {}
  if type(what) == "table" then
    for k in pairs(what) do
      if k ~= "state" and k ~= "topic" then argerror(1, "retry", "unknown option '" .. tostring(k) .. "'") end
    end
    check_state(what.state, "retry", { dead = true, retrying = true })
    if what.state then states = { what.state } end
    topic_condition(what.topic, where, values, "retry")
  else
    where[1], values[1] = "event_id = ?", check_id(what, "retry")
  end
  return move(self, RESET, { gettime() }, states, where, values)
end

--- inbox:replay{ topic, since = epoch_s, event_ids = {…} } -> n | nil, err
-- Done or dead events (all of them, with no option) become pending now, attempts reset.
function Inbox:replay(opts)
  check_self(self, "replay")
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "replay", "table expected, got " .. type(opts)) end
  local where, values = {}, {}
  for k in pairs(opts) do
    if k ~= "topic" and k ~= "since" and k ~= "event_ids" then
      argerror(1, "replay", "unknown option '" .. tostring(k) .. "'")
    end
  end
  topic_condition(opts.topic, where, values, "replay")
  if opts.since ~= nil then
    if type(opts.since) ~= "number" then argerror(1, "replay", "since must be epoch seconds") end
    where[#where + 1], values[#values + 1] = "received_at >= ?", opts.since
  end
  if opts.event_ids ~= nil then
    if type(opts.event_ids) ~= "table" then argerror(1, "replay", "event_ids must be a list of ids") end
    local ids = {}
    for i, id in ipairs(opts.event_ids) do ids[i] = check_id(id, "replay") end
    where[#where + 1], values[#values + 1] = "event_id IN (?)", ids
  end
  return move(self, RESET, { gettime() }, { "done", "dead" }, where, values)
end

--- inbox:purge{ older_than = seconds } -> n | nil, err: deletes done events finished earlier.
function Inbox:purge(opts)
  check_self(self, "purge")
  local older = type(opts) == "table" and opts.older_than
  if not (type(older) == "number" and older >= 0) then
    argerror(1, "purge", "{ older_than = seconds >= 0 } expected")
  end
  return self._db:exec(PURGE, gettime() - older)
end

--- inbox:close(): closes the store's connection. Idempotent; also on __gc and __close.
function Inbox:close()
  if self._closed then return end
  self._closed = true
  self._db:close()
end

Inbox.__gc = Inbox.close
Inbox.__close = Inbox.close
Inbox.__tostring = function(self) return "thinkific.Inbox (" .. self.store .. ")" end

return _M
