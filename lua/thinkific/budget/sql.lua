-- The budget's store in SQLite or PostgreSQL ("sqlite:PATH", "postgres://…"), through the one
-- SQL layer: every client of a site on the same database shares one budget, in other processes
-- and on other hosts. The interface is budget.lua's.
--
-- Two tables: thinkific_rate_sites (one row per site: the lock that makes a take atomic, and
-- the 429's block) and thinkific_rate_slots (one row per grant: its slots and when they free).
-- A take is one write transaction that locks the site's row (an upsert: SQLite's BEGIN
-- IMMEDIATE already admits one writer; PostgreSQL locks the row it upserts, so takes of one
-- site queue there while other sites pass), drops the slots that are free, counts the others and
-- inserts a grant only under the limit. Times come from the database's clock, so hosts need not
-- agree on theirs; what leaves this file are spans of seconds.
local sql = require("thinkific.sql")
local budget = require("thinkific.budget")

local format, setmetatable, tostring, min, max = string.format, setmetatable, tostring, math.min,
  math.max
local open = io.open

local _M = {}

-- The database's clock in seconds since the epoch (SQLite's 'now' has milliseconds).
local NOW = {
  sqlite = "((julianday('now') - 2440587.5) * 86400.0)",
  postgres = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)",
}

local SCHEMA = {
  { -- version 1
    [[CREATE TABLE IF NOT EXISTS thinkific_rate_sites (
      site TEXT PRIMARY KEY,
      blocked_until DOUBLE PRECISION NOT NULL)]],
    [[CREATE TABLE IF NOT EXISTS thinkific_rate_slots (
      ticket TEXT PRIMARY KEY,
      site TEXT NOT NULL,
      slots INTEGER NOT NULL,
      frees_at DOUBLE PRECISION NOT NULL)]],
    "CREATE INDEX IF NOT EXISTS thinkific_rate_slots_site ON thinkific_rate_slots (site, frees_at)",
  },
}

-- The statements of one engine, its clock written in ({now}). None takes a value but by `?`.
local function statements(engine)
  local function s(text) return (text:gsub("{now}", NOW[engine])) end
  return {
    -- Creates the site's row, or locks it (PostgreSQL) by an update that changes nothing.
    lock = s([[INSERT INTO thinkific_rate_sites (site, blocked_until) VALUES (?, 0)
      ON CONFLICT (site) DO UPDATE SET blocked_until = thinkific_rate_sites.blocked_until]]),
    -- Free slots go; so do slots timed past the longest lease from now (a clock set back).
    prune = s([[DELETE FROM thinkific_rate_slots WHERE site = ?
      AND (frees_at <= {now} OR frees_at > {now} + ?)]]),
    count = { s([[SELECT COALESCE(SUM(slots), 0) AS used, MIN(frees_at) - {now} AS refill_in,
      (SELECT blocked_until FROM thinkific_rate_sites WHERE site = ?) - {now} AS blocked_for
      FROM thinkific_rate_slots WHERE site = ? AND frees_at > {now}]]),
      used = "integer", refill_in = "number", blocked_for = "number" },
    grant = s([[INSERT INTO thinkific_rate_slots (ticket, site, slots, frees_at)
      VALUES (?, ?, ?, {now} + ?)]]),
    finish = s("UPDATE thinkific_rate_slots SET frees_at = {now} + ? WHERE ticket = ?"),
    block = s([[INSERT INTO thinkific_rate_sites (site, blocked_until) VALUES (?, {now} + ?)
      ON CONFLICT (site) DO UPDATE SET blocked_until = excluded.blocked_until
      WHERE thinkific_rate_sites.blocked_until < excluded.blocked_until]]),
  }
end

-- Tickets name grants: random bits read once per process, the pid, a counter. The ticket is
-- the primary key, so a repeat could only fail a take, never share a grant.
local prefix, counter = nil, 0
local function ticket()
  if not prefix then
    local f = open("/dev/urandom", "rb")
    local bytes = f and f:read(8) or tostring({}) .. tostring(os.clock())
    if f then f:close() end
    prefix = bytes:gsub(".", function(c) return format("%02x", c:byte()) end)
  end
  counter = counter + 1
  local pid = ""
  local ngx = rawget(_G, "ngx") -- nginx's workers are forks: the random bits are the same
  if type(ngx) == "table" and type(ngx.worker) == "table" then pid = tostring(ngx.worker.pid()) end
  return format("%s%s-%d", prefix, pid, counter)
end

local Store = {}
Store.__index = Store

-- bound: { site, limit, window }. Connects on first use.
function _M.new(bound, url)
  local engine = sql.parse(url, "new").engine
  return setmetatable({ site = bound.site, limit = bound.limit, window = bound.window, url = url,
    q = statements(engine) }, Store)
end

-- The connection, opened (and the schema brought up to date) on first use.
local function db_of(self)
  if self.db then return self.db end
  local db, err = sql.open(self.url, { name = "new" })
  if not db then return nil, err end
  local ok
  ok, err = db:migrate("rate_limit", SCHEMA)
  if not ok then
    db:close()
    return nil, err
  end
  self.db = db
  return db
end

local function take(db, self, want, lease)
  local q, site = self.q, self.site
  db:exec(q.lock, site)
  db:exec(q.prune, site, budget.MAX_LEASE + budget.WINDOW)
  local row = db:first(q.count, site, site)
  local blocked = row.blocked_for or 0
  if blocked > 0 then return 0, blocked end
  local free = self.limit - row.used
  if free <= 0 then return 0, min(row.refill_in or self.window, self.window) end
  local n, id = min(want, free), ticket()
  db:exec(q.grant, id, site, n, lease + self.window)
  return n, id
end

function Store:take(want, lease)
  local db, err = db_of(self)
  if not db then return nil, err end
  return db:transaction(take, self, want, lease)
end

function Store:finish(id)
  local db, err = db_of(self)
  if not db then return nil, err end
  return db:exec(self.q.finish, self.window, id)
end

function Store:block(seconds)
  local db, err = db_of(self)
  if not db then return nil, err end
  return db:exec(self.q.block, self.site, seconds)
end

function Store:look()
  local db, err = db_of(self)
  if not db then return nil, err end
  local row
  row, err = db:first(self.q.count, self.site, self.site)
  if not row then return nil, err end
  return row.used, max(0, row.refill_in or 0), max(0, row.blocked_for or 0)
end

function Store:close()
  if self.db then self.db:close() end
  self.db = nil
end

return _M
