-- `thinkific webhooks sync FILE [--dry-run] [--prune] [--json]` against a sandbox child
-- process: the plan, applying it, pruning, JSON and Lua files, invalid files (exit 2, no
-- request), and a failure half-way (a sandbox fault) that a second run finishes.
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local thinkific = require("thinkific")

local API_KEY = "cli-sync-api-key-1186"
local SECRET = "cli-sync-secret-2297"

describe("thinkific webhooks sync #lua54", function()
  local sb, dir
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY, secret = SECRET })
  helper.scratch_dir(function(d) dir = d end)

  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url,
      THINKIFIC_WEBHOOK_SECRET = SECRET }
  end, { API_KEY, SECRET })

  local function write(name, text) return helper.write(dir, name, text) end

  local function json_file(name, list) return write(name, assert(thinkific.encode(list))) end

  local function fields(w) return (w.id or "-") .. "\t" .. w.topic .. "\t" .. w.target_url end

  local function create(topic, target_url) return helper.create_webhook(sb, topic, target_url) end

  -- The sandbox's webhooks as "id\ttopic\turl" strings, in listing order.
  local function stored()
    local c = helper.client(sb)
    local all = {}
    for w, err in c:webhooks{ limit = 250 } do all[#all + 1] = fields(assert(w, err)) end
    c:close()
    return all
  end

  local O = { topic = "order.created", target_url = "https://example.com/o" }
  local U = { topic = "user.signup", target_url = "https://example.com/u" }

  it("prints the plan with --dry-run and changes nothing", function()
    local kept = create(O.topic, O.target_url)
    local extra = create("course.created", "https://example.com/x")
    local file = json_file("desired.json", { O, U })
    local code, out = run({ "webhooks", "sync", file, "--dry-run" })
    assert.are.equal(0, code)
    assert.are.equal("plan:\n"
      .. "  would create\t" .. fields(U) .. "\n"
      .. "  unchanged\t" .. fields(kept) .. "\n"
      .. "  extra\t" .. fields(extra) .. "\n"
      .. "  1 created, 0 deleted, 1 unchanged, 1 extra, 0 duplicates\n", out)
    assert.are.same({ fields(kept), fields(extra) }, stored())

    code, out = run({ "webhooks", "sync", file, "--dry-run", "--json" })
    assert.are.equal(0, code)
    local report = assert(thinkific.decode(out))
    assert.is_nil(report.result)
    assert.are.equal(1, #report.plan.created)
    assert.are.equal(U.topic, report.plan.created[1].topic)
    assert.is_nil(report.plan.created[1].id)
    assert.are.equal(kept.id, report.plan.unchanged[1].id)
    assert.are.equal(extra.id, report.plan.extra[1].id)
    assert.are.same({}, report.plan.deleted)
    assert.are.same({ fields(kept), fields(extra) }, stored())
  end)

  it("applies the plan; a second run changes nothing", function()
    local file = json_file("desired.json", { O, U })
    local code, out = run({ "webhooks", "sync", file })
    assert.are.equal(0, code)
    local now = stored()
    assert.are.equal(2, #now)
    assert.are.equal("plan:\n"
      .. "  would create\t" .. fields(O) .. "\n"
      .. "  would create\t" .. fields(U) .. "\n"
      .. "  2 created, 0 deleted, 0 unchanged, 0 extra, 0 duplicates\n"
      .. "applied:\n"
      .. "  create\t" .. now[1] .. "\n"
      .. "  create\t" .. now[2] .. "\n"
      .. "  2 created, 0 deleted, 0 unchanged, 0 extra, 0 duplicates\n", out)
    assert.matches("^%d+\torder%.created\t", now[1])

    code, out = run({ "webhooks", "sync", file, "--json" })
    assert.are.equal(0, code)
    local report = assert(thinkific.decode(out))
    assert.are.same({}, report.result.created)
    assert.are.same({}, report.result.deleted)
    assert.are.equal(2, #report.result.unchanged)
    assert.are.same(now, stored())
  end)

  it("prunes what a Lua file does not list, and duplicates", function()
    local first = create(O.topic, O.target_url)
    local other = create("course.created", "https://example.com/x")
    local copy = create(O.topic, O.target_url)
    local file = write("desired.lua", string.format(
      "return { { topic = %q, target_url = %q } }", O.topic, O.target_url))
    local code, out = run({ "webhooks", "sync", file, "--prune" })
    assert.are.equal(0, code)
    assert.are.equal("plan:\n"
      .. "  would delete\t" .. fields(other) .. "\n"
      .. "  would delete\t" .. fields(copy) .. "\n"
      .. "  unchanged\t" .. fields(first) .. "\n"
      .. "  0 created, 2 deleted, 1 unchanged, 0 extra, 1 duplicates\n"
      .. "applied:\n"
      .. "  delete\t" .. fields(other) .. "\n"
      .. "  delete\t" .. fields(copy) .. "\n"
      .. "  unchanged\t" .. fields(first) .. "\n"
      .. "  0 created, 2 deleted, 1 unchanged, 0 extra, 1 duplicates\n", out)
    assert.are.same({ fields(first) }, stored())
  end)

  it("exits 2 on an invalid file, before any request", function()
    local cases = {
      { write("bad.json", "[{\"topic\": "), "bad.json" },
      { json_file("object.json", { topic = O.topic, target_url = O.target_url }), "object.json" },
      { json_file("no_url.json", { { topic = O.topic } }), "target_url" },
      { json_file("number.json", { { topic = 1, target_url = O.target_url } }), "topic" },
      { json_file("twice.json", { O, O }), "repeats" },
      { json_file("unknown.json", { { topic = O.topic, target_url = O.target_url, x = 1 } }),
        "unknown field" },
      -- A Lua file runs with no globals at all: a table constructor, nothing else.
      { write("raises.lua", 'return { os.getenv("HOME") }'), "raises.lua:1:" },
      { write("syntax.lua", "return {"), "syntax.lua" },
      { write("string.lua", 'return "x"'), "not a list" },
      { dir .. "/missing.json", "missing.json" },
    }
    assert(sb:reset_stats())
    for _, case in ipairs(cases) do
      local code, out, err = run({ "webhooks", "sync", case[1] })
      assert.are.equal(2, code, case[1])
      assert.are.equal("", out, case[1])
      local last = err:match("([^\n]*)\n$")
      assert.matches("^thinkific webhooks: ", last, nil, case[1])
      assert.is_truthy(last:find(case[2], 1, true), case[1] .. ": " .. err)
    end
    assert.are.equal(0, assert(sb:stats()).requests)
  end)

  it("exits 1 on a failure half-way; a second run finishes the job", function()
    local gone = create("course.created", "https://example.com/gone")
    local stuck = create("course.deleted", "https://example.com/stuck")
    -- The second deletion fails once (403 is never retried): creations and the first
    -- deletion are done by then.
    assert(sb:fault{ path = "/api/v2/webhooks/" .. stuck.id, method = "DELETE", count = 1,
      status = 403, body = { error = "Blocked by a sandbox fault." } })
    local file = json_file("desired.json", { O, U })
    local code, out, err = run({ "webhooks", "sync", file, "--prune", "--json" })
    assert.are.equal(1, code)
    assert.are.equal("thinkific webhooks: DELETE /webhooks/" .. stuck.id
      .. ": Blocked by a sandbox fault. (http 403)\n", err)
    local report = assert(thinkific.decode(out))
    assert.are.equal(2, #report.plan.created)
    assert.are.equal(2, #report.plan.deleted)
    assert.are.equal(2, #report.result.created)
    assert.are.same({ gone.id }, { report.result.deleted[1].id })
    assert.are.equal(1, #report.result.deleted)
    local now = stored()
    assert.are.equal(3, #now)
    assert.are.equal(fields(stuck), now[1])

    code, out = run({ "webhooks", "sync", file, "--prune" })
    assert.are.equal(0, code)
    assert.matches("\napplied:\n  delete\t" .. fields(stuck):gsub("%p", "%%%0") .. "\n", out)
    assert.matches("\n  0 created, 1 deleted, 2 unchanged, 0 extra, 0 duplicates\n$", out)
    now = stored()
    assert.are.equal(2, #now)
    assert.matches("^%d+\torder%.created\thttps://example%.com/o$", now[1])
    assert.matches("^%d+\tuser%.signup\thttps://example%.com/u$", now[2])
  end)
end)
