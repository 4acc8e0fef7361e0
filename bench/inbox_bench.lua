-- The inbox benchmark (run by bench/run.sh; alone: `make luajit && sh scripts/run
-- bench/inbox_bench.lua`). wrk POSTs the 923-byte
-- order.created sample, every request an event of its own (bench/inbox_request.lua), with
-- 8 connections, to `thinkific listen` (no-op handlers) started afresh for each measurement:
--   intake, in turns in each round: the in-memory router; --inbox sqlite: with group commit
--   and without (--no-group-commit); the same on PostgreSQL; and, for the record, SQLite on
--   tmpfs (where a sync costs nothing: the CPU's share) and SQLite with 64 connections.
--   The listener runs with --workers 0: intake alone. Ratios against the in-memory router
--   (target: SQLite with group commit >= 0.5).
--   draining: --workers 2 under a sustained load of BENCH_DRAIN_SECONDS (60), on SQLite and on
--   PostgreSQL: the backlog (pending + running + retrying) when the load ends, in seconds of
--   intake (target <= 1), and how long the workers then take to empty it.
-- Before and after the rounds it prints the disk's sync time (dd oflag=dsync in the store's
-- directory): a group waits for one sync, so it bounds intake with 8 connections.
-- PostgreSQL: a server of its own in a temporary directory on a free port (as root, run as the
-- postgres user), trust on loopback, stopped at the end; without PostgreSQL's binaries its rows
-- are skipped with a note. Timing is never asserted. Environment: BENCH_INBOX_ROUNDS (5),
-- BENCH_INBOX_SECONDS (3, each measurement), BENCH_DRAIN_SECONDS (60; 0: no draining),
-- BENCH_INBOX_ONLY (a comma list of the rows to measure, e.g. "memory,sqlite,pg"; default all),
-- LUA (lua5.4).
local process = require("thinkific.sandbox.process")
local socket = require("socket")
local thinkific = require("thinkific")

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
local stats = dofile(ROOT .. "/bench/stats.lua")
local quote = process.quote

local ROUNDS = tonumber(os.getenv("BENCH_INBOX_ROUNDS") or "5")
local SECONDS = tonumber(os.getenv("BENCH_INBOX_SECONDS") or "3")
local DRAIN_SECONDS = tonumber(os.getenv("BENCH_DRAIN_SECONDS") or "60")
local LUA = os.getenv("LUA") or "lua5.4"
local ONLY = os.getenv("BENCH_INBOX_ONLY")
local SECRET = "bench-secret"

