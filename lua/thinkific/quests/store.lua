-- The tables of thinkific.quests (through thinkific.sql, on SQLite or PostgreSQL) and every
-- statement on them. Exactly once is the database's work: an award is a row under a unique
-- (rule, award_key), a badge under (bucket, user_id, badge), a cheat-guard slot under
-- (rule, slot), a scored event under its id in the log; each is written with INSERT … ON
-- CONFLICT DO NOTHING, and the row count (or, after a multi-row insert that inserted only
-- some rows, the owners read back) says whether this transaction got it.
--
-- A bucket is where XP adds up: the course id under scope "course" ('' for events without a
-- course), '' under scope "site". Ids are text ('' for none). Times are epoch seconds: an
-- event's created_at, a manual award's wall clock. The log keeps each entry's course, not its
-- bucket: rebuild may change the scope.
local _M = {}

_M.STEPS = {
  {
    [[CREATE TABLE thinkific_quests_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)]],
    -- Every event scored and every manual award: what rebuild replays.
    [[CREATE TABLE thinkific_quests_log (
      seq {serial},
      entry TEXT NOT NULL UNIQUE,
      kind TEXT NOT NULL CHECK (kind IN ('event', 'manual')),
      topic TEXT,
      user_id TEXT NOT NULL,
      course TEXT NOT NULL,
      at DOUBLE PRECISION NOT NULL,
      body TEXT NOT NULL,
      batch TEXT NOT NULL,
      logged_at DOUBLE PRECISION NOT NULL)]],
    "CREATE INDEX thinkific_quests_log_order ON thinkific_quests_log (at, entry)",
    "CREATE INDEX thinkific_quests_log_user ON thinkific_quests_log (user_id, seq)",
    [[CREATE TABLE thinkific_quests_awards (
      seq {serial},
      rule TEXT NOT NULL,
      award_key TEXT NOT NULL,
      entry TEXT NOT NULL,
      user_id TEXT NOT NULL,
      bucket TEXT NOT NULL,
      xp BIGINT NOT NULL,
      badge TEXT,
      at DOUBLE PRECISION NOT NULL,
      UNIQUE (rule, award_key))]],
    "CREATE INDEX thinkific_quests_awards_entry ON thinkific_quests_awards (entry)",
    [[CREATE TABLE thinkific_quests_badges (
      seq {serial},
      bucket TEXT NOT NULL,
      user_id TEXT NOT NULL,
      badge TEXT NOT NULL,
      entry TEXT NOT NULL,
      rule TEXT NOT NULL,
      at DOUBLE PRECISION NOT NULL,
      UNIQUE (bucket, user_id, badge))]],
    [[CREATE TABLE thinkific_quests_limits (
      rule TEXT NOT NULL,
      slot TEXT NOT NULL,
      entry TEXT NOT NULL,
      PRIMARY KEY (rule, slot))]],
    [[CREATE TABLE thinkific_quests_players (
      bucket TEXT NOT NULL,
      user_id TEXT NOT NULL,
      name TEXT,
      name_at DOUBLE PRECISION NOT NULL,
      xp BIGINT NOT NULL,
      reached_at DOUBLE PRECISION NOT NULL,
      PRIMARY KEY (bucket, user_id))]],
    "CREATE INDEX thinkific_quests_board ON thinkific_quests_players (bucket, xp, reached_at)",
  },
}

-- Settings.
_M.SETTINGS = "SELECT name, value FROM thinkific_quests_settings"
_M.ADD_SETTING = [[INSERT INTO thinkific_quests_settings (name, value) VALUES (?, ?)
  ON CONFLICT (name) DO NOTHING]]
_M.SET_SETTING = [[INSERT INTO thinkific_quests_settings (name, value) VALUES (?, ?)
  ON CONFLICT (name) DO UPDATE SET value = excluded.value]]

-- The log.
_M.LOG_COLUMNS = "(entry, kind, topic, user_id, course, at, body, batch, logged_at)"
_M.LOG_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_M.LOG_END = " ON CONFLICT (entry) DO NOTHING"
_M.LOGGED_BY = "SELECT entry FROM thinkific_quests_log WHERE entry IN (?) AND batch = ?"
-- Rebuild reads the log in (at, entry) order, a page at a time.
_M.LOG_PAGE = { [[SELECT entry, kind, user_id, course, at, body FROM thinkific_quests_log
  WHERE at > ? OR (at = ? AND entry > ?) ORDER BY at, entry LIMIT ?]], at = "number" }
_M.LOG_FIRST_PAGE = { [[SELECT entry, kind, user_id, course, at, body FROM thinkific_quests_log
  ORDER BY at, entry LIMIT ?]], at = "number" }

