-- thinkific.sql, the one SQL layer: store URLs, every value into SQL and back unchanged on both
-- engines, transactions, versioned schemas, and clear errors that never show a password.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local sql = require("thinkific.sql")

local IS_ROOT = helper.capture("id -u") == "0\n"

-- Strings that SQL text has broken before: quotes, backslashes, an injection, UTF-8, every
-- ASCII character but NUL, a large value.
local STRINGS = {
  "", "'", "''", "\\", "\\'", "'\\", "a'b\\c\"d", "'; DROP TABLE t; --", "\"); DROP TABLE t; --",
  "Ünïcødé ✓ 😀 日本語", "%s %d %% ? {serial} $1 :name", "line\nbreak\r\ttab",
  (function()
    local t = {}
    for b = 1, 127 do t[#t + 1] = string.char(b) end
    return table.concat(t)
  end)(),
  string.rep("x'\\", 400000),
}

local INTEGERS = { 0, 1, -1, 2 ^ 31, -(2 ^ 31), 2 ^ 53, -(2 ^ 53) }
local FLOATS = { 0.1, 1 / 3, -2.5, 1e300, 1700000000.123456, 5e-324 }

describe("thinkific.sql", function()
  describe("store URLs", function()
    it("reads sqlite:PATH and sqlite://PATH", function()
      assert.are.equal("/var/lib/x.db", sql.parse("sqlite:/var/lib/x.db").source)
      assert.are.equal("rel/x.db", sql.parse("sqlite:rel/x.db").source)
      assert.are.equal("/abs/x.db", sql.parse("sqlite:///abs/x.db").source)
      assert.are.equal("sqlite", sql.parse("sqlite:x.db").engine)
    end)

    it("reads postgres:// URLs into libpq's quoted settings, the password hidden in the shown URL", function()
      local t = sql.parse("postgres://o%27k:p%40ss%27w%5Cd@db.example:6543/app%20db?sslmode=require")
      assert.are.equal("postgres", t.engine)
      assert.are.equal("user='o\\'k' password='p@ss\\'w\\\\d' host='db.example' port='6543' "
        .. "dbname='app db' sslmode='require' connect_timeout=10", t.source)
      assert.are.equal("postgres://o%27k:***@db.example:6543/app%20db?sslmode=require", t.shown)
      t = sql.parse("postgresql://u@[::1]/d?password=hunter22&connect_timeout=3")
      assert.are.equal("user='u' host='::1' dbname='d' password='hunter22' connect_timeout='3'", t.source)
      assert.are.equal("postgresql://u@[::1]/d?connect_timeout=3", t.shown)
    end)

    it("raises for a URL that names no store, never showing its password", function()
      for _, case in ipairs({
        { "mysql://u:hunter22@h/db", "unknown scheme 'mysql'" },
        { "http://u:hunter22@h/db", "unknown scheme 'http'" },
        { "/var/lib/x.db", "not a store URL" },
        { "sqlite:", "needs a file path" },
        { "postgres:hunter22@h/db", "postgres://user:password@host:port/db" },
        { "postgres://u:hun@ter22@h/db", "may hold one '@'" },
        { "postgres://u:hunter22@h:port/db", "host:port" },
        { "postgres://u:hunter22@h/db?oops", "name=value" },
      }) do
        local msg = helper.argerror(1, "open", function() sql.open(case[1]) end)
        assert.truthy(msg:find(case[2], 1, true), msg)
        engines.shows_none(msg, { "hunter22", "ter22" })
      end
      helper.argerror(1, "open", function() sql.open(42) end)
    end)
  end)

  describe("is_text", function()
    local VALID = { "", "plain", "é", "✓", "😀", "\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}" }
    local INVALID = { "a\0b", "\0", "\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
      "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x9c", "\x80", "ok\xc3" }

    it("takes UTF-8 without NUL and nothing else, with or without the utf8 library", function()
      for _, s in ipairs(VALID) do
        assert.is_true(sql.is_text(s), ("%q"):format(s))
        assert.is_true(sql._valid_utf8(s), ("%q"):format(s))
      end
      for _, s in ipairs(INVALID) do
        assert.is_false(sql.is_text(s), ("%q"):format(s))
        if not s:find("\0", 1, true) then assert.is_false(sql._valid_utf8(s), ("%q"):format(s)) end
      end
    end)
  end)

  engines.each(function(engine)
    local db
    before_each(function()
      db = assert(sql.open(engine.fresh()))
      assert(db:exec("CREATE TABLE t (id {serial}, s TEXT, i BIGINT, f DOUBLE PRECISION)"))
    end)
    after_each(function() db:close() end)

    local TYPES = { "SELECT s, i, f FROM t ORDER BY id", i = "integer", f = "number" }

    it("gives back every string, integer and float unchanged, with its type", function()
      for _, s in ipairs(STRINGS) do assert.are.equal(1, db:exec("INSERT INTO t (s) VALUES (?)", s)) end
      for _, i in ipairs(INTEGERS) do
        local value = math.tointeger and math.tointeger(i) or i
        assert.are.equal(1, db:exec("INSERT INTO t (i) VALUES (?)", value))
      end
      for _, f in ipairs(FLOATS) do assert.are.equal(1, db:exec("INSERT INTO t (f) VALUES (?)", f)) end
      local rows = assert(db:query(TYPES))
      assert.are.equal(#STRINGS + #INTEGERS + #FLOATS, #rows)
      for k, s in ipairs(STRINGS) do assert.are.equal(s, rows[k].s, "string " .. k) end
      for k, i in ipairs(INTEGERS) do
        local got = rows[#STRINGS + k].i
        assert.are.equal(i, got)
        assert.are.equal("integer", helper.number_type(got))
      end
      for k, f in ipairs(FLOATS) do
        local got = rows[#STRINGS + #INTEGERS + k].f
        assert.are.equal(f, got)
        if math.type then assert.are.equal("float", math.type(got)) end
      end
      assert.are.same({ n = 1 }, db:first({ "SELECT count(*) AS n FROM t WHERE s = ?", n = "integer" },
        "'; DROP TABLE t; --"))
    end)

    it("raises for a value it cannot store unchanged, and sends nothing", function()
      for _, bad in ipairs({ "a\0b", "\xff\xfe", "\xed\xa0\x80", 0 / 0, math.huge, print, {} }) do
        if type(bad) ~= "table" then
          helper.argerror(2, "exec", function() db:exec("INSERT INTO t (s) VALUES (?)", bad) end)
        end
      end
      helper.argerror(2, "query", function() db:query("SELECT s FROM t WHERE s IN (?)", { "ok", "a\0b" }) end)
      helper.argerror(1, "exec", function() db:exec("INSERT INTO t (s, i) VALUES (?, ?)", "one") end)
      helper.argerror(1, "exec", function() db:exec("INSERT INTO t (s) VALUES ({nothing})") end)
      assert.are.same({}, db:query("SELECT s FROM t"))
    end)

    it("expands a list for IN (…); an empty list matches nothing", function()
      for _, s in ipairs({ "a", "b'", "c" }) do db:exec("INSERT INTO t (s) VALUES (?)", s) end
      local rows = db:query("SELECT s FROM t WHERE s IN (?) ORDER BY s", { "b'", "c", "zz" })
      assert.are.same({ { s = "b'" }, { s = "c" } }, rows)
      assert.are.same({}, db:query("SELECT s FROM t WHERE s IN (?)", {}))
      assert.is_false(db:first("SELECT s FROM t WHERE s = ?", "none"))
    end)

    it("commits a transaction's statements together, after fn returned", function()
      local a, b = db:transaction(function(tx, x)
        tx:exec("INSERT INTO t (s) VALUES (?)", x)
        tx:exec("INSERT INTO t (s) VALUES (?)", x .. "2")
        return "done", 2
      end, "one")
      assert.are.same({ "done", 2 }, { a, b })
      assert.are.equal(2, #db:query("SELECT s FROM t"))
    end)

    it("rolls a transaction back on a failed statement, on nil, err and on an error", function()
      local rows, err = db:transaction(function(tx)
        tx:exec("INSERT INTO t (s) VALUES (?)", "kept?")
        tx:exec("INSERT INTO nowhere (s) VALUES (?)", "x")
        error("not reached")
      end)
      assert.is_nil(rows)
      assert.are.equal("store", err.kind)
      assert.truthy(err.message:find("INSERT INTO nowhere failed", 1, true), err.message)
      rows, err = db:transaction(function(tx)
        tx:exec("INSERT INTO t (s) VALUES (?)", "kept?")
        return nil, "changed my mind"
      end)
      assert.are.same({ nil, "changed my mind" }, { rows, err })
      local ok, raised = pcall(db.transaction, db, function(tx)
        tx:exec("INSERT INTO t (s) VALUES (?)", "kept?")
        error({ mine = true })
      end)
      assert.is_false(ok)
      assert.are.same({ mine = true }, raised)
      assert.are.same({}, db:query("SELECT s FROM t"))
      assert.has_error(function() db:transaction(function(tx) tx:transaction(function() end) end) end,
        "thinkific.sql: transactions do not nest")
      assert.are.equal(1, db:exec("INSERT INTO t (s) VALUES (?)", "after"))
    end)

    it("creates a schema on first use and upgrades it forward, keeping the data", function()
      local v1 = { { "CREATE TABLE toy (a TEXT)" } }
      local v2 = { v1[1], { "ALTER TABLE toy ADD COLUMN b BIGINT", "UPDATE toy SET b = 7" } }
      assert.are.equal(1, db:migrate("toy", v1))
      assert.are.equal(1, db:migrate("toy", v1)) -- nothing to do
      assert(db:exec("INSERT INTO toy (a) VALUES (?)", "old row"))
      assert.are.equal(2, db:migrate("toy", v2))
      assert.are.same({ { a = "old row", b = 7 } }, db:query({ "SELECT a, b FROM toy", b = "integer" }))
      assert.are.same({ version = 2 }, db:first({ "SELECT version FROM thinkific_schema WHERE component = ?",
        version = "integer" }, "toy"))
      assert.are.equal(1, db:migrate("other", { { "CREATE TABLE other (x TEXT)" } })) -- its own version
    end)

    it("refuses a schema newer than it knows, changing nothing", function()
      assert.are.equal(2, db:migrate("toy", { { "CREATE TABLE toy (a TEXT)" },
        { "CREATE TABLE toy2 (a TEXT)" } }))
      local n, err = db:migrate("toy", { { "CREATE TABLE toy (a TEXT)" } })
      assert.is_nil(n)
      assert.are.equal("store", err.kind)
      assert.truthy(err.message:find("the toy schema is version 2, newer than this lua-thinkific knows (1)",
        1, true), err.message)
      assert.truthy(tostring(err):find("upgrade lua-thinkific", 1, true))
      assert.are.equal(2, db:first({ "SELECT version FROM thinkific_schema WHERE component = 'toy'",
        version = "integer" }).version)
    end)

    it("names the store in errors and tostring, never the password", function()
      local n, err = db:exec("SELECT nonsense FROM nowhere")
      assert.is_nil(n)
      assert.are.equal("store", err.kind)
      assert.truthy(tostring(err):find(db.url, 1, true))
      assert.truthy(tostring(db):find(db.url, 1, true))
      engines.shows_none(tostring(err), engine.secrets)
      engines.shows_none(tostring(db), engine.secrets)
      db:close()
      db:close()
      assert.has_error(function() db:exec("SELECT 1") end)
    end)

    if engine.name == "postgres" then
      it("gives a refused password or a closed port as nil, err at open, never the password", function()
        local none, err = sql.open(engine.server():url("wr'ong\\pass"))
        assert.is_nil(none)
        assert.are.equal("store", err.kind)
        assert.truthy(err.message:find("password authentication failed", 1, true), err.message)
        engines.shows_none(tostring(err), { "wr'ong", "wr%27ong", engine.server().password })
        none, err = sql.open(("postgres://thinkific_spec:%s@127.0.0.1:%d/postgres"):format("hunter22",
          helper.closed_port()))
        assert.is_nil(none)
        assert.truthy(err.message:find("cannot open", 1, true), err.message)
        engines.shows_none(tostring(err), { "hunter22" })
      end)

      it("opens the connection again once the server is back", function()
        local server = engine.server()
        local other = assert(sql.open(server:url()))
        assert.are.equal(0, other:exec("SELECT 1"))
        server:stop()
        finally(function() server:start() end)
        local n, err = other:exec("SELECT 1")
        assert.is_nil(n)
        assert.are.equal("store", err.kind)
        n, err = other:transaction(function(tx) tx:exec("SELECT 1") end)
        assert.is_nil(n)
        assert.are.equal("store", err.kind)
        server:start()
        assert.are.equal(0, other:exec("SELECT 1"))
        other:close()
      end)
    end
  end)

  describe("a store it cannot open", function()
    local dir
    helper.scratch_dir(function(d) dir = d end)

    it("is nil, err at open: a directory missing or that cannot be written", function()
      local where = IS_ROOT and "/proc" or (dir .. "/read-only")
      if not IS_ROOT then assert(helper.execute("mkdir -m 500 '" .. where .. "'") == 0) end
      for _, url in ipairs({ "sqlite:" .. dir .. "/missing/x.db", "sqlite:" .. where .. "/x.db" }) do
        local db, err = sql.open(url)
        assert.is_nil(db)
        assert.are.equal("store", err.kind)
        assert.truthy(err.message:find(url .. ": cannot open: ", 1, true), err.message)
      end
    end)
  end)

  describe("a new SQLite store another process is writing to", function()
    local dir
    helper.scratch_dir(function(d) dir = d end)

    -- Switching a new database to WAL while another connection holds its write lock is
    -- answered "database is locked" at once, whatever busy_timeout says (two processes that
    -- open a new budget or inbox at once): open waits for the lock instead, within busy_timeout.
    it("opens once the other's transaction ends, within busy_timeout #lua54", function()
      local process = require("thinkific.sandbox.process")
      local path = dir .. "/new.db"
      local child = helper.write(dir, "hold.lua", [[
        local env = require("luasql.sqlite3").sqlite3()
        local conn = assert(env:connect(arg[1]))
        assert(conn:execute("BEGIN IMMEDIATE"))
        io.stdout:write("locked\n")
        io.stdout:flush()
        require("socket").sleep(0.3)
        assert(conn:execute("ROLLBACK"))
      ]])
      local path5, cpath5 = helper.lua54_paths()
      local holder = process.start("lua5.4 " .. process.quote(child) .. " " .. process.quote(path),
        { LUA_PATH_5_4 = path5, LUA_CPATH_5_4 = cpath5 })
      finally(function() holder:stop() end)
      assert.are.equal("locked", holder:first_line(10), holder:stderr())
      local ok, db, err = pcall(sql.open, "sqlite:" .. path, { busy_timeout = 5 })
      assert.is_true(ok, tostring(db))
      assert.is_table(db, tostring(err))
      assert(db:migrate("lock_test", { { "CREATE TABLE t (a INTEGER)" } }))
      db:close()
    end)
  end)
end)
