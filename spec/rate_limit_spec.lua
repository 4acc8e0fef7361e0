-- Several processes fetch events from one site of a sandbox that enforces a rate limit (LIMIT
-- requests per WINDOW seconds, fixed windows, 429 beyond). Sharing one budget (SQLite, or
-- PostgreSQL), they never get a 429, fetch every event, and take at least the time the limit
-- allows; each with a budget of its own, they overrun the limit together: 429s happen, and the
-- retries ride them out. Numbers scaled down: a one-second window.
local helper = require("spec.helper")
local process = require("thinkific.sandbox.process")

local WORKER = helper.repo .. "/spec/rate_worker.lua"
local LIMIT, WINDOW, EACH = 10, 1, 15

describe("a rate limit shared by several processes #lua54", function()
  local sb, dir
  helper.with_sandbox(function(s) sb = s end, { rate_limit = LIMIT, rate_window = WINDOW })
  helper.scratch_dir(function(d) dir = d end)

  -- Runs `n` workers on `store` ("-": none) and returns their "done" lines parsed, and the
  -- sandbox's 429 count. Every worker starts its get_events at the same moment.
  local function run(n, store, name)
    assert(sb:reset_stats())
    local go = dir .. "/" .. name .. ".go"
    local path, cpath = helper.lua54_paths()
    local env = { LUA_PATH_5_4 = path, LUA_CPATH_5_4 = cpath, RATE_GO = go,
      RATE_SEEDED = table.concat(sb.seeded_events, ",") }
    local workers = {}
    finally(function()
      for _, w in ipairs(workers) do w:stop() end
    end)
    for k = 1, n do
      workers[k] = process.start(table.concat({ "lua5.4", process.quote(WORKER),
        process.quote(sb.url), process.quote(sb.api_key), process.quote(store), LIMIT, WINDOW,
        EACH }, " "), env)
    end
    for _, w in ipairs(workers) do assert.are.equal("ready", w:first_line(20), w:stderr()) end
    helper.write(dir, name .. ".go", "")
    local done = {}
    for k, w in ipairs(workers) do
      assert.is_true(process.wait_exit(w:getpid(), 60), "worker " .. k .. " did not finish")
      assert.are.equal("", w:stderr())
      local out = process.read_file(w.out)
      local ok, failed, start, finish = out:match("\ndone (%d+) (%d+) ([%d.]+) ([%d.]+)\n$")
      assert(ok, "worker " .. k .. ": " .. out)
      done[k] = { ok = tonumber(ok), failed = tonumber(failed), start = tonumber(start),
        finish = tonumber(finish) }
    end
    return done, assert(sb:stats()).rate_limited
  end

  -- Every event fetched, by every worker; and the whole job's span (first start to last end).
  local function all_fetched(done)
    local first, last = math.huge, 0
    for k, d in ipairs(done) do
      assert.are.same({ EACH, 0 }, { d.ok, d.failed }, "worker " .. k)
      first, last = math.min(first, d.start), math.max(last, d.finish)
    end
    return last - first
  end

  -- The least time n requests take at LIMIT per WINDOW: the last can go only after
  -- floor((n - 1) / LIMIT) windows.
  local function ideal(n) return math.floor((n - 1) / LIMIT) * WINDOW end

  it("on SQLite: 4 processes, zero 429s, every event, never faster than the limit", function()
    local done, limited = run(4, "sqlite:" .. dir .. "/budget.db", "sqlite")
    local span = all_fetched(done)
    assert.are.equal(0, limited, "429s")
    assert.is_true(span >= ideal(4 * EACH), ("%.2f s for %d requests"):format(span, 4 * EACH))
  end)

  it("without a shared store: the 429s happen, and are ridden out", function()
    local done, limited = run(4, "-", "alone")
    all_fetched(done)
    -- Four budgets of LIMIT each offer four times what the site allows.
    assert.is_true(limited > 0, "no 429 without a shared budget")
  end)

  describe("on PostgreSQL", function()
    local pg
    helper.with_postgres(function(s) pg = s end)

    it("2 processes: zero 429s, every event, never faster than the limit", function()
      local done, limited = run(2, pg:fresh(), "postgres")
      local span = all_fetched(done)
      assert.are.equal(0, limited, "429s")
      assert.is_true(span >= ideal(2 * EACH), ("%.2f s for %d requests"):format(span, 2 * EACH))
    end)
  end)
end)
