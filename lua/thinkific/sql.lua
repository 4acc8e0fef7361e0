-- thinkific.sql: the one SQL layer for durable state (the inbox, and whatever else keeps state
-- in the same stores), on SQLite and PostgreSQL through LuaSQL. LuaSQL has no prepared
-- statements, so every value enters SQL through `literal` below (strings through the driver's
-- escape, integers %d, floats %.17g), and every difference between the two engines lives in
-- DIALECTS. Results come back converted in `convert` (PostgreSQL's driver gives every value as
-- text). Store URLs: "sqlite:PATH" and "postgres://user:password@host:port/db?param=value".
local core = require("thinkific.core")
local args = require("thinkific.args")

local argerror = args.error
local type, tostring, tonumber, select, pcall, error, setmetatable, getmetatable =
  type, tostring, tonumber, select, pcall, error, setmetatable, getmetatable
local format, find, gsub, byte, sub, concat = string.format, string.find, string.gsub,
  string.byte, string.sub, table.concat
local math_type, tointeger, huge, floor = math.type, math.tointeger, math.huge, math.floor
local utf8_len = rawget(_G, "utf8") and utf8.len
local unpack = table.unpack or rawget(_G, "unpack")

local _M = {}

-- What differs between the engines. `begin` opens a write transaction: SQLite's IMMEDIATE
-- takes the write lock at once, so that two processes never both read before either writes.
-- Template fragments ({name} in a statement): `serial` is an auto-increment primary key,
-- `skip_locked` ends a subquery whose rows a claim will update (PostgreSQL locks them and skips
-- rows another transaction holds; SQLite's BEGIN IMMEDIATE already excludes every other
-- writer). Upserts are the same text in both (INSERT … ON CONFLICT (key) DO NOTHING / DO UPDATE
-- SET c = excluded.c), so they need no fragment. SQLite never gets RETURNING: LuaSQL steps a
-- statement once to see whether it has columns, resets it and steps it again for the rows, so
-- an UPDATE … RETURNING would run twice.
local DIALECTS = {
  sqlite = {
    driver = "luasql.sqlite3", package = "lua-sql-sqlite3", env = "sqlite3",
    begin = "BEGIN IMMEDIATE",
    lock_schema = nil,
    reconnects = false,
    fragments = { serial = "INTEGER PRIMARY KEY AUTOINCREMENT", skip_locked = "" },
  },
  postgres = {
    driver = "luasql.postgres", package = "lua-sql-postgres", env = "postgres",
    begin = "BEGIN",
    -- Concurrent CREATE TABLE IF NOT EXISTS can fail in PostgreSQL: schema changes queue here.
    lock_schema = "SELECT pg_advisory_xact_lock(7305467001)",
    reconnects = true,
    fragments = { serial = "BIGSERIAL PRIMARY KEY", skip_locked = " FOR UPDATE SKIP LOCKED" },
  },
}

_M.DEFAULT_BUSY_TIMEOUT = 5    -- seconds SQLite waits for another writer's lock
_M.DEFAULT_CONNECT_TIMEOUT = 10

---------------------------------------------------------------------------------------------
-- Text: what a string must be to go into SQL unchanged on both engines.

-- A strict UTF-8 check for Lua without the utf8 library (LuaJIT): no overlong forms, no
-- surrogates, nothing past U+10FFFF.
local function valid_utf8(s)
  local i, n = 1, #s
  while true do
    i = find(s, "[\128-\255]", i)
    if not i then return true end
    local c, c2, c3, c4 = byte(s, i, i + 3)
    local len, lo, hi
    lo, hi = 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    if i + len - 1 > n or c2 < lo or c2 > hi then return false end
    if len >= 3 and (c3 < 0x80 or c3 > 0xBF) then return false end
    if len == 4 and (c4 < 0x80 or c4 > 0xBF) then return false end
    i = i + len
  end
end

