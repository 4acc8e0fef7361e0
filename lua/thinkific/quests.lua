-- thinkific.quests: Thinkific events to experience points, levels, badges and a leaderboard,
-- with state in a store (thinkific.sql: SQLite, or PostgreSQL for many workers) that survives
-- restarts and is shared by every worker. Rules come from a table, or from a rules file run in
-- the C sandbox (quests/runner.lua). Nothing here runs under nginx: every database call blocks.
local socket = require("socket")
local core = require("thinkific.core")
local sql = require("thinkific.sql")
local args = require("thinkific.args")
local integer = require("thinkific.integer")
local levels = require("thinkific.quests.levels")
local rules_mod = require("thinkific.quests.rules")
local runner = require("thinkific.quests.runner")
local facts = require("thinkific.quests.facts")
local store = require("thinkific.quests.store")
local score = require("thinkific.quests.score")

local argerror, callable = args.error, args.callable
local type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable =
  type, pairs, ipairs, tostring, error, pcall, setmetatable, getmetatable
local format, concat = string.format, table.concat
local min = math.min
local gettime = socket.gettime
local encode, decode, null, array = core.encode, core.decode, core.null, core.array

local _M = {}

local Quests = {}
Quests.__index = Quests
Quests.__name = "thinkific.Quests"

local OPTIONS = { store = true, rules = true, levels = true, scope = true, limits = true }
local BATCH = 500 -- log entries rebuild scores per page

---------------------------------------------------------------------------------------------
-- Starting.