local function sh(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local out = pipe:read("a")
  local ok = pipe:close()
  return out, ok
end

local function note(line)
  io.stderr:write(line, "\n")
end

-- What it needs, else a line that says why it is skipped.
if not select(2, sh("command -v wrk")) then
  print("inbox bench skipped: wrk is not installed (sh scripts/deps bench)")
  os.exit(0)
end
if not io.open(ROOT .. "/build/luajit/thinkific/core.so") then
  print("inbox bench skipped: build/luajit is missing (make luajit): wrk's script signs with it")
  os.exit(0)
end

local TMP = sh("mktemp -d \"${TMPDIR:-/tmp}/thinkific-inbox-bench.XXXXXX\""):match("^(%S+)")
local RULES = TMP .. "/rules.lua"
do
  local f = assert(io.open(RULES, "w"))
  f:write("local router = require('thinkific').router{ secret = '", SECRET, "' }\n",
    "router:on('*', function() end)\nreturn router\n")
  f:close()
end

---------------------------------------------------------------------------------------------
-- PostgreSQL, as the specs start it (spec/helper.lua), with trust on loopback.

local pg = {}

function pg.start()
  local bin = sh("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1"):match("^(%S+)")
  if not bin then return nil, "PostgreSQL's server is not installed (Debian: postgresql)" end
  local as_postgres = sh("id -u") == "0\n"
  local function run(line) return as_postgres and ("runuser -u postgres -- " .. line) or line end
  -- (A directory of its own: the postgres user cannot enter TMP, mode 700.)
  pg.dir = sh("mktemp -d \"${TMPDIR:-/tmp}/thinkific-inbox-pg.XXXXXX\""):match("^(%S+)")
  pg.bin, pg.run = bin, run
  local s = assert(socket.bind("127.0.0.1", 0))
  pg.port = select(2, s:getsockname())
  s:close()
  if as_postgres then os.execute("chown postgres " .. quote(pg.dir)) end
  local out, ok = sh(run(string.format("%s/initdb -D %s -U bench -A trust -E UTF8 --locale=C -N",
    bin, quote(pg.dir .. "/data"))))
  if not ok then return nil, "initdb failed: " .. out:sub(-300) end
  out, ok = sh(run(string.format("%s/pg_ctl -D %s -l %s -o %s -w -t 60 start", bin,
    quote(pg.dir .. "/data"), quote(pg.dir .. "/server.log"),
    quote(string.format("-k %s -p %d -c listen_addresses=127.0.0.1", pg.dir, pg.port)))))
  if not ok then return nil, "PostgreSQL did not start: " .. out:sub(-300) end
  pg.up = true
  return true
end

function pg.url()
  return string.format("postgres://bench@127.0.0.1:%d/postgres", pg.port)
end

-- The URL of an empty database.
function pg.fresh()
  local db = assert(require("thinkific.sql").open(pg.url()))
  assert(db:exec("DROP SCHEMA public CASCADE"))
  assert(db:exec("CREATE SCHEMA public"))
  db:close()
  return pg.url()
end

function pg.stop()
  if pg.up then
    pg.up = false
    sh(pg.run(string.format("%s/pg_ctl -D %s -m fast -w -t 30 stop", pg.bin, quote(pg.dir .. "/data"))))
  end
  if pg.dir then os.execute("rm -rf " .. quote(pg.dir)) end
end

---------------------------------------------------------------------------------------------
-- Measurements.

local runs = 0   -- every wrk run gets ids of its own
local stores = 0 -- and every SQLite measurement a file of its own

local function sqlite_fresh(dir)
  return function()
    stores = stores + 1
    return "sqlite:" .. dir .. "/inbox" .. stores .. ".db"
  end
end

local SHM = "/dev/shm"
local shm_dir
do
  local probe = io.open(SHM .. "/.thinkific-bench", "w")
  if probe then
    probe:close()
    os.remove(SHM .. "/.thinkific-bench")
    shm_dir = sh("mktemp -d " .. SHM .. "/thinkific-inbox-bench.XXXXXX"):match("^(%S+)")
  end
end

-- Starts `thinkific listen` with argv after the rules, the store (if any) in its environment.
-- Returns the process and its URL.
local function start_listener(args, store)
  local argv = { quote(LUA), quote(ROOT .. "/bin/thinkific"), "listen", quote(RULES), "--port", "0" }
  for _, a in ipairs(args) do argv[#argv + 1] = quote(a) end
  local child = process.start(table.concat(argv, " "), {
    THINKIFIC_INBOX = store or false, LUA_INIT = false, LUA_INIT_5_4 = false,
  })
  local url, why = child:first_line(30)
  if not url or not url:find("^http://") then
    local err = child:stderr()
    child:stop(1)
    error("thinkific listen did not start (" .. tostring(why) .. "): " .. err, 0)
  end
  return child, url
end

-- One wrk run against url: requests/s.
local function wrk(url, connections, seconds)
  runs = runs + 1
  local out = sh(string.format("BENCH_LUAJIT_CPATH=%s BENCH_BODY=%s BENCH_SECRET=%s BENCH_RUN=%d "
    .. "wrk -t1 -c%d -d%ds -s %s %s", quote(ROOT .. "/build/luajit/?.so"),
    quote(ROOT .. "/spec/fixtures/payloads/order.created.json"), SECRET, 10 + runs, connections,
    seconds, quote(ROOT .. "/bench/inbox_request.lua"), quote(url)))
  local bad = out:match("Non%-2xx or 3xx responses: (%d+)")
  if bad then note("inbox bench: " .. bad .. " answers that were not 2xx (" .. url .. ")") end
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  if not rps then error("wrk failed: " .. out, 0) end
  return rps
end

-- Intake of one configuration: requests/s.
local function intake(cfg)
  local child, url = start_listener(cfg.args, cfg.store and cfg.store())
  local ok, rps = pcall(wrk, url, cfg.connections or 8, SECONDS)
  child:stop(2)
  if not ok then error(rps, 0) end
  return rps
end

-- Draining on one store: listen --workers 2 under load for DRAIN_SECONDS. Returns the intake
-- rate, the backlog when the load ended, and the seconds the workers then took to empty it.
local function drain(store)
  local child, url = start_listener({ "--workers", "2" }, store)
  local ok, result = pcall(function()
    local rps = wrk(url, 8, DRAIN_SECONDS)
    local inbox = assert(thinkific.inbox{ store = store,
      router = thinkific.router{ secret = SECRET } })
    local function backlog()
      local s = assert(inbox:stats())
      return s.pending + s.running + s.retrying
    end
    local at_end, t0 = backlog(), socket.gettime()
    local left = at_end
    while left > 0 and socket.gettime() - t0 < 120 do
      socket.sleep(0.1)
      left = backlog()
    end
    local emptied = left == 0 and socket.gettime() - t0 or nil
    inbox:close()
    return { rps = rps, backlog = at_end, emptied = emptied }
  end)
  child:stop(5)
  if not ok then error(result, 0) end
  return result
end

-- Milliseconds one synced 4 KB write takes in dir (dd oflag=dsync, 200 writes), or nil: the
-- disk's sync time, which bounds group commit (a group waits for one sync) and varies on a
-- shared machine.
local function sync_ms(dir)
  local probe = dir .. "/sync-probe"
  local out = sh(string.format("dd if=/dev/zero of=%s bs=4096 count=200 oflag=dsync", quote(probe)))
  os.remove(probe)
  local seconds = tonumber(out:match("copied, ([%d.]+) s"))
  return seconds and seconds * 1000 / 200
end

local function print_sync(when, ms)
  if not ms then return print("disk sync time (" .. when .. "): dd oflag=dsync did not run") end
  print(string.format("disk sync time (%s): %.2f ms per synced 4 KB write (dd oflag=dsync): "
    .. "8 connections, one group per sync, cannot pass %.0f deliveries/s", when, ms, 8000 / ms))
end

---------------------------------------------------------------------------------------------

local function main()
  local pg_ok, pg_why = pg.start()
  local configs = {
    { key = "memory", label = "listen, in-memory router", args = {} },
    { key = "sqlite", label = "listen --inbox sqlite:", args = { "--workers", "0" },
      store = sqlite_fresh(TMP) },
    { key = "sqlite1", label = "  without group commit", args = { "--workers", "0", "--no-group-commit" },
      store = sqlite_fresh(TMP) },
  }
  if pg_ok then
    configs[#configs + 1] = { key = "pg", label = "listen --inbox postgres://", args = { "--workers", "0" },
      store = pg.fresh }
    configs[#configs + 1] = { key = "pg1", label = "  without group commit",
      args = { "--workers", "0", "--no-group-commit" }, store = pg.fresh }
  end
  configs[#configs + 1] = { key = "sqlite64", label = "sqlite:, 64 connections", args = { "--workers", "0" },
    store = sqlite_fresh(TMP), connections = 64 }
  if shm_dir then
    configs[#configs + 1] = { key = "shm", label = "sqlite: on tmpfs (no disk sync)",
      args = { "--workers", "0" }, store = sqlite_fresh(shm_dir) }
  end

  if ONLY and ONLY ~= "" then -- the rows asked for (the in-memory router always: the ratios' base)
    local kept = {}
    for _, cfg in ipairs(configs) do
      if cfg.key == "memory" or (("," .. ONLY .. ","):find("," .. cfg.key .. ",", 1, true)) then
        kept[#kept + 1] = cfg
      end
    end
    configs = kept
  end
  local sync_before = sync_ms(TMP)
  local values = {}
  for _, cfg in ipairs(configs) do values[cfg.key] = {} end
  for r = 1, ROUNDS do
    local line = {}
    for _, cfg in ipairs(configs) do
      local rps = intake(cfg)
      table.insert(values[cfg.key], rps)
      line[#line + 1] = string.format("%s %.0f/s", cfg.key, rps)
    end
    note(string.format("inbox round %d/%d: %s", r, ROUNDS, table.concat(line, ", ")))
  end

  print_sync("before the rounds", sync_before)
  print_sync("after them", sync_ms(TMP))
  print(string.format("%-40s %10s %10s %10s  %s", "intake (wrk -t1 -c8, 923-byte events)", "median",
    "min", "max", "unit"))
  local medians = {}
  for _, cfg in ipairs(configs) do
    local med, lo, hi = stats.summary(values[cfg.key])
    medians[cfg.key] = med
    print(string.format("%-40s %10.0f %10.0f %10.0f  requests/s", cfg.label, med, lo, hi))
  end
  print()
  print(string.format("%-40s %8s %10s  %-9s  %s", "ratio to the in-memory router", "median",
    "of medians", "rounds", "target"))
  local function ratio(key, label, target)
    if not values[key] then return end
    local value, lo, hi = stats.summary(stats.ratios(values[key], values.memory))
    local verdict = target and string.format(">= %.2f: target %s", target,
      value >= target and "met" or "missed") or ""
    print(string.format("%-40s %8.2f %10.2f  %.2f-%.2f  %s", label, value,
      medians[key] / medians.memory, lo, hi, verdict))
  end
  ratio("sqlite", "sqlite: with group commit", 0.5)
  ratio("sqlite1", "sqlite: without group commit")
  ratio("pg", "postgres: with group commit")
  ratio("pg1", "postgres: without group commit")
  ratio("sqlite64", "sqlite:, 64 connections")
  ratio("shm", "sqlite: on tmpfs")
  if values.sqlite and values.sqlite1 then
    print(string.format("%-40s %8.2f", "sqlite: group commit / one per event",
      (stats.summary(stats.ratios(values.sqlite, values.sqlite1)))))
  end
  if not pg_ok then print("postgres rows skipped: " .. pg_why) end

  if DRAIN_SECONDS <= 0 then return end
  print()
  print(string.format("draining: listen --workers 2 under wrk -c8 for %d s", DRAIN_SECONDS))
  local stores_to_drain = { { "sqlite", sqlite_fresh(TMP)() } }
  if pg_ok then stores_to_drain[2] = { "postgres", pg.fresh() } end
  for _, s in ipairs(stores_to_drain) do
    local d = drain(s[2])
    local behind = d.backlog / d.rps
    print(string.format("%-9s intake %6.0f/s; backlog at the end %6d events = %5.2f s of intake "
      .. "(<= 1 s: target %s); empty %s later", s[1], d.rps, d.backlog, behind,
      behind <= 1 and "met" or "missed", d.emptied and string.format("%.1f s", d.emptied) or "not 120 s"))
  end
end

local ok, err = pcall(main)
pg.stop()
os.execute("rm -rf " .. quote(TMP) .. (shm_dir and (" " .. quote(shm_dir)) or ""))
if not ok then
  io.stderr:write("inbox bench: ", tostring(err), "\n")
  os.exit(1)
end