--- sql.is_text(s) -> whether s is UTF-8 without NUL bytes: what a string value may be.
-- (SQLite's escaping stops at a NUL, PostgreSQL's refuses bad UTF-8: both would change it.)
-- (utf8.len checks in C; a Lua pattern's class over a 1 KB body took 13 us, a third of a stored
-- delivery's time, and every value passes here.)
function _M.is_text(s)
  if find(s, "\0", 1, true) then return false end
  if utf8_len then return utf8_len(s) ~= nil end
  if not find(s, "[\128-\255]") then return true end
  return valid_utf8(s)
end
_M._valid_utf8 = valid_utf8 -- for the spec of the LuaJIT path

---------------------------------------------------------------------------------------------
-- Store URLs.

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A conninfo value in single quotes, with \ and ' escaped as libpq reads them.
local function conninfo_value(v)
  return "'" .. gsub(gsub(v, "\\", "\\\\"), "'", "\\'") .. "'"
end

local function bad_url(fname, msg)
  argerror(1, fname, "store: " .. msg)
end

-- "postgres://user:password@host:port/db?k=v" -> conninfo, shown URL, secrets (the password).
local function parse_postgres(url, fname)
  if args.userinfo_problem(url) then
    bad_url(fname, "the URL " .. args.userinfo_problem(url))
  end
  local scheme, userinfo, hostport, rest = args.url_parts(url)
  local params, secrets = {}, {}
  local shown_userinfo
  if userinfo then
    local user, password = userinfo:match("^([^:]*):(.*)$")
    user = user or userinfo
    if user ~= "" then params[#params + 1] = "user=" .. conninfo_value(unescape(user)) end
    if password then
      secrets[#secrets + 1] = unescape(password)
      secrets[#secrets + 1] = password
      params[#params + 1] = "password=" .. conninfo_value(unescape(password))
      shown_userinfo = user .. ":***"
    else
      shown_userinfo = user
    end
  end
  local host, port = hostport:match("^%[(.*)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host then bad_url(fname, "the host and port of a postgres:// URL must read host:port") end
  if host ~= "" then params[#params + 1] = "host=" .. conninfo_value(unescape(host)) end
  if port ~= "" then params[#params + 1] = "port=" .. conninfo_value(port) end
  local path, query = rest:match("^([^?#]*)%??([^#]*)")
  local db = path:match("^/(.*)$")
  if path ~= "" and not db then bad_url(fname, "the database of a postgres:// URL follows a '/'") end
  if db and db ~= "" then params[#params + 1] = "dbname=" .. conninfo_value(unescape(db)) end
  local shown_query, timeout = {}, false
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([%a_]+)=(.*)$")
    if not k then bad_url(fname, "a postgres:// URL's query holds name=value pairs") end
    if k == "password" then
      secrets[#secrets + 1], secrets[#secrets + 2] = unescape(v), v
    else
      shown_query[#shown_query + 1] = pair
    end
    if k == "connect_timeout" then timeout = true end
    params[#params + 1] = k .. "=" .. conninfo_value(unescape(v))
  end
  if not timeout then
    params[#params + 1] = "connect_timeout=" .. _M.DEFAULT_CONNECT_TIMEOUT
  end
  local shown = scheme .. "://" .. (shown_userinfo and shown_userinfo .. "@" or "") .. hostport
    .. path .. (#shown_query > 0 and "?" .. concat(shown_query, "&") or "")
  return concat(params, " "), shown, secrets
end

--- sql.parse(url, [fname]) -> { engine, shown, source, secrets }
-- Raises (bad argument #1 to fname) for a URL that names no store we know; never shows a password.
function _M.parse(url, fname)
  fname = fname or "open"
  if type(url) ~= "string" then
    argerror(1, fname, "store URL expected (\"sqlite:PATH\" or \"postgres://…\"), got " .. type(url))
  end
  local path = url:match("^sqlite:(.*)$")
  if path then
    path = path:match("^//(.+)$") or path
    if path == "" then
      bad_url(fname, "sqlite: needs a file path, e.g. \"sqlite:/var/lib/app/thinkific.db\"")
    end
    if find(path, "\0", 1, true) then bad_url(fname, "the sqlite path holds a NUL byte") end
    return { engine = "sqlite", shown = "sqlite:" .. path, source = path, secrets = {} }
  end
  local scheme = url:match("^(%a[%w+.-]*):")
  if scheme == "postgres" or scheme == "postgresql" then
    if not url:find("^%a+://") then
      bad_url(fname, "a PostgreSQL store is postgres://user:password@host:port/db")
    end
    local source, shown, secrets = parse_postgres(url, fname)
    return { engine = "postgres", shown = shown, source = source, secrets = secrets }
  end
  bad_url(fname, (scheme and ("unknown scheme '" .. scheme .. "'") or "not a store URL")
    .. ": use \"sqlite:PATH\" or \"postgres://user:password@host:port/db\"")
end

---------------------------------------------------------------------------------------------
-- Connections.

local DB = {}
DB.__index = DB
DB.__name = "thinkific.sql.DB"

-- A failure inside a transaction travels as this, raised, to the transaction that rolls back.
local Failure = {}

local ENVS = {} -- one LuaSQL environment per driver, for the life of the Lua state

-- text with every secret (the password, as written and decoded) replaced by ***.
local function scrub(text, secrets)
  for _, s in ipairs(secrets) do
    if s ~= "" then
      local i = 1
      while true do
        local a, b = find(text, s, i, true)
        if not a then break end
        text = sub(text, 1, a - 1) .. "***" .. sub(text, b + 1)
        i = a + 3
      end
    end
  end
  return text
end

-- A store error: kind "store", the shown URL, what failed, the driver's words on one line.
local function store_error(target, what, detail)
  local message = target.shown .. ": " .. what
  if detail then
    detail = gsub(gsub(tostring(detail), "^LuaSQL: ", ""), "%s*\n%s*", " ")
    detail = gsub(gsub(detail, "^[^.]*%. PostgreSQL: ", ""), "%s+$", "")
    message = message .. ": " .. detail
  end
  return core.error{ kind = "store", message = scrub(message, target.secrets), store = target.shown }
end

local function driver_env(dialect)
  local env = ENVS[dialect.driver]
  if env then return env end
  local ok, driver = pcall(require, dialect.driver)
  if not ok then
    return nil, "the LuaSQL driver " .. dialect.driver .. " is not installed (Debian: "
      .. dialect.package .. ")"
  end
  env = driver[dialect.env]()
  ENVS[dialect.driver] = env
  return env
end

-- Runs a PRAGMA and returns the first value of its answer (true when it has none).
local function pragma(conn, statement)
  local cur, err = conn:execute(statement)
  if not cur then return nil, err end
  if type(cur) == "number" then return true end
  local value = cur:fetch()
  cur:close() -- an open cursor would make conn:close() raise
  if value == nil then return true end
  return value
end

-- Switches SQLite to WAL. While another connection writes to a new database (two processes
-- opening one store together), SQLite answers the switch "database is locked" at once,
-- busy_timeout or not: tried again, a few ms apart, for up to busy_timeout.
local function wal(conn, seconds)
  local deadline = core.now() + seconds
  while true do
    local mode, err = pragma(conn, "PRAGMA journal_mode = WAL")
    if mode or not find(tostring(err), "locked", 1, true) or core.now() >= deadline then
      return mode, err
    end
    core.sleep(0.005)
  end
end

-- The statements run on every new connection, and a check of their answers.
local function setup(conn, target, opts)
  if target.engine == "sqlite" then
    local seconds = opts.busy_timeout or _M.DEFAULT_BUSY_TIMEOUT
    local ok, err = pragma(conn, format("PRAGMA busy_timeout = %d", floor(seconds * 1000)))
    if not ok then return nil, err end
    local mode
    mode, err = wal(conn, seconds)
    if not mode then return nil, err end
    if mode ~= "wal" and mode ~= "memory" then
      return nil, "cannot switch to WAL mode (the directory must be writable)"
    end
    ok, err = conn:execute("PRAGMA synchronous = FULL")
    if not ok then return nil, err end
    return true
  end
  return conn:execute("SET client_min_messages TO WARNING")
end

local function connect(target, opts)
  local dialect = DIALECTS[target.engine]
  local env, err = driver_env(dialect)
  if not env then return nil, store_error(target, "cannot open", err) end
  local conn
  conn, err = env:connect(target.source)
  if not conn then return nil, store_error(target, "cannot open", err) end
  local ok
  ok, err = setup(conn, target, opts)
  if not ok then
    conn:close()
    return nil, store_error(target, "cannot open", err)
  end
  return conn
end

--- sql.open(url, { busy_timeout = 5, name = "open" }) -> db | nil, err
-- Raises for a URL that names no store (a bad argument of opts.name); a store that cannot be
-- opened (a directory that cannot be written, a refused password, a server down) is nil, err
-- with kind "store".
function _M.open(url, opts)
  opts = opts or {}
  local target = _M.parse(url, opts.name or "open")
  local conn, err = connect(target, opts)
  if not conn then return nil, err end
  return setmetatable({
    engine = target.engine, url = target.shown,
    _target = target, _opts = opts, _conn = conn, _dialect = DIALECTS[target.engine],
  }, DB)
end

local function check_open(self, name)
  if getmetatable(self) ~= DB then argerror(0, name, "store connection expected: call it with ':'") end
  if self._closed then error(format("thinkific.sql: '%s' on a closed store (%s)", name, self.url), 3) end
end

-- The connection, opened again when the last one was lost.
local function connection(self)
  if self._conn then return self._conn end
  local conn, err = connect(self._target, self._opts)
  self._conn = conn
  return conn, err
end

-- After a failure: a connection that no longer answers is dropped, to be opened again by the
-- next statement (PostgreSQL restarted, the network came back).
local function check_alive(self)
  local conn = self._conn
  if not (conn and self._dialect.reconnects) then return end
  local cur = conn:execute("SELECT 1")
  if cur then
    cur:close()
    return
  end
  pcall(conn.close, conn)
  self._conn = nil
end

local function failed(self, err)
  if self._in_tx then error(setmetatable({ err = err }, Failure), 0) end
  check_alive(self)
  return nil, err
end

-- The first words of a statement ("INSERT INTO thinkific_inbox"), to say which one failed
-- without showing its values.
local function verb(sql)
  return sql:match("^%s*(%a+%s+[%w_]+%s+[%w_]+)") or sql:match("^%s*(%a+%s+[%w_]+)")
    or sql:match("^%s*(%a+)") or "statement"
end

---------------------------------------------------------------------------------------------
-- Statements.

-- The SQL text of one value, or nil and why it cannot be stored unchanged.
local function literal(self, v)
  local t = type(v)
  if v == nil then return "NULL" end
  if t == "boolean" then return v and "TRUE" or "FALSE" end
  if t == "number" then
    if math_type then
      if math_type(v) == "integer" then return format("%d", v) end
    elseif v % 1 == 0 and v >= -2 ^ 53 and v <= 2 ^ 53 then
      return format("%d", v)
    end
    if v ~= v or v == huge or v == -huge then return nil, "cannot store " .. tostring(v) end
    return format("%.17g", v)
  end
  if t == "string" then
    if not _M.is_text(v) then return nil, "a string must be UTF-8 text without NUL bytes" end
    -- Without a quote or a backslash a string is its own escape on both engines (SQLite doubles
    -- quotes; PostgreSQL quotes and, without standard_conforming_strings, backslashes): no
    -- copy through the driver.
    if not (find(v, "'", 1, true) or find(v, "\\", 1, true)) then return "'" .. v .. "'" end
    local escaped = self._conn:escape(v)
    if not escaped then return nil, "the driver could not escape a string" end
    return "'" .. escaped .. "'"
  end
  if t == "table" then -- a list, for IN (…); an empty list is (NULL), which matches nothing
    if #v == 0 then return "NULL" end
    local parts = {}
    for i = 1, #v do
      local part, why = literal(self, v[i])
      if not part then return nil, why end
      parts[i] = part
    end
    return concat(parts, ", ")
  end
  return nil, "cannot store a " .. t
end

-- A statement's text split at its placeholders, with the dialect's fragments in: { pieces, n }
-- (n placeholders, n + 1 pieces), or nil and the name of a fragment the dialect lacks. Kept
-- per dialect and text (at most COMPILED_MAX texts, then started afresh): the gsubs and a Lua
-- call per `?` cost more than the values of a many-row insert.
local COMPILED_MAX = 512

local function compile(dialect, text)
  local cache = dialect.compiled
  local found = cache and cache[text]
  if found then return found end
  local fragments, missing = dialect.fragments, nil
  local full = gsub(text, "{([%w_]+)}", function(name)
    missing = not fragments[name] and name or missing
    return fragments[name]
  end)
  if missing then return nil, missing end
  local pieces, start = {}, 1
  while true do
    local at = find(full, "?", start, true)
    pieces[#pieces + 1] = sub(full, start, (at or 0) - 1)
    if not at then break end
    start = at + 1
  end
  found = { pieces, #pieces - 1 }
  if not cache or dialect.compiled_count >= COMPILED_MAX then
    cache = {}
    dialect.compiled, dialect.compiled_count = cache, 0
  end
  cache[text] = found
  dialect.compiled_count = dialect.compiled_count + 1
  return found
end

-- The SQL text of template with its values. template: a string, or a table { "SQL",
-- column = type, … } (the types of its result columns); each `?` takes the next value (nil:
-- NULL; a table: a list for IN (…)), each {name} the dialect's fragment. A `?` or `{` in the
-- template is always a placeholder. A value that cannot be stored raises a bad argument of
-- fname (the method the user called).
local function build(self, fname, template, ...)
  local text = type(template) == "table" and template[1] or template
  if type(text) ~= "string" then argerror(1, fname, "SQL text expected") end
  local compiled, missing = compile(self._dialect, text)
  if not compiled then argerror(1, fname, "no fragment {" .. missing .. "} in SQL text") end
  local pieces, count = compiled[1], compiled[2]
  local n = select("#", ...)
  if count ~= n then argerror(1, fname, format("%d values for %d placeholders", n, count)) end
  if n == 0 then return pieces[1] end
  -- The values in a table: select(i, ...) would copy the rest of them at each step.
  local values, out = { ... }, { pieces[1] }
  for i = 1, n do
    local part, why = literal(self, values[i])
    if not part then argerror(i + 1, fname, why) end
    out[2 * i], out[2 * i + 1] = part, pieces[i + 1]
  end
  return concat(out)
end

-- Result conversions by declared type: PostgreSQL gives text, SQLite its own types.
local CONVERT = {
  integer = function(v)
    v = tonumber(v)
    return tointeger and tointeger(v) or v
  end,
  number = function(v) return tonumber(v) + 0.0 end,
  boolean = function(v) return v == true or v == 1 or v == "t" or v == "1" end,
  text = tostring,
}

local function convert(row, types)
  for k, v in pairs(row) do
    local how = types[k]
    if how then row[k] = CONVERT[how](v) end
  end
  return row
end

local function run(self, fname, template, ...)
  check_open(self, fname)
  local conn, err = connection(self)
  if not conn then return failed(self, err) end
  local sql = build(self, fname, template, ...)
  local res, msg = conn:execute(sql)
  if res == nil then return failed(self, store_error(self._target, verb(sql) .. " failed", msg)) end
  return res, sql
end

--- db:exec(template, ...) -> number of rows changed | nil, err
function DB:exec(template, ...)
  local res, err = run(self, "exec", template, ...)
  if res == nil then return nil, err end
  if type(res) ~= "number" then -- a statement with a result set
    res:close()
    return 0
  end
  return tointeger and tointeger(res) or res
end

--- db:query(template, ...) -> rows | nil, err
-- rows: a list of tables by column name (NULL: absent), converted by the template's types.
function DB:query(template, ...)
  local cur, sql = run(self, "query", template, ...)
  if cur == nil then return nil, sql end
  local rows = {}
  if type(cur) == "number" then return rows end
  local types = type(template) == "table" and template or nil
  while true do
    local row, msg = cur:fetch({}, "a")
    if not row then
      cur:close()
      if msg then return failed(self, store_error(self._target, verb(sql) .. " failed", msg)) end
      return rows
    end
    rows[#rows + 1] = types and convert(row, types) or row
  end
end

--- db:first(template, ...) -> row | false (no row) | nil, err
function DB:first(template, ...)
  local rows, err = self:query(template, ...)
  if not rows then return nil, err end
  return rows[1] or false
end

local function pack(...) return { n = select("#", ...), ... } end

--- db:transaction(fn, ...) -> fn's results | nil, err
-- Runs fn(db, ...) in one write transaction (SQLite: BEGIN IMMEDIATE). Inside it a failed
-- statement ends fn and the transaction rolls back: the result is nil, err. fn returning
-- nil, err also rolls back and returns them; an error fn raises rolls back and propagates.
-- Otherwise it commits, and fn's results are returned once the commit succeeded.
function DB:transaction(fn, ...)
  check_open(self, "transaction")
  if self._in_tx then error("thinkific.sql: transactions do not nest", 2) end
  local conn, err = connection(self)
  if not conn then return nil, err end
  local ok, msg = conn:execute(self._dialect.begin)
  if not ok then return failed(self, store_error(self._target, "BEGIN failed", msg)) end
  self._in_tx = true
  local results = pack(pcall(fn, self, ...))
  self._in_tx = false
  if results[1] and not (results[2] == nil and results[3] ~= nil) then
    ok, msg = conn:execute("COMMIT")
    if ok then return unpack(results, 2, results.n) end
    err = store_error(self._target, "COMMIT failed", msg)
  elseif results[1] then
    err = results[3]
  elseif getmetatable(results[2]) == Failure then
    err = results[2].err
  else
    conn:execute("ROLLBACK")
    error(results[2], 0)
  end
  conn:execute("ROLLBACK")
  return failed(self, err)
end

---------------------------------------------------------------------------------------------
-- Schemas: versioned, created on first use, upgraded forward only.

local SCHEMA_TABLE = [[CREATE TABLE IF NOT EXISTS thinkific_schema (
  component TEXT PRIMARY KEY, version BIGINT NOT NULL)]]
local SCHEMA_VERSION = { "SELECT version FROM thinkific_schema WHERE component = ?", version = "integer" }
local SET_VERSION = [[INSERT INTO thinkific_schema (component, version) VALUES (?, ?)
  ON CONFLICT (component) DO UPDATE SET version = excluded.version]]

--- db:migrate(component, steps) -> version | nil, err
-- steps[v]: the list of statements that take `component`'s tables from version v-1 to v (v0:
-- none). Applies the missing steps in one transaction; a store whose version is newer than
-- #steps is refused (nil, err): an older lua-thinkific never writes to a newer schema.
function DB:migrate(component, steps)
  check_open(self, "migrate")
  local want = #steps
  local row = self:first(SCHEMA_VERSION, component)
  if row and row.version == want then return want end
  return self:transaction(function(db)
    if db._dialect.lock_schema then db:exec(db._dialect.lock_schema) end
    db:exec(SCHEMA_TABLE)
    local found = db:first(SCHEMA_VERSION, component)
    local have = found and found.version or 0
    if have > want then
      return nil, store_error(db._target, format("the %s schema is version %d, newer than this "
        .. "lua-thinkific knows (%d): upgrade lua-thinkific to use this store", component, have, want))
    end
    for v = have + 1, want do
      for _, statement in ipairs(steps[v]) do db:exec(statement) end
    end
    if have ~= want then db:exec(SET_VERSION, component, want) end
    return want
  end)
end

--- db:close(): closes the connection. Idempotent; also on __gc and __close.
function DB:close()
  if self._closed then return end
  self._closed = true
  if self._conn then pcall(self._conn.close, self._conn) end
  self._conn = nil
end

DB.__gc = DB.close
DB.__close = DB.close
DB.__tostring = function(self) return "thinkific.sql (" .. self.url .. ")" end

return _M
