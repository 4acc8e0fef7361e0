-- The `thinkific` command line (webhooks, events, sign, verify, deliver), spawned as
-- `lua5.4 bin/thinkific …` against a sandbox child process. Every wait is bounded.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")

local SPEC_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
local REPO = SPEC_DIR .. "/.."
local API_KEY = "cli-spec-api-key-77"
local SECRET = "cli-spec-webhook-secret-88"

describe("thinkific command line", function()
  local sb, dir
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY, secret = SECRET })

  helper.scratch_dir(function(d) dir = d end)

  local function write(name, text) return helper.write(dir, name, text) end

  local LUA_PATH, LUA_CPATH = helper.lua54_paths()

  -- env: name -> value (false: unset) over the defaults. Returns status, stdout, stderr.
  local function run(args, env, stdin)
    local vars = { THINKIFIC_API_KEY = API_KEY, THINKIFIC_ACCESS_TOKEN = false,
      THINKIFIC_BASE_URL = sb.url, THINKIFIC_SUBDOMAIN = "acme",
      THINKIFIC_WEBHOOK_SECRET = SECRET, LUA_INIT = false, LUA_INIT_5_4 = false }
    for k, v in pairs(env or {}) do vars[k] = v end
    local parts = {}
    for k, v in pairs(vars) do
      if v then
        parts[#parts + 1] = "export " .. k .. "=" .. process.quote(v) .. ";"
      else
        parts[#parts + 1] = "unset " .. k .. ";"
      end
    end
    local out, err = dir .. "/out", dir .. "/err"
    local command = string.format("%s LUA_PATH_5_4=%s LUA_CPATH_5_4=%s timeout 30 lua5.4 "
      .. "%s/bin/thinkific %s <%s >%s 2>%s", table.concat(parts, " "),
      process.quote(LUA_PATH), process.quote(LUA_CPATH), process.quote(REPO), args,
      stdin and process.quote(stdin) or "/dev/null", out, err)
    local code = helper.execute(command)
    return code, process.read_file(out) or "", process.read_file(err) or ""
  end

  local function no_credential(text)
    assert.is_nil(text:find(API_KEY, 1, true))
    assert.is_nil(text:find(SECRET, 1, true))
  end

  it("creates, gets, lists, updates and deletes webhooks", function()
    local code, out, err = run("webhooks create --topic order.created --target-url "
      .. "https://example.com/a")
    assert.are.equal(0, code, err)
    local id = out:match("^(%d+)\torder%.created\thttps://example%.com/a\n$")
    assert.is_truthy(id, out)

    code, out = run("webhooks get " .. id)
    assert.are.equal(0, code)
    assert.are.equal(id .. "\torder.created\thttps://example.com/a\n", out)

    code, out = run("webhooks get " .. id .. " --json")
    assert.are.equal(0, code)
    local w = assert(thinkific.decode(out))
    assert.are.equal(id, w.id)
    assert.are.equal("order.created", w.topic)

    code, out = run("webhooks update " .. id .. " --topic user.signup --target-url "
      .. "https://example.com/b")
    assert.are.equal(0, code)
    assert.are.equal(id .. "\tuser.signup\thttps://example.com/b\n", out)

    assert.are.equal(0, (run("webhooks create --topic order.created --target-url "
      .. "https://example.com/c")))
    code, out = run("webhooks list --limit 1")
    assert.are.equal(0, code)
    assert.are.equal(2, select(2, out:gsub("\n", "")))
    code, out = run("webhooks list --json")
    assert.are.equal(0, code)
    assert.are.equal(2, #assert(thinkific.decode(out)))

    code, out = run("webhooks delete " .. id)
    assert.are.equal(0, code)
    assert.are.equal("deleted " .. id .. "\n", out)
    code, out, err = run("webhooks get " .. id)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific webhooks: [^\n]*404[^\n]*\n$", err)
    no_credential(err)
  end)

  it("exits 2 on usage errors and missing credentials, 0 for --help", function()
    for _, args in ipairs({ "webhooks", "webhooks bogus", "webhooks get",
      "webhooks list --limit 0", "webhooks create --topic x", "events", "events get",
      "verify", "deliver http://127.0.0.1:1/", "nosuch" }) do
      local code, _, err = run(args)
      assert.are.equal(2, code, args)
      assert.matches("thinkific", err)
    end
    local code, _, err = run("webhooks list", { THINKIFIC_API_KEY = false })
    assert.are.equal(2, code)
    assert.matches("THINKIFIC_API_KEY", err)
    code, _, err = run("sign", { THINKIFIC_WEBHOOK_SECRET = false })
    assert.are.equal(2, code)
    assert.matches("THINKIFIC_WEBHOOK_SECRET", err)
    for _, args in ipairs({ "webhooks --help", "webhooks list --help", "webhooks sync --help",
      "events get --help", "sign --help", "verify --help", "deliver --help" }) do
      local c, out = run(args)
      assert.are.equal(0, c, args)
      assert.matches("Usage", out)
    end
  end)

  it("exits 1 with one stderr line and no credential on an API error", function()
    local code, out, err = run("webhooks list", { THINKIFIC_API_KEY = "wrong-key-123" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific webhooks: [^\n]+\n$", err)
    assert.is_nil(err:find("wrong-key-123", 1, true))
    no_credential(err)
  end)

  it("syncs from a file: dry run, apply, then all unchanged", function()
    local file = write("desired.json", assert(thinkific.encode({
      { topic = "order.created", target_url = "https://example.com/o" },
      { topic = "user.signup", target_url = "https://example.com/u" } })))
    local code, out = run("webhooks sync " .. process.quote(file) .. " --dry-run")
    assert.are.equal(0, code)
    assert.matches("would create", out)
    assert.matches("2 created, 0 deleted, 0 unchanged", out)
    local c = helper.client(sb)
    local n = 0
    for w in c:webhooks{ limit = 250 } do n = n + (w and 1 or 0) end
    assert.are.equal(0, n)

    code, out = run("webhooks sync " .. process.quote(file))
    assert.are.equal(0, code)
    assert.matches("applied:\n", out)
    code, out = run("webhooks sync " .. process.quote(file) .. " --json")
    assert.are.equal(0, code)
    local report = assert(thinkific.decode(out))
    assert.are.equal(0, #report.result.created)
    assert.are.equal(0, #report.result.deleted)
    assert.are.equal(2, #report.result.unchanged)

    local lua_file = write("desired.lua",
      'return { { topic = "order.created", target_url = "https://example.com/o" } }')
    code, out = run("webhooks sync " .. process.quote(lua_file) .. " --prune")
    assert.are.equal(0, code)
    assert.matches("1 deleted, 1 unchanged", out)
    c:close()

    code = run("webhooks sync " .. process.quote(write("bad.json", '[{"topic": 1}]')))
    assert.are.equal(2, code)
  end)

  it("gets events; a missing id exits 1 and the others are printed", function()
    local ids = sb.seeded_events
    local code, out = run("events get " .. ids[1] .. " " .. ids[2] .. " 99999999999999999999999")
    assert.are.equal(1, code)
    assert.matches("^" .. ids[1] .. "\t[^\n]*\n" .. ids[2] .. "\t[^\n]*\n$", out)
    local _, _, err = run("events get " .. ids[1] .. " 99999999999999999999999")
    assert.matches("^thinkific events: 99999999999999999999999: [^\n]*\n$", err)
    no_credential(err)
    code, out = run("events get " .. ids[1] .. " " .. ids[3] .. " --json")
    assert.are.equal(0, code)
    local list = assert(thinkific.decode(out))
    assert.are.equal(ids[1], list[1].id)
    assert.are.equal(ids[3], list[2].id)
  end)

  it("signs like thinkific.sign and verifies with exit 0 or 1", function()
    local body = '{"id":"1","payload":{"x":1}}'
    local file = write("body.json", body)
    local want = thinkific.sign(body, SECRET)
    local code, out = run("sign " .. process.quote(file))
    assert.are.equal(0, code)
    assert.are.equal(want .. "\n", out)
    code, out = run("sign", nil, file)
    assert.are.equal(0, code)
    assert.are.equal(want .. "\n", out)
    code, out = run("sign --json " .. process.quote(file))
    assert.are.equal(0, code)
    assert.are.equal(want, assert(thinkific.decode(out)).signature)
    assert.are.equal(0, (run("verify " .. process.quote(file) .. " --signature " .. want)))
    assert.are.equal(0, (run("verify --signature " .. want:upper(), nil, file)))
    local bad = (want:sub(1, 1) == "0" and "1" or "0") .. want:sub(2)
    assert.are.equal(1, (run("verify " .. process.quote(file) .. " --signature " .. bad)))
    assert.are.equal(1, (run("verify " .. process.quote(file) .. " --signature nothex")))
  end)

  it("delivers a signed envelope to a receiver", function()
    local rules = write("rules.lua", string.format([[
      local router = require("thinkific").router{ secret = %q }
      router:on("order.created", function() end)
      return router
    ]], SECRET))
    local child = process.start(string.format("lua5.4 %s/bin/thinkific listen --port 0 %s",
      process.quote(REPO), process.quote(rules)), { LUA_PATH_5_4 = LUA_PATH,
      LUA_CPATH_5_4 = LUA_CPATH, LUA_INIT = false, LUA_INIT_5_4 = false })
    local ok, why = pcall(function()
      local url = child:first_line(10)
      assert.matches("^http://127%.0%.0%.1:%d+/$", url)
      local payload = write("payload.json", '{"id": 19796, "amount_cents": 5000}')
      local code, out, err = run("deliver " .. url .. " --topic order.created --payload "
        .. process.quote(payload))
      assert.are.equal(0, code, err)
      assert.matches("^200\n", out)
      no_credential(out .. err)
      local envelope = write("envelope.json", assert(thinkific.encode({
        id = "20180126172320940835610", resource = "order", action = "created",
        tenant_id = "3", created_at = "2024-01-01T00:00:00.000Z", payload = { id = 1 } })))
      code, out = run("deliver " .. url .. " --topic order.created --json --payload "
        .. process.quote(envelope))
      assert.are.equal(0, code)
      assert.are.equal(200, assert(thinkific.decode(out)).status)
      -- Signed with another secret: the receiver answers 401, exit 1.
      code, out = run("deliver " .. url .. " --topic order.created --payload "
        .. process.quote(envelope), { THINKIFIC_WEBHOOK_SECRET = "other" })
      assert.are.equal(1, code)
      assert.matches("^401\n", out)
      local text
      assert.is_true(helper.wait_until(function()
        text = process.read_file(child.out) or ""
        return select(2, text:gsub("\n", "")) >= 4
      end, 5))
      assert.matches("order%.created 20180126172320940835610 200", text)
      assert.matches("order%.created %d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d 200", text)
    end)
    child:stop()
    assert(ok, why)
    -- Nothing listens: exit 1, one line.
    local code, _, err = run("deliver http://127.0.0.1:1/ --topic order.created --payload "
      .. process.quote(dir .. "/payload.json"))
    assert.are.equal(1, code)
    assert.matches("^thinkific deliver: [^\n]+\n$", err)
  end)
end)
