-- `thinkific events get ID [ID...]` against a sandbox child process: one line per event in
-- the order asked, --json as one array with null for a failed id, exit 1 when any id fails.
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local thinkific = require("thinkific")

local API_KEY = "cli-events-api-key-3307"
local SECRET = "cli-events-secret-4418"
local MISSING = "99999999999999999999999"

describe("thinkific events #lua54", function()
  local sb
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY, secret = SECRET })

  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url,
      THINKIFIC_WEBHOOK_SECRET = SECRET }
  end, { API_KEY, SECRET })

  -- The event as the library reads it, and its line: id, resource.action, created_at.
  local function event(id)
    local c = helper.client(sb)
    local ev = assert(c:get_event(id))
    c:close()
    return ev, ev.id .. "\t" .. ev.resource .. "." .. ev.action .. "\t" .. ev.created_at .. "\n"
  end

  it("prints one line per event, in the order asked", function()
    local ids = sb.seeded_events
    assert.is_true(#ids >= 3)
    local recorded = assert(sb:record_event({ resource = "user", action = "signup",
      payload = { id = 7, email = "a@example.com" } }))
    local want = {}
    for i, id in ipairs({ ids[3], recorded, ids[1], ids[2] }) do want[i] = select(2, event(id)) end
    local code, out, err = run({ "events", "get", ids[3], recorded, ids[1], ids[2] })
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat(want), out)
    assert.matches("^" .. recorded .. "\tuser%.signup\t", want[2])
  end)

  it("exits 1 for a missing id, naming it on stderr; the others are printed", function()
    local ids = sb.seeded_events
    local code, out, err = run({ "events", "get", ids[1], MISSING, ids[2] })
    assert.are.equal(1, code)
    assert.are.equal(select(2, event(ids[1])) .. select(2, event(ids[2])), out)
    assert.are.equal("thinkific events: " .. MISSING .. ": GET /events/" .. MISSING
      .. ": Record not found. (http 404)\n", err)
  end)

  it("says what to check on a 401, and on a 404 from a base URL without /api/v2", function()
    local id = sb.seeded_events[1]
    local code, out, err = run({ "events", "get", id }, { THINKIFIC_API_KEY = "wrong-key-2231" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific events: " .. id .. ": GET /events/" .. id
      .. ": Authentication Error (http 401): check THINKIFIC_API_KEY (or THINKIFIC_ACCESS_TOKEN)\n",
      err)
    local root = sb.url:gsub("/api/v2$", "")
    code, out, err = run({ "events", "get", id }, { THINKIFIC_BASE_URL = root })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches(": GET /events/" .. id .. ": [^\n]*%(http 404%) %(is THINKIFIC_BASE_URL right%? "
      .. "it is " .. root:gsub("%p", "%%%0") .. ", without /api/v2%)\n$", err)
  end)

  it("prints one JSON array with --json, null where an id failed", function()
    local ids = sb.seeded_events
    local code, out = run({ "events", "get", "--json", ids[2], ids[1] })
    assert.are.equal(0, code)
    local list = assert(thinkific.decode(out))
    assert.are.equal(2, #list)
    assert.are.same(event(ids[2]), list[1])
    assert.are.same(event(ids[1]), list[2])

    local err
    code, out, err = run({ "events", "get", "--json", ids[1], MISSING, ids[3] })
    assert.are.equal(1, code)
    list = assert(thinkific.decode(out))
    assert.are.equal(ids[1], list[1].id)
    assert.are.equal(thinkific.null, list[2])
    assert.are.equal(ids[3], list[3].id)
    assert.matches("^thinkific events: " .. MISSING .. ": [^\n]*404[^\n]*\n$", err)

    code, out = run({ "events", "get", "--json", MISSING })
    assert.are.equal(1, code)
    assert.are.equal("[null]\n", out)
  end)

  it("reads ids from stdin for -, with at most --concurrency requests in flight", function()
    local ids = sb.seeded_events
    local list = {}
    for i = 1, 12 do list[i] = ids[(i - 1) % #ids + 1] end
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write(table.concat(list, "\n", 1, 6), "\n  ", table.concat(list, " ", 7), "\n")
    f:close()
    assert(helper.wait_idle(sb, 5))
    assert(sb:reset_stats())
    assert(sb:fault{ path = "/api/v2/events", delay_ms = 200, count = 12 })
    local code, out, err = run({ "events", "get", "--concurrency", "3", "-" }, nil, file)
    os.remove(file)
    assert.are.equal(0, code, err)
    local want = {}
    for i, id in ipairs(list) do want[i] = select(2, event(id)) end
    assert.are.equal(table.concat(want), out)
    assert.are.equal(3, assert(sb:stats()).peak_connections)
  end)
end)