-- Awards, badges, cheat-guard slots. After a multi-row insert that inserted only some of its
-- rows, the owners are read back by key: a statement, then one condition per key, joined by
-- OR (each an index look-up on both engines; a row-value IN list is a scan in SQLite).
_M.AWARD_COLUMNS = "(rule, award_key, entry, user_id, bucket, xp, badge, at)"
_M.AWARD_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_M.AWARD_END = " ON CONFLICT (rule, award_key) DO NOTHING"
_M.AWARD_OWNERS = { "SELECT rule, award_key, entry FROM thinkific_quests_awards WHERE ",
  "(rule = ? AND award_key = ?)" }
-- An award that lost its slot or its badge gives nothing (its key stays used).
_M.VOID_AWARDS = { "UPDATE thinkific_quests_awards SET xp = 0, badge = NULL WHERE ",
  "(rule = ? AND award_key = ? AND entry = ?)" }
_M.BADGE_COLUMNS = "(bucket, user_id, badge, entry, rule, at)"
_M.BADGE_ROW = "(?, ?, ?, ?, ?, ?)"
_M.BADGE_END = " ON CONFLICT (bucket, user_id, badge) DO NOTHING"
_M.BADGE_OWNERS = { "SELECT bucket, user_id, badge, entry, rule FROM thinkific_quests_badges WHERE ",
  "(bucket = ? AND user_id = ? AND badge = ?)" }
_M.SLOT = [[INSERT INTO thinkific_quests_limits (rule, slot, entry) VALUES (?, ?, ?)
  ON CONFLICT (rule, slot) DO NOTHING]]

-- Players: XP adds up (concurrent workers each add theirs); the name is the latest event's;
-- reached_at is the time of the latest award that changed the XP (ties on the board go to who
-- reached that XP first).
_M.PLAYER_COLUMNS = "(bucket, user_id, name, name_at, xp, reached_at)"
_M.PLAYER_ROW = "(?, ?, ?, ?, ?, ?)"
_M.PLAYER_END = [[ ON CONFLICT (bucket, user_id) DO UPDATE SET
  xp = thinkific_quests_players.xp + excluded.xp,
  name = CASE WHEN excluded.name IS NOT NULL AND excluded.name_at >= thinkific_quests_players.name_at
    THEN excluded.name ELSE thinkific_quests_players.name END,
  name_at = CASE WHEN excluded.name IS NOT NULL AND excluded.name_at >= thinkific_quests_players.name_at
    THEN excluded.name_at ELSE thinkific_quests_players.name_at END,
  reached_at = CASE WHEN excluded.reached_at > thinkific_quests_players.reached_at
    THEN excluded.reached_at ELSE thinkific_quests_players.reached_at END]]
_M.PLAYER = { [[SELECT user_id, name, xp FROM thinkific_quests_players
  WHERE bucket = ? AND user_id = ?]], xp = "integer" }
_M.PLAYERS_XP = { [[SELECT bucket, user_id, xp FROM thinkific_quests_players
  WHERE user_id IN (?)]], xp = "integer" }
_M.BADGES = "SELECT badge FROM thinkific_quests_badges WHERE bucket = ? AND user_id = ? ORDER BY seq"
_M.BOARD = { [[SELECT user_id, name, xp, rank FROM (SELECT user_id, name, xp, reached_at,
  rank() OVER (ORDER BY xp DESC) AS rank FROM thinkific_quests_players WHERE bucket = ?) ranked
  ORDER BY xp DESC, reached_at, user_id LIMIT ? OFFSET ?]], xp = "integer", rank = "integer" }

-- What `log` lists, newest first.
_M.LOG_TYPES = { seq = "integer", at = "number" }

-- What rebuild recomputes.
_M.DERIVED = { "thinkific_quests_awards", "thinkific_quests_badges", "thinkific_quests_limits",
  "thinkific_quests_players" }

-- Rebuild holds off the workers for its whole transaction. SQLite: BEGIN IMMEDIATE already
-- admits one writer. PostgreSQL: this lock conflicts with the row lock every scoring
-- transaction takes when it logs its events, and with no read. (thinkific.sql's fragments are
-- for statements both engines run; this one has no SQLite counterpart to write.)
_M.HOLD_WORKERS = { postgres = "LOCK TABLE thinkific_quests_log IN SHARE ROW EXCLUSIVE MODE" }

-- One INSERT of many rows: db:exec(text, unpack(values, 1, n)) with text "INSERT INTO into
-- columns VALUES row, row, … ending". rows: lists of `width` values (nil: NULL).
function _M.insert_many(into, columns, row, width, rows, ending)
  local parts, values, n = {}, {}, 0
  for i, r in ipairs(rows) do
    parts[i] = row
    for j = 1, width do
      n = n + 1
      values[n] = r[j]
    end
  end
  return "INSERT INTO " .. into .. " " .. columns .. " VALUES " .. table.concat(parts, ", ")
    .. (ending or ""), values, n
end

return _M
