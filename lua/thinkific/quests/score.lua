-- Scoring: a batch of events (or of log entries, for rebuild) inside one transaction.
--
-- For each event, in order, the rules of its topic give candidates: (rule, award key). The
-- database decides each claim, first come first served, in the order of the candidates:
--   1. the award: one row under its unique (rule, award_key) — a candidate whose key is taken
--      (by an earlier event, this batch's or another worker's) gets nothing;
--   2. the cheat-guard slot (rules with `limit`): one of `count` rows of the window of
--      created_at, tried in turn;
--   3. the badge (rules with `badge`): one row under (bucket, user_id, badge).
-- A candidate that loses step 2 or 3 keeps its award row with nothing in it (xp 0, no badge):
-- its key stays used, so that no claim ever depends on a later one, and many candidates can
-- be claimed with one multi-row INSERT … ON CONFLICT DO NOTHING per step, the rows in order
-- (the row counts, and for a partial count the owners read back, say who won). The result is
-- the same as claiming them one by one in that order. A rule with `when` sees the player as
-- the claims before it left them: the candidates gathered so far are claimed first.
-- The players' XP is added at the end of the batch, one upsert per player.
local core = require("thinkific.core")
local store = require("thinkific.quests.store")
local facts = require("thinkific.quests.facts")
local levels = require("thinkific.quests.levels")

local type, ipairs, error, tostring, setmetatable = type, ipairs, error, tostring, setmetatable
local format, rep, gsub = string.format, string.rep, string.gsub
local floor, huge, min = math.floor, math.huge, math.min
local unpack = table.unpack or rawget(_G, "unpack")

local _M = {}

-- What a failing rule raises through the transaction (which rolls back): not a bug of ours, an
-- answer for the caller (score and rebuild return nil, err).
_M.Failure = {}
local function fail(message)
  -- On one line, as every error's message (a rule's own error text may hold line breaks).
  message = (gsub(tostring(message), "%c+", " "))
  error(setmetatable({ message = message }, _M.Failure), 0)
end

local EMPTY = {}
-- Rows per multi-row statement (a statement is parsed whole: a bound on its size).
local CHUNK = 100

--- score.key(a, b, [c, d]) -> one text from two to four parts, each as length:text (so that no
-- two lists give one key).
local function key(a, b, c, d)
  a, b = tostring(a), tostring(b)
  local text = #a .. ":" .. a .. #b .. ":" .. b
  if c == nil then return text end
  c = tostring(c)
  text = text .. #c .. ":" .. c
  if d == nil then return text end
  d = tostring(d)
  return text .. #d .. ":" .. d
end
_M.key = key

--- score.bucket(scope, course) -> where the XP of an event of that course adds up.
function _M.bucket(scope, course)
  if scope == "course" then return course or "" end
  return ""
end

-- The rules of a topic, in order (cached per quests object).
local function rules_for(q, topic)
  local found = q.by_topic[topic]
  if found then return found end
  local wild = (topic:match("^([^.]*)%.") or "") .. ".*"
  found = {}
  for _, rule in ipairs(q.rules) do
    for _, t in ipairs(rule.topics) do
      if t == topic or t == "*" or t == wild then
        found[#found + 1] = rule
        break
      end
    end
  end
  q.by_topic[topic] = found
  return found
end

-- Whether the event passes the rule's progress threshold and where fields.
local function matches(rule, event, f)
  if rule.progress and not (f.progress and f.progress >= rule.progress) then return false end
  local payload = event.payload
  for _, w in ipairs(rule.where or EMPTY) do
    local v = payload
    for _, part in ipairs(w.parts) do
      if type(v) ~= "table" then
        v = nil
        break
      end
      v = v[part]
    end
    if v ~= w.value then return false end
  end
  return true
end

-- The unique key of the rule's award for this event: once per event, per student (in the
-- bucket), per student and course, per student and lesson; nil when the event lacks the id.
local function award_key(rule, f, bucket)
  local once = rule.once_per
  if once == "event" then return "e" .. f.event_id end
  if once == "student" then return "s" .. key(bucket, f.user) end
  if once == "course" then return f.course and "c" .. key(f.user, f.course) end
  return f.lesson and "l" .. key(f.user, f.lesson)
end

---------------------------------------------------------------------------------------------
-- Claims.

-- rows ordered by their keys (ids[i]: the text key of rows[i], all different). Every
-- transaction takes its row locks in key order, so that two PostgreSQL workers claiming the
-- same keys wait for each other instead of deadlocking.
local function in_key_order(rows, ids)
  local order = {}
  for i = 1, #rows do order[i] = i end
  table.sort(order, function(a, b) return ids[a] < ids[b] end)
  local out = {}
  for i, j in ipairs(order) do out[i] = rows[j] end
  return out
end

