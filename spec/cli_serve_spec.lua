-- The two commands that serve until stopped, as child processes: `thinkific listen` (where
-- --host and --port say, its URL first, one line per delivery) and `thinkific sandbox` (its
-- URL first, then its default credentials and the line to paste, the API with its key,
-- deliveries signed with its secret, https, --verbose); `thinkific sandbox trigger`; Ctrl-C.
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")
local fixtures = require("thinkific.sandbox.fixtures")

local API_KEY = "cli-serve-api-key-8862"
local SECRET = "cli-serve-secret-9973"

-- A free port on host (bound, read back, closed).
local function free_port(host)
  local s = assert(socket.bind(host, 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A plain HTTP request from this process: status, body. headers: more request headers.
local function request(method, url, body, more)
  local chunks = {}
  local headers = body and { ["content-type"] = "application/json",
    ["content-length"] = tostring(#body) } or {}
  for k, v in pairs(more or {}) do headers[k] = v end
  http.TIMEOUT = 5
  local ok, status = http.request{ url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
  assert(ok, status)
  return status, table.concat(chunks)
end

-- Runs fn(child, ...) with children started, and always stops them (last first).
local function with_children(starts, fn)
  local children = {}
  local ok, why = pcall(function()
    for i, start in ipairs(starts) do children[i] = helper.cli_start(start[1], start[2]) end
    fn(table.unpack(children))
  end)
  for i = #children, 1, -1 do children[i]:stop() end
  assert(ok, why)
end

local function lines_of(child, from_stderr)
  local lines = {}
  local text = process.read_file(from_stderr and child.err or child.out) or ""
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

-- Waits (at most 10 s) for n lines of output (of stderr with from_stderr); returns them.
local function wait_lines(child, n, from_stderr)
  helper.wait_until(function() return #lines_of(child, from_stderr) >= n end, 10)
  return lines_of(child, from_stderr)
end

-- Does a line of the child's output match the pattern?
local function has_line(child, pattern)
  for _, line in ipairs(lines_of(child)) do
    if line:find(pattern) then return true end
  end
  return false
end

-- What the child wrote, on stdout and stderr.
local function everything(child)
  return (process.read_file(child.out) or "") .. (process.read_file(child.err) or "")
end

-- A rules file for `thinkific listen` in dir: a router with the webhook secret of its
-- environment, and a handler for every topic.
local function rules_file(dir)
  return helper.write(dir, "rules.lua", [[
    local router = require("thinkific").router{ secret = os.getenv("THINKIFIC_WEBHOOK_SECRET") }
    router:on("*", function() end)
    return router
  ]])
end

describe("thinkific listen and thinkific sandbox #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = SECRET }, { API_KEY, SECRET })

  local function rules() return rules_file(dir) end

  it("listen: where --host and --port say, its URL first, then one line per delivery", function()
    -- 127.0.0.2 is loopback too, and not the default: the URL shows that --host was used.
    local port = free_port("127.0.0.2")
    with_children({ { { "listen", "--host", "127.0.0.2", "--port", tostring(port), rules() },
      { THINKIFIC_WEBHOOK_SECRET = SECRET } } }, function(listen)
      local url = listen:first_line(10)
      assert.are.equal("http://127.0.0.2:" .. port .. "/", url)
      local status, body = request("GET", url)
      assert.are.equal(200, status)
      assert.are.equal("thinkific listen: ready\n", body)

      local deliveries = {
        { "order.created", "20240101000000000000001", SECRET, 200 },
        { "user.signup", "20240101000000000000002", SECRET, 200 },
        { "order.created", "20240101000000000000003", "another-secret", 401 },
      }
      for i, d in ipairs(deliveries) do
        local resource, action = d[1]:match("^(.-)%.(.*)$")
        local file = helper.write(dir, "envelope" .. i .. ".json", assert(thinkific.encode({
          id = d[2], resource = resource, action = action, tenant_id = "3",
          created_at = "2024-01-01T00:00:00.000Z", payload = { id = i } })))
        local code, out = run({ "deliver", url, "--topic", d[1], "--payload", file },
          { THINKIFIC_WEBHOOK_SECRET = d[3] })
        assert.are.equal(d[4] == 200 and 0 or 1, code)
        assert.matches("^" .. d[4] .. "\n", out)
      end
      assert.is_true(helper.wait_until(function() return #lines_of(listen) >= 4 end, 5))
      local lines = lines_of(listen)
      assert.are.equal(4, #lines)
      assert.are.equal(url, lines[1])
      assert.matches("^order%.created 20240101000000000000001 200 %d+%.%d ms$", lines[2])
      assert.matches("^user%.signup 20240101000000000000002 200 %d+%.%d ms$", lines[3])
      assert.matches("^order%.created %- 401 %d+%.%d ms$", lines[4])
      assert.are.equal("", listen:stderr())
      assert.is_nil(table.concat(lines, "\n"):find(SECRET, 1, true))
    end)
  end)

  it("listen: 127.0.0.1 and a free port by default", function()
    with_children({ { { "listen", rules() }, { THINKIFIC_WEBHOOK_SECRET = SECRET } } }, function(listen)
      local url = listen:first_line(10)
      local port = tonumber(url:match("^http://127%.0%.0%.1:(%d+)/$"))
      assert.is_true(port ~= nil and port > 0, url)
      assert.are.equal(200, (request("GET", url)))
    end)
  end)

  it("sandbox: its URL first, the API with its key, deliveries signed with its secret", function()
    local port = free_port("127.0.0.1")
    with_children({
      { { "sandbox", "--host", "127.0.0.1", "--port", tostring(port), "--api-key", API_KEY,
        "--secret", SECRET } },
      { { "listen", rules() }, { THINKIFIC_WEBHOOK_SECRET = SECRET } },
    }, function(sandbox, listen)
      local url = sandbox:first_line(10)
      assert.are.equal("http://127.0.0.1:" .. port .. "/api/v2", url)
      local hooks = listen:first_line(10)
      assert.matches("^http://", hooks)

      local env = { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = url }
      local code, out = run({ "webhooks", "create", "--topic", "order.created", "--target-url",
        hooks .. "thinkific" }, env)
      assert.are.equal(0, code)
      local id = out:match("^(%d+)\t")
      code, out = run({ "webhooks", "list" }, env)
      assert.are.equal(0, code)
      assert.are.equal(id .. "\torder.created\t" .. hooks .. "thinkific\n", out)
      code = run({ "webhooks", "list" }, { THINKIFIC_API_KEY = "not-the-key",
        THINKIFIC_BASE_URL = url })
      assert.are.equal(1, code)

      -- A trigger on the control endpoint: delivered, signed with --secret, to the receiver.
      local status, body = request("POST", url:gsub("/api/v2$", "") .. "/sandbox/trigger",
        '{"topic":"order.created","payload":{"id":1}}')
      assert.are.equal(201, status)
      local event_id = assert(thinkific.decode(body)).event_id
      assert.is_true(helper.wait_until(function() return #lines_of(listen) >= 2 end, 5))
      assert.matches("^order%.created " .. event_id .. " 200 ", lines_of(listen)[2])

      -- Given credentials are never printed, and without --verbose nothing is logged.
      assert.are.same({ url, "API key: the one given (not shown)",
        "signing secret: the one given (not shown)", "export THINKIFIC_BASE_URL=" .. url },
        lines_of(sandbox))
      assert.are.equal("", sandbox:stderr())
      local seen = everything(sandbox)
      assert.is_nil(seen:find(API_KEY, 1, true))
      assert.is_nil(seen:find(SECRET, 1, true))
    end)
  end)

  it("sandbox: with its defaults, its key, its secret and the line to paste after the URL", function()
    with_children({ { { "sandbox" } } }, function(sandbox)
      local lines = wait_lines(sandbox, 4)
      local url = lines[1]
      assert.matches("^http://127%.0%.0%.1:%d+/api/v2$", url)
      assert.are.same({ url, "API key: sandbox-key (the default)",
        "signing secret: sandbox-key (the default: the API key)",
        "export THINKIFIC_BASE_URL=" .. url
          .. " THINKIFIC_API_KEY=sandbox-key THINKIFIC_WEBHOOK_SECRET=sandbox-key" }, lines)
      -- Pasted into a shell, the line gives the other commands this sandbox, its key and
      -- its secret.
      local out, status = helper.capture("unset THINKIFIC_ACCESS_TOKEN THINKIFIC_SUBDOMAIN; "
        .. lines[4] .. "; " .. helper.cli_command({ "webhooks", "list" })
        .. " >/dev/null 2>&1 && printf '{}' | " .. helper.cli_command({ "sign" }))
      assert.are.equal(0, status, out)
      assert.are.equal(thinkific.sign("{}", "sandbox-key") .. "\n", out)
    end)
  end)

  it("sandbox: a key or a secret given is never printed, nor in the line to paste", function()
    local given = "API key: the one given (not shown)"
    local cases = {
      { { "sandbox", "--api-key", API_KEY }, nil,
        { given, "signing secret: the API key given (not shown)" }, "" },
      { { "sandbox", "--secret", SECRET }, nil,
        { "API key: sandbox-key (the default)", "signing secret: the one given (not shown)" },
        " THINKIFIC_API_KEY=sandbox-key" },
      { { "sandbox" }, { THINKIFIC_SANDBOX_API_KEY = API_KEY, THINKIFIC_SANDBOX_SECRET = SECRET },
        { given, "signing secret: the one given (not shown)" }, "" },
    }
    for _, c in ipairs(cases) do
      with_children({ { c[1], c[2] } }, function(sandbox)
        local lines = wait_lines(sandbox, 4)
        assert.are.same({ lines[1], c[3][1], c[3][2], "export THINKIFIC_BASE_URL=" .. lines[1] .. c[4] },
          lines)
        assert.is_nil(everything(sandbox):find(API_KEY, 1, true))
        assert.is_nil(everything(sandbox):find(SECRET, 1, true))
      end)
    end
  end)

  it("sandbox --verbose: one line per request on stderr (method, path, status, ms), no key", function()
    with_children({ { { "sandbox", "--verbose", "--api-key", API_KEY } } }, function(sandbox)
      local url = sandbox:first_line(10)
      -- A credential put in the query is left out of the line, as is every header.
      assert.are.equal(200, (request("GET", url .. "/webhooks?limit=5&api_key=" .. API_KEY, nil,
        { authorization = "Bearer " .. API_KEY })))
      assert.are.equal(401, (request("GET", url .. "/webhooks/7", nil,
        { authorization = "Bearer not-the-key" })))
      assert.are.equal(201, (request("POST", url:gsub("/api/v2$", "") .. "/sandbox/trigger",
        '{"topic":"order.created","payload":{"id":1}}')))
      local lines = wait_lines(sandbox, 3, true)
      assert.are.equal(3, #lines, table.concat(lines, "\n"))
      assert.matches("^GET /api/v2/webhooks%?limit=5&%.%.%. 200 %d+%.%d ms$", lines[1])
      assert.matches("^GET /api/v2/webhooks/7 401 %d+%.%d ms$", lines[2])
      assert.matches("^POST /sandbox/trigger 201 %d+%.%d ms %(control%)$", lines[3])
      assert.are.equal(url, lines_of(sandbox)[1])
      assert.is_nil(everything(sandbox):find(API_KEY, 1, true))
      assert.is_nil(everything(sandbox):find("not-the-key", 1, true))
    end)
  end)

  it("sandbox --help lists trigger", function()
    local code, out = run({ "sandbox", "--help" })
    assert.are.equal(0, code)
    assert.matches("\n   trigger TOPIC %[%-%-payload FILE%] %[%-%-sandbox URL%]\n", out)
  end)

  it("sandbox: https with --tls-cert and --tls-key", function()
    local cert, key = helper.certificate(dir, "sandbox", "/CN=127.0.0.1", "IP:127.0.0.1")
    with_children({ { { "sandbox", "--tls-cert", cert, "--tls-key", key } } }, function(sandbox)
      local url = sandbox:first_line(10)
      assert.matches("^https://127%.0%.0%.1:%d+/api/v2$", url)
      local c = assert(thinkific.new{ api_key = "sandbox-key", base_url = url, ca_file = cert,
        retries = 0 })
      local page = assert(c:list_webhooks())
      assert.are.same({}, page.items)
      c:close()
    end)
  end)
end)

describe("thinkific sandbox trigger #lua54", function()
  local dir, sandbox, listen, url, root, hooks
  helper.scratch_dir(function(d) dir = d end)
  -- CURL_CA_BUNDLE is unset unless a test sets it (the shell running the specs may have it).
  local run = helper.cli({ CURL_CA_BUNDLE = false }, { API_KEY, SECRET })
  local env

  -- A sandbox, a receiver and one webhook of order.created to it, for the whole block.
  lazy_setup(function()
    sandbox = helper.cli_start({ "sandbox", "--api-key", API_KEY, "--secret", SECRET })
    listen = helper.cli_start({ "listen", rules_file(dir) }, { THINKIFIC_WEBHOOK_SECRET = SECRET })
    url = assert(sandbox:first_line(10))
    root = url:gsub("/api/v2$", "")
    hooks = assert(listen:first_line(10))
    env = { THINKIFIC_BASE_URL = url }
    local c = assert(thinkific.new{ api_key = API_KEY, base_url = url, retries = 0 })
    assert(c:create_webhook{ topic = "order.created", target_url = hooks .. "hooks" })
    c:close()
  end)
  lazy_teardown(function()
    if listen then listen:stop() end
    if sandbox then sandbox:stop() end
  end)

  -- The event's text as the sandbox serves it.
  local function event_text(id)
    local status, body = request("GET", url .. "/events/" .. id, nil,
      { authorization = "Bearer " .. API_KEY })
    assert.are.equal(200, status, body)
    return body
  end

  -- Did the receiver log the delivery of event id, answered 200 (within 10 s)?
  local function delivered(id)
    return helper.wait_until(function()
      return has_line(listen, "^order%.created " .. id .. " 200 ")
    end, 10)
  end

  local function recorded_events()
    local _, body = request("GET", root .. "/sandbox/events")
    return #assert(thinkific.decode(body)).events
  end

  it("prints the event id and its webhook count; the delivery arrives, with a sample payload", function()
    local code, out, err = run({ "sandbox", "trigger", "order.created" }, env)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    local id = out:match("^event (%d+): delivered to 1 webhook\n$")
    assert.is_truthy(id, out)
    assert.is_true(delivered(id))
    local event = assert(thinkific.decode(event_text(id)))
    assert.are.same({ "order", "created" }, { event.resource, event.action })
    assert.are.same(thinkific.decode(fixtures.sample_payload("order.created")), event.payload)
  end)

  it("takes the root or the API base URL, --sandbox first; --json prints the answer", function()
    local elsewhere = { THINKIFIC_BASE_URL = "http://127.0.0.1:" .. helper.closed_port() .. "/api/v2" }
    for _, u in ipairs({ root, root .. "/", url, url .. "/" }) do
      local code, out, err = run({ "sandbox", "trigger", "order.created", "--sandbox", u, "--json" },
        elsewhere)
      assert.are.equal(0, code, err)
      local answer = assert(thinkific.decode(out))
      assert.matches("^%d+$", answer.event_id)
      assert.are.equal(1, answer.webhooks)
      assert.is_true(delivered(answer.event_id))
    end
  end)

  it("--payload FILE: a bare payload, recorded and delivered byte for byte; - reads stdin", function()
    local payload = '{ "z": 1, "a": [], "n": 1.50, "s": "\\u00e9" }'
    local file = helper.write(dir, "bare.json", payload .. "\n")
    for _, argv in ipairs({ { "--payload", file }, { "--payload", "-" } }) do
      local code, out, err = run({ "sandbox", "trigger", "order.created", table.unpack(argv) }, env,
        file)
      assert.are.equal(0, code, err)
      local id = out:match("^event (%d+): delivered to 1 webhook\n$")
      assert.is_truthy(id, out)
      assert.is_true(delivered(id))
      assert.is_truthy(event_text(id):find('"payload":' .. payload .. "}", 1, true), event_text(id))
    end
  end)

  it("--payload FILE: a whole envelope, as it is; one of another topic is refused", function()
    local text = '{"id":"20240101000000000000077","resource":"order","action":"created",'
      .. '"payload":{"id":77,"b":[]}}'
    local file = helper.write(dir, "envelope.json", text)
    local code, out, err = run({ "sandbox", "trigger", "order.created", "--payload", file }, env)
    assert.are.equal(0, code, err)
    assert.are.equal("event 20240101000000000000077: delivered to 1 webhook\n", out)
    assert.is_true(delivered("20240101000000000000077"))
    assert.is_truthy(event_text("20240101000000000000077"):find('"payload":{"id":77,"b":[]}', 1, true))

    code, out, err = run({ "sandbox", "trigger", "user.signup", "--payload", file }, env)
    assert.are.same({ 1, "", "thinkific sandbox trigger: " .. file
      .. ": an envelope of order.created, not user.signup\n" }, { code, out, err })
  end)

  it("a topic without webhooks: delivered to 0 webhooks", function()
    local code, out = run({ "sandbox", "trigger", "user.signup" }, env)
    assert.are.equal(0, code)
    assert.matches("^event %d+: delivered to 0 webhooks\n$", out)
  end)

  it("no sandbox there: exit 1 with one line naming the URL tried", function()
    local port = helper.closed_port()
    local code, out, err = run({ "sandbox", "trigger", "order.created" },
      { THINKIFIC_BASE_URL = "http://127.0.0.1:" .. port .. "/api/v2" })
    assert.are.same({ 1, "" }, { code, out })
    assert.matches("^thinkific sandbox trigger: POST http://127%.0%.0%.1:" .. port
      .. "/sandbox/trigger: [^\n]*%(Connection refused%) %(is the sandbox running%?%)\n$", err)
    -- A server that is no sandbox (the receiver refuses an unsigned POST).
    code, out, err = run({ "sandbox", "trigger", "order.created", "--sandbox", hooks })
    assert.are.same({ 1, "" }, { code, out })
    assert.is_truthy(err:find("^thinkific sandbox trigger: POST " .. hooks:gsub("/$", "")
      .. "/sandbox/trigger: [^\n]* %(http 401%)\n$"), err)
  end)

  it("a payload file that is missing, not JSON or not an object: exit 1 with one line", function()
    local cases = {
      { dir .. "/missing.json", "No such file or directory" },
      { helper.write(dir, "broken.json", '{"id": '), "" },
      { helper.write(dir, "list.json", "[1, 2]"), "not a JSON object" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = run({ "sandbox", "trigger", "order.created", "--payload", c[1] }, env)
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^thinkific sandbox trigger: [^\n]+\n$", err)
      assert.is_truthy(err:find(c[1], 1, true) and err:find(c[2], 1, true), err)
    end
  end)

  it("usage errors: exit 2, one line after the usage, nothing sent", function()
    local before = recorded_events()
    local cases = {
      { {}, env, "missing argument 'topic'" },
      { { "order" }, env, "topic 'order' is not resource.action (e.g. order.created)" },
      { { "order.created", "user.signup" }, env, "too many arguments" },
      { { "order.created", "--nope" }, env, "unknown option '--nope'" },
      { { "order.created" }, { THINKIFIC_BASE_URL = "" }, "which sandbox? pass --sandbox URL "
        .. "or set THINKIFIC_BASE_URL (thinkific sandbox prints the line to paste)" },
      { { "order.created", "--sandbox", "ftp://127.0.0.1/" }, env,
        "--sandbox must be http:// or https://" },
      { { "order.created", "--sandbox", "http:///api/v2" }, env, "--sandbox has no host" },
      { { "order.created" }, { THINKIFIC_BASE_URL = url .. "?x=1" }, "$THINKIFIC_BASE_URL must "
        .. "have no query or fragment" },
      { { "order.created", "--timeout", "0" }, env, "--timeout must be a positive number" },
      { { "order.created", "--ca-file", "" }, env, "--ca-file must not be empty" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = run({ "sandbox", "trigger", table.unpack(c[1]) }, c[2])
      assert.are.same({ 2, "" }, { code, out })
      assert.are.equal("thinkific sandbox trigger: " .. c[3], err:match("([^\n]*)\n$"), err)
    end
    assert.are.equal(before, recorded_events())
  end)
end)

describe("thinkific sandbox trigger, https #lua54", function()
  local dir, sandbox, url, root, cert, other
  helper.scratch_dir(function(d) dir = d end)
  local run = helper.cli({ CURL_CA_BUNDLE = false })

  lazy_setup(function()
    local key
    cert, key = helper.certificate(dir, "sandbox", "/CN=127.0.0.1", "IP:127.0.0.1")
    other = helper.certificate(dir, "other", "/CN=127.0.0.1", "IP:127.0.0.1")
    sandbox = helper.cli_start({ "sandbox", "--tls-cert", cert, "--tls-key", key })
    url = assert(sandbox:first_line(10))
    root = url:gsub("/api/v2$", "")
  end)
  lazy_teardown(function()
    if sandbox then sandbox:stop() end
  end)

  it("verifies the sandbox against --ca-file, $CURL_CA_BUNDLE, $SSL_CERT_FILE, in curl's order", function()
    assert.matches("^https://", url)
    local cases = {
      { { "--ca-file", cert }, {}, true },
      { {}, { SSL_CERT_FILE = cert }, true },
      { {}, { CURL_CA_BUNDLE = cert, SSL_CERT_FILE = other }, true },
      { { "--ca-file", cert }, { CURL_CA_BUNDLE = other, SSL_CERT_FILE = other }, true },
      { { "--ca-file", other }, { CURL_CA_BUNDLE = cert }, false },
      { {}, { CURL_CA_BUNDLE = other, SSL_CERT_FILE = cert }, false },
      { {}, { SSL_CERT_FILE = other }, false },
    }
    for i, c in ipairs(cases) do
      local code, out, err = run({ "sandbox", "trigger", "order.created", "--sandbox", url,
        table.unpack(c[1]) }, c[2])
      if c[3] then
        assert.are.equal(0, code, "case " .. i .. ": " .. err)
        assert.matches("^event %d+: delivered to 0 webhooks\n$", out)
      else
        assert.are.same({ 1, "" }, { code, out }, "case " .. i)
        assert.matches("^thinkific sandbox trigger: [^\n]+\n$", err)
        assert.is_truthy(err:find("POST " .. root .. "/sandbox/trigger: SSL certificate problem: "
          .. "self-signed certificate; the CA bundle from ", 1, true), err)
      end
    end
  end)
end)

describe("Ctrl-C #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  -- Connects a client to the child's URL, lets the child idle (waiting in select), sends it
  -- SIGINT and waits for its end. Returns how it ended ("exit" or "signal"), its status, and
  -- what the client then read ("closed": the child closed its connection).
  local function interrupt(child)
    local url = assert(child:first_line(10))
    local host, port = url:match("^https?://([%d.]+):(%d+)")
    local client = assert(socket.connect(host, tonumber(port)))
    socket.sleep(0.3)
    assert.are.equal(0, helper.execute("kill -INT " .. child:getpid()))
    assert.is_true(process.wait_exit(child:getpid(), 5), "still running 5 s after SIGINT")
    client:settimeout(5)
    local _, seen = client:receive(1)
    client:close()
    local _, how, status = child.pipe:close()
    child.pipe = nil
    return how, status, seen
  end

  local starts = {
    sandbox = function() return helper.cli_start({ "sandbox" }) end,
    listen = function()
      return helper.cli_start({ "listen", rules_file(dir) }, { THINKIFIC_WEBHOOK_SECRET = SECRET })
    end,
  }
  for _, name in ipairs({ "sandbox", "listen" }) do
    it("thinkific " .. name .. ": status 130, quietly, its client's connection closed", function()
      local child = starts[name]()
      finally(function() child:stop() end)
      assert.are.same({ "exit", 130, "closed" }, { interrupt(child) })
      local err = child:stderr()
      assert.is_nil(err:find("stack traceback", 1, true), err)
      assert.is_nil(err:find("interrupted!", 1, true), err)
      assert.are.equal("", err)
    end)
  end
end)
