-- `thinkific deliver URL --topic T --payload FILE` over http, to a `thinkific listen` child
-- whose router records every delivery it verified: a bare payload is wrapped in an envelope,
-- an envelope goes as it is, both signed; refusals, unreachable servers and --timeout.
-- (https: cli_deliver_tls_spec.lua.) The command is Lua 5.4 whatever runs the specs (#lua54).
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")

local SECRET = "cli-deliver-secret-6640"

-- A server that answers the status line, then one header line every 0.1 s for 5 s: each
-- read is quick, the answer is never done in time.
local DRIP = [[
local socket = require("socket")
local server = assert(socket.bind("127.0.0.1", 0))
print((select(2, server:getsockname())))
io.stdout:flush()
server:settimeout(10)
local c = server:accept()
if c then
  c:settimeout(5)
  c:receive("*l")
  c:send("HTTP/1.1 200 OK\r\n")
  for i = 1, 50 do
    if not c:send("X-Drip: " .. i .. "\r\n") then break end
    socket.sleep(0.1)
  end
  c:close()
end
]]

describe("thinkific deliver (http) #lua54", function()
  local dir, receiver, url, record

  helper.scratch_dir(function(d) dir = d end)

  local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = SECRET, THINKIFIC_SUBDOMAIN = "acme" },
    { SECRET })

  lazy_setup(function()
    record = dir .. "/received.jsonl"
    local rules = helper.write(dir, "rules.lua", string.format([[
      local thinkific = require("thinkific")
      local router = thinkific.router{ secret = os.getenv("THINKIFIC_WEBHOOK_SECRET") }
      router:on("*", function(event, ctx)
        local f = assert(io.open(%q, "a"))
        f:write(assert(thinkific.encode({ event = event, topic = ctx.topic,
          subdomain = ctx.subdomain })), "\n")
        f:close()
      end)
      return router
    ]], record))
    receiver = helper.cli_start({ "listen", "--port", "0", rules },
      { THINKIFIC_WEBHOOK_SECRET = SECRET })
    url = assert(receiver:first_line(10))
    assert.matches("^http://127%.0%.0%.1:%d+/$", url)
  end)

  lazy_teardown(function()
    if receiver then receiver:stop() end
  end)

  local REFUSED = "POST http://127%.0%.0%.1:%d+/hooks: [^\n]*%(Connection refused%)"

  -- What the receiver's router accepted so far: a list of {event, topic, subdomain}.
  local function received()
    local list = {}
    for line in (process.read_file(record) or ""):gmatch("[^\n]+") do
      list[#list + 1] = assert(thinkific.decode(line))
    end
    return list
  end

  -- The receiver's log lines after its URL.
  local function log_lines()
    local lines = {}
    for line in (process.read_file(receiver.out) or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
    table.remove(lines, 1)
    return lines
  end

  local function wait_log(n)
    assert.is_true(helper.wait_until(function() return #log_lines() >= n end, 5),
      "the receiver logged " .. #log_lines() .. " of " .. n .. " deliveries")
    return log_lines()
  end

  it("wraps a bare payload in a signed envelope with a fresh id", function()
    local before = #received()
    local payload = helper.write(dir, "payload.json",
      '{"id": 19796, "amount_cents": 5000, "coupon": null}')
    local code, out, err = run({ "deliver", url, "--topic", "order.created", "--payload", payload })
    assert.are.equal(0, code, err)
    assert.are.equal('200\n{"status":"ok"}\n', out)
    assert.are.equal("", err)
    local got = received()
    assert.are.equal(before + 1, #got)
    local r = got[#got]
    assert.are.equal("order.created", r.topic)
    assert.are.equal("acme", r.subdomain)
    local ev = r.event
    assert.matches("^%d+$", ev.id)
    assert.are.equal(23, #ev.id)
    assert.are.equal("order", ev.resource)
    assert.are.equal("created", ev.action)
    assert.are.equal("acme", ev.tenant_id)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", ev.created_at)
    assert.are.equal(19796, ev.payload.id)
    assert.are.equal(5000, ev.payload.amount_cents)
    assert.are.equal(thinkific.null, ev.payload.coupon)
    local lines = wait_log(before + 1)
    assert.matches("^order%.created " .. ev.id .. " 200 %d+%.%d ms$", lines[#lines])

    -- Two runs, two ids.
    code = run({ "deliver", url, "--topic", "order.created", "--payload", payload })
    assert.are.equal(0, code)
    got = received()
    assert.are_not.equal(got[#got - 1].event.id, got[#got].event.id)
  end)

  it("sends an envelope as it is, and prints the answer as JSON with --json", function()
    local before = #received()
    local text = '{ "id": "20240101000000123456789", "resource": "enrollment",\n'
      .. '  "action": "created", "tenant_id": "3", "created_at": "2024-01-01T00:00:00.000Z",\n'
      .. '  "payload": { "user": { "email": "a@example.com" } } }\n'
    local envelope = helper.write(dir, "envelope.json", text)
    local code, out = run({ "deliver", url, "--topic", "enrollment.created", "--json",
      "--payload", envelope })
    assert.are.equal(0, code)
    assert.are.same({ status = 200, body = '{"status":"ok"}' }, assert(thinkific.decode(out)))
    local got = received()
    assert.are.equal(before + 1, #got)
    assert.are.same(assert(thinkific.decode(text)), got[#got].event)
    assert.are.equal("enrollment.created", got[#got].topic)
    local lines = wait_log(before + 1)
    assert.matches("^enrollment%.created 20240101000000123456789 200 ", lines[#lines])
  end)

  it("checks the topic before sending; --allow-unknown-topic sends it anyway", function()
    local before, logged = #received(), #wait_log(0)
    local payload = helper.write(dir, "payload.json", '{"id": 7}')
    local code, out, err = run({ "deliver", url, "--topic", "badge.earned", "--payload", payload })
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific deliver: unknown topic 'badge.earned' (see thinkific topics; "
      .. "--allow-unknown-topic sends it anyway)", err:match("([^\n]*)\n$"))
    assert.are.equal(logged, #log_lines())

    code, out, err = run({ "deliver", url, "--topic", "badge.earned", "--payload", payload,
      "--allow-unknown-topic" })
    assert.are.equal(0, code, err)
    assert.are.equal('200\n{"status":"ok"}\n', out)
    local got = received()
    assert.are.equal(before + 1, #got)
    assert.are.equal("badge.earned", got[#got].topic)
    assert.are.equal("badge", got[#got].event.resource)
    assert.are.equal("earned", got[#got].event.action)
    wait_log(logged + 1)
  end)

  it("exits 1 with the receiver's status and body when it refuses", function()
    local before, logged = #received(), #wait_log(0)
    local payload = helper.write(dir, "payload.json", '{"id": 1}')
    local code, out, err = run({ "deliver", url, "--topic", "order.created", "--payload", payload },
      { THINKIFIC_WEBHOOK_SECRET = "another-secret" })
    assert.are.equal(1, code)
    assert.matches("^401\n{\"error\":\"[^\n]+\"}\n$", out)
    assert.are.equal("", err)
    assert.are.equal(before, #received())
    local lines = wait_log(logged + 1)
    assert.matches("^order%.created %- 401 ", lines[#lines])
  end)

  it("exits 1 with one line when the payload is bad or nothing answers", function()
    local cases = {
      { url, helper.write(dir, "bad.json", "{not json"), "[^\n]*/bad%.json: [^\n]*%(decode%)" },
      { url, dir .. "/missing.json", "[^\n]*/missing%.json" },
      { "http://127.0.0.1:" .. helper.closed_port() .. "/hooks",
        helper.write(dir, "ok.json", "{}"), REFUSED },
      -- The query (a token, say) and any user information stay out of the message.
      { "http://user:pw@127.0.0.1:" .. helper.closed_port() .. "/hooks?token=abc",
        helper.write(dir, "ok.json", "{}"), REFUSED },
    }
    for _, case in ipairs(cases) do
      local code, out, err = run({ "deliver", case[1], "--topic", "order.created",
        "--payload", case[2] })
      assert.are.equal(1, code, case[1])
      assert.are.equal("", out)
      assert.matches("^thinkific deliver: " .. case[3] .. "[^\n]*\n$", err)
      assert.is_nil(err:find("token=abc", 1, true), err)
      assert.is_nil(err:find("pw@", 1, true), err)
    end
  end)

  it("refuses a THINKIFIC_SUBDOMAIN that would add a header (exit 2, nothing sent)", function()
    local logged = #wait_log(0)
    local payload = helper.write(dir, "ok.json", "{}")
    local code, out, err = run({ "deliver", url, "--topic", "order.created", "--payload", payload },
      { THINKIFIC_SUBDOMAIN = "acme\r\nX-Evil: 1" })
    assert.are.same({ 2, "", "thinkific deliver: THINKIFIC_SUBDOMAIN must not contain CR, LF or NUL\n" },
      { code, out, err })
    assert.are.equal(logged, #log_lines())
  end)

  it("--timeout bounds the whole request: a silent server and a slow one", function()
    local payload = helper.write(dir, "ok.json", "{}")
    local silent = assert(socket.bind("127.0.0.1", 0)) -- listens, never accepts
    local _, port = silent:getsockname()
    local t0 = socket.gettime()
    local code, out, err = run({ "deliver", "http://127.0.0.1:" .. port .. "/", "--topic",
      "order.created", "--payload", payload, "--timeout", "0.5" })
    local took = socket.gettime() - t0
    silent:close()
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific deliver: POST [^\n]*: no answer within 0%.5 s %(%-%-timeout%)\n$", err)
    -- Generous: without the deadline it would wait for the spec runner's 20 s kill.
    assert.is_true(took >= 0.5 and took < 10, "took " .. took .. " s")

    local drip = process.start("lua5.4 -e " .. process.quote(DRIP), helper.cli_env())
    local ok, why = pcall(function()
      local drip_port = assert(drip:first_line(10))
      t0 = socket.gettime()
      code, out, err = run({ "deliver", "http://127.0.0.1:" .. drip_port .. "/", "--topic",
        "order.created", "--payload", payload, "--timeout", "1" })
      took = socket.gettime() - t0
    end)
    drip:stop()
    assert(ok, why)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("no answer within 1 s %(%-%-timeout%)\n$", err)
    -- Under the 5 s the drip lasts: the deadline, not the end of the answer, stopped it.
    assert.is_true(took >= 1 and took < 4.5, "took " .. took .. " s")
  end)
end)
