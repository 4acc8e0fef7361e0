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
      .. "  1 to create, 0 to delete, 1 unchanged, 1 extra, 0 duplicates\n", out)
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
      .. "  2 to create, 0 to delete, 0 unchanged, 0 extra, 0 duplicates\n"
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
      .. "  0 to create, 2 to delete, 1 unchanged, 0 extra, 1 duplicates\n"
      .. "applied:\n"
      .. "  delete\t" .. fields(other) .. "\n"
      .. "  delete\t" .. fields(copy) .. "\n"
      .. "  unchanged\t" .. fields(first) .. "\n"
      .. "  0 created, 2 deleted, 1 unchanged, 0 extra, 1 duplicates\n", out)
    assert.are.same({ fields(first) }, stored())
  end)

  it("exits 2 on an invalid file, before any request, saying where and what", function()
    local allowed = "(see thinkific topics; --allow-unknown-topic sends it anyway)"
    local cases = {
      -- JSON syntax: file:line:column, from the decoder's offset (columns in characters).
      { write("bad.json", "[{\"topic\": "), ":1:12: invalid JSON: Expected value but found "
        .. "the end of the file" },
      { write("comma.json", '[\n  {"topic": "order.created",\n   "target_url": x}]'),
        ":3:18: invalid JSON: Expected value but found invalid token" },
      { write("utf8.json", '[{"target_url": "https://example.com/é", "topic": "x"},]'),
        ":1:56: invalid JSON: Expected value but found ']'" }, -- 57 in bytes
      { write("empty.json", ""), ":1:1: invalid JSON: Expected value but found the end of the file" },
      -- Shape and fields, by entry.
      { json_file("object.json", { topic = O.topic, target_url = O.target_url }),
        ": expected a JSON array of {topic, target_url}" },
      { write("empty_object.json", "{}"), ": expected a JSON array of {topic, target_url}" },
      { json_file("url.json", { O, { topic = U.topic, url = U.target_url } }),
        ": entry 2: unknown field 'url' (expected topic, target_url)" },
      { json_file("no_url.json", { { topic = O.topic } }), ": entry 1: missing field 'target_url'" },
      { json_file("number.json", { { topic = 1, target_url = O.target_url } }),
        ": entry 1: field 'topic' must be a non-empty string, got number" },
      { write("null.json", '[null]'), ": entry 1: expected {topic, target_url}, got null" },
      { write("string.json", '["order.created"]'),
        ": entry 1: expected {topic, target_url}, got 'order.created'" },
      { json_file("twice.json", { O, U, O }), ": entry 3 repeats entry 1 (order.created "
        .. "https://example.com/o)" },
      -- Topics: known ones only, unless --allow-unknown-topic; always resource.action.
      { json_file("typo.json", { O, { topic = "user.sigup", target_url = U.target_url } }),
        ": entry 2: unknown topic 'user.sigup': did you mean 'user.signup'? " .. allowed },
      { json_file("nodot.json", { { topic = "usersignup", target_url = U.target_url } }),
        ": entry 1: topic 'usersignup' is not resource.action (e.g. order.created): did you "
        .. "mean 'user.signup'?", "--allow-unknown-topic" },
      -- A Lua file runs with no globals at all: a table constructor, nothing else.
      { write("raises.lua", 'return { os.getenv("HOME") }'),
        ":1: attempt to index a nil value (global 'os')" },
      { write("syntax.lua", "return {"), ":1: unexpected symbol near <eof>" },
      { write("string.lua", 'return "x"'), ": expected the file to return a list of "
        .. "{topic, target_url}, got string" },
      { write("keys.lua", 'return { { topic = "order.created", target_url = "https://e/" }, '
        .. 'extra = true }'), ": expected a list of {topic, target_url}, found the key 'extra'" },
      { write("field.lua", 'return { { topic = "order.created", target = "https://e/" } }'),
        ": entry 1: unknown field 'target' (expected topic, target_url)" },
      { write("forever.lua", "while true do end"), ":1: too much work (over 10000000 "
        .. "instructions): return a table constructor" },
      { dir .. "/missing.json", ": No such file or directory" },
    }
    assert(sb:reset_stats())
    for _, case in ipairs(cases) do
      for _, dry in ipairs({ false, true }) do
        local argv = { "webhooks", "sync", case[1] }
        if dry then argv[#argv + 1] = "--dry-run" end
        if case[3] then argv[#argv + 1] = case[3] end
        local code, out, err = run(argv)
        assert.are.equal(2, code, case[1])
        assert.are.equal("", out, case[1])
        assert.are.equal("thinkific webhooks: " .. case[1] .. case[2], err:match("([^\n]*)\n$"))
      end
    end
    assert.are.equal(0, assert(sb:stats()).requests)
  end)

  it("sends an unknown topic with --allow-unknown-topic", function()
    local file = json_file("future.json", { { topic = "badge.earned", target_url = U.target_url } })
    local code, out, err = run({ "webhooks", "sync", file, "--dry-run", "--allow-unknown-topic" })
    assert.are.equal(0, code, err)
    assert.are.equal("plan:\n  would create\t-\tbadge.earned\t" .. U.target_url .. "\n"
      .. "  1 to create, 0 to delete, 0 unchanged, 0 extra, 0 duplicates\n", out)
    -- Sent: the sandbox knows only Thinkific's topics and refuses it (422).
    code, out, err = run({ "webhooks", "sync", file, "--allow-unknown-topic" })
    assert.are.equal(1, code)
    assert.matches("\napplied before the failure:\n  0 created, 0 deleted, ", out)
    assert.are.equal("thinkific webhooks: " .. file .. " entry 1 (badge.earned " .. U.target_url
      .. ") was not created: POST /webhooks: topic invalid format (http 422); done before it: "
      .. "0 created, 0 deleted; running sync again finishes the job\n", err)
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
    local stopped = "thinkific webhooks: webhook " .. stuck.id .. " (course.deleted "
      .. "https://example.com/stuck) was not deleted: DELETE /webhooks/" .. stuck.id
      .. ": Blocked by a sandbox fault. (http 403); done before it: 2 created, 1 deleted; "
      .. "running sync again finishes the job\n"
    assert.are.equal(stopped, err)
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

  it("says in text which entry failed, and what was done before it", function()
    -- A creation: entry 2 of the file (entry 1 is there already).
    local kept = create(O.topic, O.target_url)
    assert(sb:fault{ path = "/api/v2/webhooks", method = "POST", count = 1, status = 403,
      body = { error = "Blocked by a sandbox fault." } })
    local file = json_file("desired.json", { O, U })
    local code, out, err = run({ "webhooks", "sync", file })
    assert.are.equal(1, code)
    assert.are.equal("plan:\n"
      .. "  would create\t" .. fields(U) .. "\n"
      .. "  unchanged\t" .. fields(kept) .. "\n"
      .. "  1 to create, 0 to delete, 1 unchanged, 0 extra, 0 duplicates\n"
      .. "applied before the failure:\n"
      .. "  unchanged\t" .. fields(kept) .. "\n"
      .. "  0 created, 0 deleted, 1 unchanged, 0 extra, 0 duplicates\n", out)
    assert.are.equal("thinkific webhooks: " .. file .. " entry 2 (user.signup "
      .. "https://example.com/u) was not created: POST /webhooks: Blocked by a sandbox fault. "
      .. "(http 403); done before it: 0 created, 0 deleted; running sync again finishes the job\n",
      err)
    assert.are.same({ fields(kept) }, stored())

    -- A deletion, after a creation and a deletion.
    assert(sb:reset())
    local gone = create("course.created", "https://example.com/gone")
    local stuck = create("course.deleted", "https://example.com/stuck")
    assert(sb:fault{ path = "/api/v2/webhooks/" .. stuck.id, method = "DELETE", count = 1,
      status = 403, body = { error = "Blocked by a sandbox fault." } })
    file = json_file("desired.json", { O })
    code, out, err = run({ "webhooks", "sync", file, "--prune" })
    assert.are.equal(1, code)
    local now = stored()
    assert.are.equal(2, #now)
    assert.are.equal(fields(stuck), now[1])
    local made = now[2]
    assert.matches("^%d+\torder%.created\t", made)
    assert.are.equal("plan:\n"
      .. "  would create\t" .. fields(O) .. "\n"
      .. "  would delete\t" .. fields(gone) .. "\n"
      .. "  would delete\t" .. fields(stuck) .. "\n"
      .. "  1 to create, 2 to delete, 0 unchanged, 0 extra, 0 duplicates\n"
      .. "applied before the failure:\n"
      .. "  create\t" .. made .. "\n"
      .. "  delete\t" .. fields(gone) .. "\n"
      .. "  1 created, 1 deleted, 0 unchanged, 0 extra, 0 duplicates\n", out)
    assert.are.equal("thinkific webhooks: webhook " .. stuck.id .. " (course.deleted "
      .. "https://example.com/stuck) was not deleted: DELETE /webhooks/" .. stuck.id
      .. ": Blocked by a sandbox fault. (http 403); done before it: 1 created, 1 deleted; "
      .. "running sync again finishes the job\n", err)
  end)
end)