-- Random hex that tells this object's batches from every other process's.
local function random_tag()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if not bytes or #bytes < 8 then
    return format("%x-%x", math.floor(gettime() * 1e6), math.random(0, 2 ^ 30))
  end
  return (bytes:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function check_limits(limits)
  local out = { memory = runner.MEMORY, instructions = runner.INSTRUCTIONS }
  if limits == nil then return out end
  if type(limits) ~= "table" then
    argerror(1, "quests", "limits must be { memory = bytes, instructions = n }")
  end
  for k, v in pairs(limits) do
    if k ~= "memory" and k ~= "instructions" then
      argerror(1, "quests", "limits takes memory and instructions, not '" .. tostring(k) .. "'")
    end
    if not (integer.is_integer(v) and v >= (k == "memory" and 262144 or 1000)) then
      argerror(1, "quests", k == "memory" and "limits.memory must be a whole number of bytes >= 262144"
        or "limits.instructions must be a whole number >= 1000")
    end
    out[k] = v
  end
  return out
end

-- The rules of opts.rules: { rules, levels, scope, topics } and the runner of their `when`s.
local function load_rules(opts, limits)
  local source, run = opts.rules, nil
  if type(source) == "string" then
    source, run = runner.load(opts.rules, limits)
    if source == nil and run then argerror(1, "quests", "rules: " .. run) end
  elseif type(source) == "table" then
    run = runner.direct()
  else
    argerror(1, "quests", "rules must be a rules file's path or a table of rules, got " .. type(source))
  end
  local is_function = run.sandboxed and runner.is_function or callable
  local read, problems = rules_mod.read(source, is_function)
  if #problems > 0 then
    argerror(1, "quests", "rules" .. (type(opts.rules) == "string" and " (" .. opts.rules .. ")" or "")
      .. ": " .. rules_mod.summary(problems))
  end
  return read, run
end

--- quests.new{ store, rules, levels, scope, limits } -> quests | nil, err
function _M.new(opts)
  if rawget(_G, "ngx") then
    argerror(1, "quests", "thinkific.quests does not run under nginx, where a database call would "
      .. "block the worker: score in a worker (thinkific listen --inbox, thinkific work)")
  end
  if type(opts) ~= "table" then argerror(1, "quests", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then argerror(1, "quests", "unknown option '" .. tostring(k) .. "'") end
  end
  local limits = check_limits(opts.limits)
  local read, run
  if opts.rules ~= nil then read, run = load_rules(opts, limits) end
  local thresholds, why
  if opts.levels ~= nil then
    thresholds, why = levels.thresholds(opts.levels)
    if not thresholds then argerror(1, "quests", why) end
    if read and read.levels and concat(read.levels, ",") ~= concat(thresholds, ",") then
      argerror(1, "quests", "levels are given both here and in the rules, differently")
    end
  end
  thresholds = thresholds or (read and read.levels)
  local scope = opts.scope
  if scope ~= nil and scope ~= "course" and scope ~= "site" then
    argerror(1, "quests", "scope must be \"course\" or \"site\", got " .. tostring(scope))
  end
  if scope and read and read.scope and read.scope ~= scope then
    argerror(1, "quests", "scope is given both here and in the rules, differently")
  end
  scope = scope or (read and read.scope)
  local db, err = sql.open(opts.store, { name = "quests" })
  if not db then
    if run and run.state then run.state:close() end
    return nil, err
  end
  local version
  version, err = db:migrate("quests", store.STEPS)
  if not version then
    db:close()
    return nil, err
  end
  return setmetatable({
    store = db.url,
    sandboxed = run and run.sandboxed or false,
    limits = limits,
    topics = read and read.topics or {},
    rules = read and read.rules or {},
    runner = run,
    by_topic = {},
    _given = { thresholds = thresholds, scope = scope },
    _db = db,
    _tag = random_tag(),
    _batches = 0,
    _award = {},
    _level_up = {},
    _badge = {},
  }, Quests)
end

-- db:transaction(fn), with a rule's failure (score.Failure) as nil, err (kind "rules").
local function transaction(db, fn)
  local ok, result, err = pcall(db.transaction, db, fn)
  if ok then return result, err end
  if getmetatable(result) == score.Failure then
    return nil, core.error{ kind = "rules", message = result.message }
  end
  error(result, 0)
end

local function check_self(self, name)
  if getmetatable(self) ~= Quests then argerror(0, name, "quests expected: call it with ':'") end
  if self._closed then error(format("thinkific.quests: '%s' on a closed quests", name), 3) end
end

---------------------------------------------------------------------------------------------
-- Settings: stored on first write; a start that gives others must rebuild.

local function show_settings(thresholds, scope)
  return format("levels %s and scope \"%s\"", levels.show(thresholds), scope)
end

-- The stored settings: thresholds, scope (nil, nil when none), or nil, nil, err.
local function stored(db)
  local rows, err = db:query(store.SETTINGS)
  if not rows then return nil, nil, err end
  local t, scope = nil, nil
  for _, row in ipairs(rows) do
    if row.name == "levels" then t = decode(row.value) end
    if row.name == "scope" then scope = row.value end
  end
  return type(t) == "table" and t or nil, scope
end

-- Settles self.thresholds and self.scope; for a write, stores them when the store has none.
-- Raises when the start gave settings other than the stored ones. Returns true | nil, err.
function Quests:_settle(write)
  if self._settled then return true end
  local db, given = self._db, self._given
  local t, scope, err = stored(db)
  if err then return nil, err end
  if not t and write then
    local want_t = given.thresholds or levels.thresholds(levels.DEFAULT)
    local ok
    ok, err = db:transaction(function(tx)
      tx:exec(store.ADD_SETTING, "levels", encode(want_t))
      tx:exec(store.ADD_SETTING, "scope", given.scope or "course")
      return true
    end)
    if not ok then return nil, err end
    t, scope, err = stored(db) -- another worker may have stored first
    if err then return nil, err end
  end
  if t then
    local differ = (given.thresholds and concat(given.thresholds, ",") ~= concat(t, ","))
      or (given.scope and given.scope ~= scope)
    if differ then
      error(format("thinkific.quests: %s holds %s, this start gives %s: call quests:rebuild() to "
        .. "recompute every score with the new settings", self.store, show_settings(t, scope),
        show_settings(given.thresholds or t, given.scope or scope)), 3)
    end
    self.thresholds, self.scope, self._settled = t, scope, true
  else -- nothing stored yet, and this is a read
    self.thresholds = given.thresholds or levels.thresholds(levels.DEFAULT)
    self.scope = given.scope or "course"
  end
  return true
end

-- The bucket of course_id (argument n of fname) under the scope.
local function bucket_of(self, course_id, fname, n)
  if self.scope == "site" then
    if course_id ~= nil then argerror(n, fname, "course_id is not used under scope \"site\"") end
    return ""
  end
  if course_id == null then return "" end
  local id = integer.id_text(course_id)
  if id == nil or id == "" then
    argerror(n, fname, "course_id required under scope \"course\" (thinkific.null: the bucket of "
      .. "events without a course)")
  end
  return id
end

---------------------------------------------------------------------------------------------
-- Scoring.

-- The course_id argument of player() for a bucket.
local function course_arg(self, bucket)
  if self.scope ~= "course" then return nil end
  return bucket == "" and null or facts.id(bucket)
end

-- Calls the on_award, on_level_up and on_badge functions for what the results gave, after
-- the commit. Raises (once all were called) when any failed: the scores stay stored.
local function notify(self, results, events)
  if #self._award == 0 and #self._level_up == 0 and #self._badge == 0 then return end
  local failures = {}
  local function call(fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok then failures[#failures + 1] = tostring(err) end
  end
  for i, r in ipairs(results) do
    local up = r.scored and r.level and r.level > r.old_level and #self._level_up > 0
    local badges = {}
    for _, a in ipairs(#self._badge > 0 and r.scored and r.awards or {}) do
      if a.badge then badges[#badges + 1] = a.badge end
    end
    local awards = #self._award > 0 and r.scored and r.awards or {}
    if up or #badges > 0 or #awards > 0 then
      local player, err = self:player(r.user_id, course_arg(self, r.bucket))
      if not player then error(err, 0) end
      -- As the event left it (later events of a batch may have added more).
      player.xp, player.level = r.total, r.level
      player.next_level_at = select(2, levels.level(self.thresholds, r.total))
      for _, award in ipairs(awards) do
        for _, fn in ipairs(self._award) do call(fn, player, award, events[i]) end
      end
      if up then
        for _, fn in ipairs(self._level_up) do call(fn, player, r.old_level, events[i]) end
      end
      for _, badge in ipairs(badges) do
        for _, fn in ipairs(self._badge) do call(fn, player, badge, events[i]) end
      end
    end
  end
  if #failures > 0 then
    error("thinkific.quests: the scores are stored, but a notification failed: "
      .. concat(failures, "; "), 0)
  end
end

-- What a result shows (score's own fields out).
local function public(r)
  r.user, r.bucket = nil, nil
  return r
end

--- quests:score(event | events) -> results | nil, err
-- Scores decoded events in one transaction (a group commit), in the order given; an event
-- scored before gives scored = false. results[i] = { event_id, topic, user_id, course_id,
-- scored, awards = { {rule, xp, badge, say}, … }, xp, total, level, old_level }.
function Quests:score(events)
  check_self(self, "score")
  if type(events) ~= "table" then argerror(1, "score", "an event or a list of events expected") end
  if events.payload ~= nil or events.resource ~= nil then events = { events } end
  if not self.runner then argerror(0, "score", "this quests has no rules (give rules = …)") end
  local now = gettime()
  local items, first = {}, {} -- first[i]: the item of event i, or false for a repeated id
  local by_id = {}
  for i, event in ipairs(events) do
    if type(event) ~= "table" or type(event.resource) ~= "string" or type(event.action) ~= "string" then
      argerror(1, "score", format("event %d needs string resource and action", i))
    end
    local f = facts.of(event, now)
    if not f.event_id or not sql.is_text(f.event_id) then
      argerror(1, "score", format("event %d has no id", i))
    end
    if by_id[f.event_id] then
      first[i] = false
    else
      local body, why = encode(event)
      if not body then argerror(1, "score", format("event %d cannot be stored: %s", i, tostring(why))) end
      items[#items + 1] = { event = event, facts = f, body = body }
      by_id[f.event_id] = #items
      first[i] = #items
    end
  end
  local ok, err = self:_settle(true)
  if not ok then return nil, err end
  self._batches = self._batches + 1
  local tag = format("%s/%d", self._tag, self._batches)
  local scored
  scored, err = transaction(self._db, function(db)
    if #items == 0 then return {} end
    return score.events(self, db, items, tag, now)
  end)
  if not scored then return nil, err end
  local results = {}
  for i in ipairs(events) do
    if first[i] then
      results[i] = scored[first[i]]
    else -- the same id earlier in the list: a duplicate
      local r = scored[by_id[facts.of(events[i], now).event_id]]
      results[i] = { event_id = r.event_id, topic = r.topic, user_id = r.user_id, course_id = r.course_id,
        scored = false, awards = array(), xp = 0 }
    end
  end
  notify(self, results, events)
  for _, r in ipairs(results) do public(r) end
  return results
end

--- quests:attach(router) -> quests: one handler for the topics the rules use. The handler
-- raises when scoring fails (router:dispatch returns false; handle answers 500; the inbox
-- retries the event), after a rollback: the event's awards are all written or none.
function Quests:attach(router)
  check_self(self, "attach")
  if #self.rules == 0 then argerror(0, "attach", "this quests has no rules (give rules = …)") end
  local ok, is_router = pcall(function() return callable(router.on) end)
  if not (ok and is_router) then argerror(1, "attach", "router expected (thinkific.router{…})") end
  local settled, err = self:_settle(true)
  if not settled then error(tostring(err), 2) end
  local topics = self.topics
  for _, t in ipairs(topics) do if t == "*" then topics = { "*" } break end end
  router:on(topics, function(event)
    local results, why = self:score(event)
    if not results then error(tostring(why), 0) end
  end)
  return self
end

---------------------------------------------------------------------------------------------
-- Reading.

--- quests:player(user_id, course_id) -> { user_id, name, xp, level, next_level_at, badges } | nil, err
function Quests:player(user_id, course_id)
  check_self(self, "player")
  local user = integer.id_text(user_id)
  if not user or user == "" or not sql.is_text(user) then argerror(1, "player", "user id expected") end
  local ok, err = self:_settle(false)
  if not ok then return nil, err end
  local bucket = bucket_of(self, course_id, "player", 2)
  local row
  row, err = self._db:first(store.PLAYER, bucket, user)
  if row == nil then return nil, err end
  local rows
  rows, err = self._db:query(store.BADGES, bucket, user)
  if not rows then return nil, err end
  local badges = {}
  for i, b in ipairs(rows) do badges[i] = b.badge end
  local xp = row and row.xp or 0
  local level, next_at = levels.level(self.thresholds, xp)
  return { user_id = user_id, name = row and row.name or nil, xp = xp, level = level,
    next_level_at = next_at, badges = array(badges) }
end

--- quests:leaderboard{ course_id, limit = 10, offset = 0 } -> board | nil, err
-- board: { {rank, user_id, name, xp, level}, … }
function Quests:leaderboard(opts)
  check_self(self, "leaderboard")
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "leaderboard", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "course_id" and k ~= "limit" and k ~= "offset" then
      argerror(1, "leaderboard", "unknown option '" .. tostring(k) .. "'")
    end
  end
  local limit, offset = opts.limit or 10, opts.offset or 0
  if not (integer.is_integer(limit) and limit >= 1 and limit <= 10000) then
    argerror(1, "leaderboard", "limit must be a whole number 1..10000")
  end
  if not (integer.is_integer(offset) and offset >= 0) then
    argerror(1, "leaderboard", "offset must be a whole number >= 0")
  end
  local ok, err = self:_settle(false)
  if not ok then return nil, err end
  local rows
  rows, err = self._db:query(store.BOARD, bucket_of(self, opts.course_id, "leaderboard", 1), limit, offset)
  if not rows then return nil, err end
  local board = {}
  for i, row in ipairs(rows) do
    board[i] = { rank = row.rank, user_id = facts.id(row.user_id), name = row.name, xp = row.xp,
      level = (levels.level(self.thresholds, row.xp)) }
  end
  return board
end

--- quests:log{ user_id, limit = 50, after = cursor } -> entries, next_cursor | nil, err
function Quests:log(opts)
  check_self(self, "log")
  opts = opts or {}
  if type(opts) ~= "table" then argerror(1, "log", "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if k ~= "user_id" and k ~= "limit" and k ~= "after" then
      argerror(1, "log", "unknown option '" .. tostring(k) .. "'")
    end
  end
  local limit = opts.limit or 50
  if not (integer.is_integer(limit) and limit >= 1 and limit <= 1000) then
    argerror(1, "log", "limit must be a whole number 1..1000")
  end
  local where, values = {}, {}
  if opts.user_id ~= nil then
    local user = integer.id_text(opts.user_id)
    if not user or user == "" or not sql.is_text(user) then argerror(1, "log", "user_id must be an id") end
    where[#where + 1], values[#values + 1] = "user_id = ?", user
  end
  if opts.after ~= nil then
    local seq = type(opts.after) == "string" and opts.after:match("^%d+$") and tonumber(opts.after)
    if not seq then argerror(1, "log", "after must be a cursor that log returned") end
    where[#where + 1], values[#values + 1] = "seq < ?", seq
  end
  values[#values + 1] = limit + 1
  local ok, err = self:_settle(false)
  if not ok then return nil, err end
  local types = { "SELECT seq, entry, kind, topic, user_id, course, at, body FROM thinkific_quests_log"
    .. (#where > 0 and " WHERE " .. concat(where, " AND ") or "") .. " ORDER BY seq DESC LIMIT ?" }
  for k, v in pairs(store.LOG_TYPES) do types[k] = v end
  local rows
  rows, err = self._db:query(types, (table.unpack or rawget(_G, "unpack"))(values, 1, #values))
  if not rows then return nil, err end
  local n = min(#rows, limit)
  local entries, ids, by_entry = {}, {}, {}
  for i = 1, n do
    local row = rows[i]
    local e = { kind = row.kind, user_id = row.user_id ~= "" and facts.id(row.user_id) or nil,
      course_id = row.course ~= "" and facts.id(row.course) or nil, at = row.at, xp = 0, awards = array() }
    if row.kind == "event" then
      e.event_id, e.topic = row.entry, row.topic
    else
      local body = decode(row.body) or {}
      e.reason, e.badge = body.reason, body.badge
    end
    entries[i], ids[i], by_entry[row.entry] = e, row.entry, e
  end
  if n > 0 then
    local awards
    awards, err = self._db:query({ "SELECT entry, rule, xp, badge FROM thinkific_quests_awards "
      .. "WHERE entry IN (?) ORDER BY seq", xp = "integer" }, ids)
    if not awards then return nil, err end
    for _, a in ipairs(awards) do
      local e = by_entry[a.entry]
      e.xp = e.xp + a.xp
      if e.kind == "event" and (a.xp ~= 0 or a.badge) then -- (not an award that gave nothing)
        e.awards[#e.awards + 1] = { rule = a.rule, xp = a.xp, badge = a.badge }
      end
    end
  end
  return entries, #rows > limit and tostring(rows[limit].seq) or nil
end

---------------------------------------------------------------------------------------------
-- Changing.

--- quests:award(user_id, { xp, badge, reason, course_id }) -> player | nil, err
function Quests:award(user_id, award)
  check_self(self, "award")
  local user = integer.id_text(user_id)
  if not user or user == "" or not sql.is_text(user) then argerror(1, "award", "user id expected") end
  if type(award) ~= "table" then argerror(2, "award", "table expected, got " .. type(award)) end
  for k in pairs(award) do
    if k ~= "xp" and k ~= "badge" and k ~= "reason" and k ~= "course_id" then
      argerror(2, "award", "unknown field '" .. tostring(k) .. "'")
    end
  end
  local xp = award.xp or 0
  if not (integer.is_integer(xp) and xp >= -1e9 and xp <= 1e9) then
    argerror(2, "award", "xp must be a whole number")
  end
  local badge = award.badge
  if badge ~= nil and not (type(badge) == "string" and badge ~= "" and sql.is_text(badge)) then
    argerror(2, "award", "badge must be a non-empty string")
  end
  if xp == 0 and badge == nil then argerror(2, "award", "gives nothing: give xp or a badge") end
  if not (type(award.reason) == "string" and award.reason ~= "" and sql.is_text(award.reason)) then
    argerror(2, "award", "reason required (a non-empty string: it is logged)")
  end
  local ok, err = self:_settle(true)
  if not ok then return nil, err end
  local bucket = bucket_of(self, award.course_id, "award", 2)
  local course = bucket ~= "" and bucket or nil
  self._batches = self._batches + 1
  local tag = format("%s/%d", self._tag, self._batches)
  local now = gettime()
  local result
  result, err = self._db:transaction(function(db)
    return score.manual(self, db, "manual:" .. tag, { user = user, course = course, xp = xp,
      badge = badge, reason = award.reason, at = now }, tag, now)
  end)
  if not result then return nil, err end
  result.scored = true
  notify(self, { result }, {})
  return self:player(user_id, course_arg(self, bucket))
end

--- quests:on_award(function(player, award, event)) -> quests
-- award: { rule, xp, badge, say } (a manual award: rule "", say its reason; event nil).
function Quests:on_award(fn)
  check_self(self, "on_award")
  if not callable(fn) then argerror(1, "on_award", "function expected") end
  self._award[#self._award + 1] = fn
  return self
end

--- quests:on_level_up(function(player, old_level, event)) -> quests
function Quests:on_level_up(fn)
  check_self(self, "on_level_up")
  if not callable(fn) then argerror(1, "on_level_up", "function expected") end
  self._level_up[#self._level_up + 1] = fn
  return self
end

--- quests:on_badge(function(player, badge, event)) -> quests
function Quests:on_badge(fn)
  check_self(self, "on_badge")
  if not callable(fn) then argerror(1, "on_badge", "function expected") end
  self._badge[#self._badge + 1] = fn
  return self
end

--- quests:rebuild() -> n (log entries scored) | nil, err
-- Every award, badge, slot and player recomputed from the log in (created_at, event id) order
-- with the current rules and settings, in one transaction (workers wait); no notifications.
function Quests:rebuild()
  check_self(self, "rebuild")
  if not self.runner then argerror(0, "rebuild", "this quests has no rules (give rules = …)") end
  local t, scope, err = stored(self._db)
  if err then return nil, err end
  local given = self._given
  local thresholds = given.thresholds or t or levels.thresholds(levels.DEFAULT)
  scope = given.scope or scope or "course"
  local old = { self.thresholds, self.scope, self._settled }
  self.thresholds, self.scope = thresholds, scope
  local n
  n, err = transaction(self._db, function(db)
    local hold = store.HOLD_WORKERS[db.engine]
    if hold then db:exec(hold) end
    db:exec(store.SET_SETTING, "levels", encode(thresholds))
    db:exec(store.SET_SETTING, "scope", scope)
    for _, name in ipairs(store.DERIVED) do db:exec("DELETE FROM " .. name) end
    local count, last = 0, nil
    while true do
      local rows = last and db:query(store.LOG_PAGE, last.at, last.at, last.entry, BATCH)
        or db:query(store.LOG_FIRST_PAGE, BATCH)
      if #rows == 0 then break end
      score.entries(self, db, rows)
      count, last = count + #rows, rows[#rows]
    end
    return count
  end)
  if not n then
    self.thresholds, self.scope, self._settled = old[1], old[2], old[3]
    return nil, err
  end
  self._settled = true
  return n
end

--- quests:close(): closes the store's connection (and the rules sandbox). Idempotent.
function Quests:close()
  if self._closed then return end
  self._closed = true
  self._db:close()
  if self.runner and self.runner.state then self.runner.state:close() end
end

Quests.__gc = Quests.close
Quests.__close = Quests.close
Quests.__tostring = function(self) return "thinkific.Quests (" .. self.store .. ")" end

return _M
