-- Progress lines of the command line's long runs: shown on stderr only when it is a terminal
-- (here a pseudo-terminal from util-linux's `script`), only once a run has taken a second,
-- and never when the output itself streams to that terminal; under a rate limit, with the time
-- left at the current budget. The sandbox's delay faults, or the rate limit, make the runs long
-- enough.
local helper = require("spec.helper")
local process = require("thinkific.sandbox.process")

local API_KEY = "cli-progress-api-key-31"

describe("thinkific command line progress #lua54", function()
  local sb, dir
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY })
  helper.scratch_dir(function(d) dir = d end)

  -- Runs `thinkific <argv>` with stdin from the file `opts.stdin` (default /dev/null) and stdout
  -- to a file unless `opts.stdout_to_tty`. With `opts.tty`, stderr (and that stdout) is a
  -- pseudo-terminal whose output is returned as `screen`; opts.env: more variables. Returns
  -- status, stdout, screen or stderr.
  local function run(argv, opts)
    opts = opts or {}
    local out, err = dir .. "/out", dir .. "/err"
    local command = "timeout 60 " .. helper.cli_command(argv) .. " <"
      .. (opts.stdin and process.quote(opts.stdin) or "/dev/null")
    if not opts.stdout_to_tty then command = command .. " >" .. out end
    if opts.tty then
      command = "script -qec " .. process.quote(command) .. " /dev/null </dev/null >" .. err
    else
      command = command .. " 2>" .. err
    end
    local exports = {}
    for name, value in pairs(helper.cli_env({ THINKIFIC_API_KEY = API_KEY,
      THINKIFIC_BASE_URL = sb.url, THINKIFIC_SUBDOMAIN = "acme" }, opts.env)) do
      exports[#exports + 1] = value and ("export " .. name .. "=" .. process.quote(value) .. ";")
        or ("unset " .. name .. ";")
    end
    local code = helper.execute(table.concat(exports, " ") .. " " .. command)
    return code, process.read_file(out) or "", process.read_file(err) or ""
  end

  it("runs under a pseudo-terminal from util-linux's script", function()
    assert.are.equal(0, helper.execute("command -v script >/dev/null"),
      "`script` (Debian package bsdutils) is needed")
    local code, _, screen = run({ "webhooks", "--help" }, { tty = true, stdout_to_tty = true })
    assert.are.equal(0, code)
    assert.matches("Usage: thinkific webhooks", screen)
  end)

  it("events get: fetched/total on a terminal, nothing when stderr is a file", function()
    local few = sb.seeded_events
    local ids = {}
    for i = 1, 600 do ids[i] = few[(i - 1) % #few + 1] end
    local file = helper.write(dir, "ids", table.concat(ids, "\n") .. "\n")
    -- 600 ids, 8 at a time, 20 ms each: 1.5 s at least.
    assert(sb:fault{ path = "/api/v2/events", delay_ms = 20, count = 600 })
    local code, out, screen = run({ "events", "get", "-" }, { tty = true, stdin = file })
    assert.are.equal(0, code, screen)
    assert.are.equal(600, select(2, out:gsub("\n", "")))
    assert.matches("^\revents fetched: %d+/600", screen)
    assert.matches("\revents fetched: 600/600\r?\n$", screen)

    assert(sb:fault{ path = "/api/v2/events", delay_ms = 20, count = 600 })
    local code2, out2, err2 = run({ "events", "get", "-" }, { stdin = file })
    assert.are.equal(0, code2)
    assert.are.equal(out, out2)
    assert.are.equal("", err2)
  end)

  it("events get: a short run stays quiet on a terminal", function()
    local code, out, screen = run({ "events", "get", sb.seeded_events[1] }, { tty = true })
    assert.are.equal(0, code)
    assert.matches("^" .. sb.seeded_events[1] .. "\t", out)
    assert.are.equal("", screen)
  end)

  it("webhooks sync: changes applied/total while it applies the plan", function()
    local desired = {}
    for i = 1, 4 do
      desired[i] = string.format('{"topic": "order.created", "target_url": "https://example.com/%d"}', i)
    end
    local file = helper.write(dir, "desired.json", "[" .. table.concat(desired, ",") .. "]")
    assert(sb:fault{ path = "/api/v2/webhooks", method = "POST", delay_ms = 400, count = 4 })
    local code, out, screen = run({ "webhooks", "sync", file }, { tty = true })
    assert.are.equal(0, code, screen)
    assert.matches("plan:\n.*applied:\n.*4 created", out)
    assert.matches("\rchanges applied: 4/4\r?\n$", screen)
    assert.is_nil(screen:find("webhooks read", 1, true)) -- the listing was quick
  end)

  it("webhooks list: listed count unless its lines stream to the same terminal", function()
    local c = helper.client(sb)
    assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/1" })
    c:close()
    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", delay_ms = 1200, count = 1 })
    local code, out, screen = run({ "webhooks", "list", "--json" }, { tty = true })
    assert.are.equal(0, code, screen)
    assert.matches("^%[", out)
    assert.matches("^\rwebhooks listed: %d+\r?\n$", screen)

    assert(sb:fault{ path = "/api/v2/webhooks", method = "GET", delay_ms = 1200, count = 1 })
    local _
    code, _, screen = run({ "webhooks", "list" }, { tty = true, stdout_to_tty = true })
    assert.are.equal(0, code, screen)
    assert.matches("order%.created\thttps://example%.com/1", screen)
    assert.is_nil(screen:find("listed", 1, true))
  end)

  -- 5 requests a second (THINKIFIC_RATE_WINDOW: the window's seconds, for tests).
  local RATE = { THINKIFIC_RATE_LIMIT = "5", THINKIFIC_RATE_WINDOW = "1" }

  it("events get: the time left at the current budget, under a rate limit", function()
    local ids = {}
    for i = 1, 25 do ids[i] = sb.seeded_events[(i - 1) % #sb.seeded_events + 1] end
    local file = helper.write(dir, "ids25", table.concat(ids, "\n") .. "\n")
    -- 25 ids at 5 a second: the last goes after 4 s.
    local code, out, screen = run({ "events", "get", "-" }, { tty = true, stdin = file, env = RATE })
    assert.are.equal(0, code, screen)
    assert.are.equal(25, select(2, out:gsub("\n", "")))
    assert.matches("\revents fetched: %d+/25, about %d s left at 5 per 1 s", screen)
    assert.matches("\revents fetched: 25/25 *\r?\n$", screen)
  end)

  it("webhooks list and sync: the time left, from the pages and changes to come", function()
    local c = helper.client(sb)
    for i = 1, 6 do
      assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/" .. i })
    end
    c:close()
    -- One a second: a line shows once a run has taken a second, and then at least two
    -- requests are still to come, which take a second or more ("about", not "under a second").
    local slow = { THINKIFIC_RATE_LIMIT = "1", THINKIFIC_RATE_WINDOW = "1" }
    -- 6 pages of one: the last goes after 5 s.
    local code, _, screen = run({ "webhooks", "list", "--limit", "1" }, { tty = true, env = slow })
    assert.are.equal(0, code, screen)
    assert.matches("\rwebhooks listed: %d, about %d s left at 1 per 1 s", screen)

    local desired = {}
    for i = 1, 4 do
      desired[i] = string.format('{"topic": "lesson.completed", "target_url": "https://example.com/%d"}', i)
    end
    local file = helper.write(dir, "rate-desired.json", "[" .. table.concat(desired, ",") .. "]")
    -- The plan's page, then the page again and 4 creations: the last goes after 5 s.
    code, _, screen = run({ "webhooks", "sync", file }, { tty = true, env = slow })
    assert.are.equal(0, code, screen)
    assert.matches("\rchanges applied: %d/4, about %d s left at 1 per 1 s", screen)
  end)
end)