-- Runs "INSERT … VALUES row, row … ending" over rows in chunks; the rows inserted.
local function insert_rows(db, into, columns, row, width, rows, ending)
  local n = 0
  for first = 1, #rows, CHUNK do
    local text, values, count = store.insert_many(into, columns, row, width,
      { unpack(rows, first, min(#rows, first + CHUNK - 1)) }, ending)
    n = n + db:exec(text, unpack(values, 1, count))
  end
  return n
end

-- Runs statement = { text, condition } over keys (lists of `width` values) in chunks: text,
-- then the condition once per key joined by OR. Calls each(row) for each row read.
local function by_keys(db, statement, width, keys, each)
  for first = 1, #keys, CHUNK do
    local last = min(#keys, first + CHUNK - 1)
    local values = {}
    for i = first, last do
      for j = 1, width do values[#values + 1] = keys[i][j] end
    end
    local text = statement[1] .. rep(statement[2], last - first + 1, " OR ")
    if each then
      for _, row in ipairs(db:query(text, unpack(values, 1, #values))) do each(row) end
    else
      db:exec(text, unpack(values, 1, #values))
    end
  end
end

-- Claims the awards of the candidates, in order; marks each c.won. taken: the keys this
-- batch claimed already (they are ours: a candidate for one of them has lost, with no need to
-- ask the database).
local function claim_awards(db, cands, taken)
  local rows, ids, asked = {}, {}, {}
  for _, c in ipairs(cands) do
    c.id = key(c.rule.name, c.key)
    c.won, c.awarded = false, false
    if not taken[c.id] then
      taken[c.id] = true
      asked[#asked + 1] = c
      rows[#rows + 1] = { c.rule.name, c.key, c.entry, c.user, c.bucket, c.rule.xp, c.rule.badge, c.at }
      ids[#ids + 1] = c.id
    end
  end
  local n = insert_rows(db, "thinkific_quests_awards", store.AWARD_COLUMNS, store.AWARD_ROW, 8,
    in_key_order(rows, ids), store.AWARD_END)
  if n == #asked or n == 0 then
    for _, c in ipairs(asked) do c.won, c.awarded = n > 0, n > 0 end
    return
  end
  local keys, found = {}, {}
  for i, c in ipairs(asked) do keys[i] = { c.rule.name, c.key } end
  by_keys(db, store.AWARD_OWNERS, 2, keys,
    function(row) found[key(row.rule, row.award_key)] = row.entry end)
  for _, c in ipairs(asked) do
    c.won = found[c.id] == c.entry
    c.awarded = c.won
  end
end

-- The cheat guard: each winner of a rule with a limit takes the first free of `count` slots
-- of its window of created_at, or loses.
local function claim_slots(db, cands)
  for _, c in ipairs(cands) do
    local limit = c.won and c.rule.limit
    if limit then
      local window = format("%d", floor(c.at / limit.per))
      local got = false
      for k = 1, limit.count do
        if db:exec(store.SLOT, c.rule.name, key(c.bucket, c.user, window, k), c.entry) == 1 then
          got = true
          break
        end
      end
      c.won = got
    end
  end
end

-- Claims the badges of the winners that give one, in order (held: the badges this batch
-- claimed already, as claim_awards' taken).
local function claim_badges(db, cands, held)
  local rows, ids, claimed = {}, {}, {}
  for _, c in ipairs(cands) do
    if c.won and c.rule.badge then
      local id = key(c.bucket, c.user, c.rule.badge)
      if held[id] then
        c.won = false
      else
        held[id] = true
        claimed[#claimed + 1] = c
        rows[#rows + 1] = { c.bucket, c.user, c.rule.badge, c.entry, c.rule.name, c.at }
        ids[#ids + 1] = id
      end
    end
  end
  if #rows == 0 then return end
  local n = insert_rows(db, "thinkific_quests_badges", store.BADGE_COLUMNS, store.BADGE_ROW, 6,
    in_key_order(rows, ids), store.BADGE_END)
  if n == #rows then return end
  local keys, found = {}, {}
  for i, c in ipairs(claimed) do keys[i] = { c.bucket, c.user, c.rule.badge } end
  by_keys(db, store.BADGE_OWNERS, 3, keys,
    function(row) found[key(row.bucket, row.user_id, row.badge)] = key(row.entry, row.rule) end)
  for _, c in ipairs(claimed) do
    c.won = found[key(c.bucket, c.user, c.rule.badge)] == key(c.entry, c.rule.name)
  end
end

-- Claims the pending candidates of the batch (award, slot, badge), empties the list and
-- credits the winners: their results and players.
local function flush(db, batch)
  local cands = batch.pending
  if #cands == 0 then return end
  batch.pending = {}
  claim_awards(db, cands, batch.taken)
  claim_slots(db, cands)
  claim_badges(db, cands, batch.held)
  local void = {}
  for _, c in ipairs(cands) do
    if c.won then
      local rule, result, p = c.rule, c.result, c.player
      result.awards[#result.awards + 1] = { rule = rule.name, xp = rule.xp, badge = rule.badge,
        say = rule.say }
      result.xp = result.xp + rule.xp
      p.xp = p.xp + rule.xp
      if rule.xp ~= 0 and c.at > p.reached_at then p.reached_at = c.at end
      if rule.badge and p.badges then p.badges[#p.badges + 1] = rule.badge end
    elseif c.awarded then
      void[#void + 1] = c -- it lost a slot or its badge: its award row gives nothing
    end
  end
  if #void > 0 then
    local keys = {}
    for i, c in ipairs(void) do keys[i] = { c.rule.name, c.key, c.entry } end
    by_keys(db, store.VOID_AWARDS, 3, keys)
  end
end

---------------------------------------------------------------------------------------------
-- Events.

-- The batch's record of a player (bucket, user): XP added so far, the latest name.
local function player_of(batch, bucket, user)
  local pk = key(bucket, user)
  local p = batch.players[pk]
  if not p then
    p = { bucket = bucket, user = user, xp = 0, name_at = -huge, reached_at = 0 }
    batch.players[pk] = p
    batch.order[#batch.order + 1] = p
  end
  return p
end

-- What a rule's `when` sees of the player: { user_id, name, xp, level, badges }, as stored
-- plus this batch's claims so far (the stored part read once per batch and player).
local function player_view(q, db, p)
  if not p.stored then
    local row = db:first(store.PLAYER, p.bucket, p.user)
    p.stored = { xp = row and row.xp or 0, name = row and row.name }
    p.badges = {}
    for i, b in ipairs(db:query(store.BADGES, p.bucket, p.user)) do p.badges[i] = b.badge end
  end
  local xp = p.stored.xp + p.xp
  local badges = {}
  for i, b in ipairs(p.badges) do badges[i] = b end
  return { user_id = facts.id(p.user), name = p.name or p.stored.name, xp = xp,
    level = (levels.level(q.thresholds, xp)), badges = badges }
end

-- Gathers the candidates of one event (its facts f); raises when a rule fails.
local function score_event(q, db, event, f, batch, result)
  if not f.user then return end -- no student: nothing to give
  local bucket = _M.bucket(q.scope, f.course)
  local p = player_of(batch, bucket, f.user)
  if f.name and f.at >= p.name_at then p.name, p.name_at = f.name, f.at end
  local began = false
  for _, rule in ipairs(rules_for(q, f.topic)) do
    local akey = matches(rule, event, f) and award_key(rule, f, bucket)
    if akey and rule.when then
      flush(db, batch)
      local view = player_view(q, db, p)
      local ok, err
      if not began then
        ok, err = q.runner:begin(event, view)
        if not ok then fail(err) end
        began = true
      end
      ok, err = q.runner:when(rule, event, view)
      if ok == nil then
        q.runner:finish()
        fail(err)
      end
      if not ok then akey = nil end
    end
    if akey then
      batch.pending[#batch.pending + 1] = { rule = rule, key = akey, entry = f.event_id, user = f.user,
        bucket = bucket, at = f.at, result = result, player = p }
    end
  end
  if began then q.runner:finish() end
end

-- A manual award (a log entry of kind "manual") into result: always given (its key is its own
-- entry), its badge only when not held yet.
local function score_manual(q, db, entry, award, batch, result)
  local bucket = _M.bucket(q.scope, award.course)
  local badge = award.badge
  if badge and insert_rows(db, "thinkific_quests_badges", store.BADGE_COLUMNS, store.BADGE_ROW, 6,
      { { bucket, award.user, badge, entry, "", award.at } }, store.BADGE_END) ~= 1 then
    badge = nil
  end
  insert_rows(db, "thinkific_quests_awards", store.AWARD_COLUMNS, store.AWARD_ROW, 8,
    { { "", entry, entry, award.user, bucket, award.xp, badge, award.at } }, store.AWARD_END)
  local p = player_of(batch, bucket, award.user)
  p.xp = p.xp + award.xp
  if award.xp ~= 0 and award.at > p.reached_at then p.reached_at = award.at end
  if badge and p.badges then p.badges[#p.badges + 1] = badge end
  result.awards[1] = { rule = "", xp = award.xp, badge = badge, say = award.reason }
  result.xp = award.xp
end

-- Adds the batch's XP to the players, then gives each result its levels: the player's XP after
-- the event (the stored total less what later events of the batch added) and before it.
local function finish_batch(q, db, batch, results)
  flush(db, batch)
  if #batch.order == 0 then return end
  local rows, users, ids = {}, {}, {}
  for i, p in ipairs(batch.order) do
    rows[i] = { p.bucket, p.user, p.name, p.name and p.name_at or 0, p.xp, p.reached_at }
    users[i], ids[i] = p.user, key(p.bucket, p.user)
  end
  insert_rows(db, "thinkific_quests_players", store.PLAYER_COLUMNS, store.PLAYER_ROW, 6,
    in_key_order(rows, ids), store.PLAYER_END)
  local totals = {}
  for first = 1, #users, 500 do
    for _, row in ipairs(db:query(store.PLAYERS_XP, { unpack(users, first, min(#users, first + 499)) })) do
      totals[key(row.bucket, row.user_id)] = row.xp
    end
  end
  for i = #results, 1, -1 do
    local r = results[i]
    if r.user then
      local pk = key(r.bucket, r.user)
      local after = totals[pk] or 0
      r.total = after
      totals[pk] = after - r.xp
      r.level = (levels.level(q.thresholds, after))
      r.old_level = (levels.level(q.thresholds, after - r.xp))
    end
  end
end

local function new_batch()
  return { players = {}, order = {}, pending = {}, taken = {}, held = {} }
end

local function new_result(f, bucket)
  return { event_id = f.event_id, topic = f.topic, user = f.user, bucket = bucket,
    user_id = f.user and facts.id(f.user), course_id = f.course and facts.id(f.course),
    awards = core.array(), xp = 0 }
end

--- score.events(q, db, items, tag, now) -> results (inside a transaction)
-- items: { event = decoded envelope, facts = f, body = JSON text }, ids unique. Logs them
-- (batch tag), then scores those that were not logged before; results[i] for items[i], with
-- .scored false for an event scored before.
function _M.events(q, db, items, tag, now)
  local rows, ids = {}, {}
  for i, item in ipairs(items) do
    local f = item.facts
    rows[i] = { f.event_id, "event", f.topic, f.user or "", f.course or "", f.at, item.body, tag, now }
    ids[i] = f.event_id
  end
  local inserted = insert_rows(db, "thinkific_quests_log", store.LOG_COLUMNS, store.LOG_ROW, 9,
    in_key_order(rows, ids), store.LOG_END)
  local new = {}
  if inserted == #items then
    for _, item in ipairs(items) do new[item.facts.event_id] = true end
  elseif inserted > 0 then -- which ones: those this batch's tag logged
    for first = 1, #ids, CHUNK do
      local chunk = { unpack(ids, first, min(#ids, first + CHUNK - 1)) }
      for _, row in ipairs(db:query(store.LOGGED_BY, chunk, tag)) do new[row.entry] = true end
    end
  end
  local batch, results, scored = new_batch(), {}, {}
  for i, item in ipairs(items) do
    local f = item.facts
    local result = new_result(f, _M.bucket(q.scope, f.course))
    result.scored = new[f.event_id] or false
    results[i] = result
    if result.scored then
      score_event(q, db, item.event, f, batch, result)
      scored[#scored + 1] = result
    end
  end
  finish_batch(q, db, batch, scored)
  return results
end

--- score.entries(q, db, rows) -> results: log rows ({ entry, kind, user_id, course, at, body })
-- scored again in their order (rebuild).
function _M.entries(q, db, rows)
  local batch, results = new_batch(), {}
  for i, row in ipairs(rows) do
    local body = core.decode(row.body)
    local result
    local course = row.course ~= "" and row.course or nil
    if row.kind == "manual" then
      flush(db, batch) -- (in order with the events around it)
      result = new_result({ event_id = row.entry, user = row.user_id, course = course },
        _M.bucket(q.scope, course))
      score_manual(q, db, row.entry, { user = row.user_id, course = course, xp = body.xp, badge = body.badge,
        reason = body.reason, at = row.at }, batch, result)
    else
      local f = facts.of(body, row.at)
      f.at, f.event_id = row.at, row.entry
      result = new_result(f, _M.bucket(q.scope, f.course))
      score_event(q, db, body, f, batch, result)
    end
    results[i] = result
  end
  finish_batch(q, db, batch, results)
  return results
end

--- score.manual(q, db, entry, award, tag, now) -> result: logs and applies a manual award
-- ({ user, course, xp, badge, reason, at }).
function _M.manual(q, db, entry, award, tag, now)
  local body = assert(core.encode({ xp = award.xp, badge = award.badge, reason = award.reason }))
  insert_rows(db, "thinkific_quests_log", store.LOG_COLUMNS, store.LOG_ROW, 9,
    { { entry, "manual", nil, award.user, award.course or "", award.at, body, tag, now } })
  local batch = new_batch()
  local result = new_result({ event_id = entry, user = award.user, course = award.course },
    _M.bucket(q.scope, award.course))
  score_manual(q, db, entry, award, batch, result)
  finish_batch(q, db, batch, { result })
  return result
end

return _M
