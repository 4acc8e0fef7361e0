-- No value given to the command line can add a header or split a request line: a topic, a
-- THINKIFIC_SUBDOMAIN, a URL (deliver's, trigger's --sandbox, THINKIFIC_BASE_URL) holding CR
-- or LF is a usage error (exit 2, one line on stderr, the value shown with its control bytes
-- escaped, never a Lua traceback), and nothing of it reaches a real server: spec/tiny_server.lua
-- records every request it receives. Ids go into a path segment, percent-encoded (the sandbox).
-- The command is Lua 5.4 whatever runs the specs (#lua54).
local helper = require("spec.helper")
local tiny_server = require("spec.tiny_server")
local process = require("thinkific.sandbox.process")

local API_KEY = "cli-injection-api-key-3390"
local SECRET = "cli-injection-secret-7251"
local INJECTED = "X-Injected: yes"

describe("header injection through the command line #lua54", function()
  local dir, recorder, url, record, payload

  helper.scratch_dir(function(d) dir = d end)

  lazy_setup(function()
    record = dir .. "/requests.txt"
    recorder, url = tiny_server.start("record", record)
    payload = helper.write(dir, "payload.json", '{"id": 1}')
  end)

  lazy_teardown(function()
    if recorder then recorder:stop() end
  end)

  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_WEBHOOK_SECRET = SECRET,
      THINKIFIC_BASE_URL = url .. "/api/v2" }
  end, { API_KEY, SECRET })

  -- The requests the recorder received so far (heads and bodies, as they came).
  local function received()
    return process.read_file(record) or ""
  end

  local function requests()
    return select(2, received():gsub("\n%-%-\n", ""))
  end

  -- Runs argv (with env) and expects a usage error: exit 2, nothing on stdout, the last line
  -- of stderr `line` and no traceback, nothing sent.
  local function refused(argv, env, line)
    local before = requests()
    local code, out, err = run(argv, env)
    assert.are.same({ 2, "" }, { code, out }, err)
    assert.are.equal(line, err:match("([^\n]*)\n$"), err)
    assert.is_nil(err:find("traceback", 1, true), err)
    assert.are.equal(before, requests(), "a request was sent")
  end

  it("the recorder sees what deliver sends (the check of the checks)", function()
    local code, out, err = run({ "deliver", url .. "/hooks", "--topic", "order.created",
      "--payload", payload }, { THINKIFIC_SUBDOMAIN = "acme" })
    assert.are.equal(0, code, err)
    assert.are.equal('200\n{"status":"ok"}\n', out)
    local text = received()
    assert.truthy(text:find("X-Thinkific-Topic: order.created\r\n", 1, true), text)
    assert.truthy(text:find("X-Thinkific-Subdomain: acme\r\n", 1, true), text)
  end)

  it("deliver --topic with a newline: exit 2, the topic shown escaped", function()
    local topic = "order.created\n" .. INJECTED
    for _, extra in ipairs({ {}, { "--allow-unknown-topic" } }) do
      refused({ "deliver", url .. "/hooks", "--topic", topic, "--payload", payload,
        table.unpack(extra) }, nil, "thinkific deliver: topic 'order.created\\nX-Injected: yes' "
        .. "is not resource.action (e.g. order.created)")
    end
    refused({ "deliver", url .. "/hooks", "--topic", "order.created\r", "--payload", payload },
      nil, "thinkific deliver: topic 'order.created\\r' is not resource.action "
      .. "(e.g. order.created): did you mean 'order.created'?")
  end)

  it("deliver to a URL holding CR or LF: exit 2, not a traceback", function()
    for _, bad in ipairs({ "/hooks\r\n" .. INJECTED, "/hooks\n" .. INJECTED, "/ho\roks" }) do
      refused({ "deliver", url .. bad, "--topic", "order.created", "--payload", payload }, nil,
        "thinkific deliver: URL must not contain CR, LF or NUL")
    end
  end)

  it("THINKIFIC_SUBDOMAIN with CR or LF: deliver, webhooks and events refuse it", function()
    local env = { THINKIFIC_SUBDOMAIN = "acme\r\n" .. INJECTED }
    refused({ "deliver", url .. "/hooks", "--topic", "order.created", "--payload", payload }, env,
      "thinkific deliver: THINKIFIC_SUBDOMAIN must not contain CR, LF or NUL")
    local want = "THINKIFIC_SUBDOMAIN: 'subdomain' must not contain CR, LF or NUL"
    refused({ "webhooks", "list" }, env, "thinkific webhooks: " .. want)
    refused({ "webhooks", "create", "--topic", "order.created", "--target-url",
      "https://example.com/h" }, env, "thinkific webhooks: " .. want)
    refused({ "webhooks", "sync", "--dry-run", helper.write(dir, "sync.json", "[]") }, env,
      "thinkific webhooks: " .. want)
    refused({ "events", "get", "1" }, env, "thinkific events: " .. want)
    refused({ "events", "get", "1" }, { THINKIFIC_SUBDOMAIN = "acme\n" },
      "thinkific events: " .. want)
  end)

  it("THINKIFIC_BASE_URL with CR or LF: the API commands and sandbox trigger refuse it", function()
    local env = { THINKIFIC_BASE_URL = url .. "/api/v2\r\n" .. INJECTED }
    refused({ "webhooks", "list" }, env,
      "thinkific webhooks: THINKIFIC_BASE_URL: 'base_url' must not contain CR, LF or NUL")
    refused({ "events", "get", "1" }, env,
      "thinkific events: THINKIFIC_BASE_URL: 'base_url' must not contain CR, LF or NUL")
    refused({ "sandbox", "trigger", "order.created" }, env,
      "thinkific sandbox trigger: $THINKIFIC_BASE_URL must not contain CR, LF or NUL")
  end)

  it("sandbox trigger: a --sandbox URL or a topic with a newline", function()
    refused({ "sandbox", "trigger", "order.created", "--sandbox", url .. "\r\n" .. INJECTED }, nil,
      "thinkific sandbox trigger: --sandbox must not contain CR, LF or NUL")
    refused({ "sandbox", "trigger", "order.created\n" .. INJECTED, "--sandbox", url }, nil,
      "thinkific sandbox trigger: topic 'order.created\\nX-Injected: yes' is not "
      .. "resource.action (e.g. order.created)")
  end)

  it("the sandbox's --subdomain, sent with its deliveries, is letters, digits and hyphens", function()
    refused({ "sandbox", "--subdomain", "acme\r\n" .. INJECTED }, nil,
      "thinkific sandbox: --subdomain must be letters, digits and hyphens")
  end)

  it("an unknown command or action with a newline is shown escaped", function()
    refused({ "webhook\n" .. INJECTED }, nil, "thinkific: unknown command "
      .. "'webhook\\nX-Injected: yes' (see thinkific --help)")
    refused({ "webhooks", "lis\nt" }, nil,
      "thinkific webhooks: unknown action 'lis\\nt': did you mean 'list'?")
    refused({ "events", "ge\rt" }, nil, "thinkific events: unknown action 'ge\\rt'")
  end)

  it("no injected header ever reached the server", function()
    local text = received()
    assert.are.equal(1, requests(), text)
    assert.is_nil(text:find("X-Injected", 1, true), text)
  end)

  describe("against a sandbox", function()
    local sb
    helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY })

    it("an event id with a newline stays in its path segment and is shown escaped", function()
      local code, out, err = run({ "events", "get", "1\n" .. INJECTED },
        { THINKIFIC_BASE_URL = sb.url })
      assert.are.same({ 1, "" }, { code, out })
      assert.are.equal("thinkific events: 1\\nX-Injected: yes: GET /events/1%0AX-Injected%3A%20yes: "
        .. "Record not found. (http 404)\n", err)
    end)
  end)
end)
