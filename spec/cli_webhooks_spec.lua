-- `thinkific webhooks list|create|get|update|delete` against a sandbox child process: the
-- text and --json outputs, every page of a list, API failures (exit 1, one line on stderr).
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local thinkific = require("thinkific")

local API_KEY = "cli-webhooks-api-key-5821"
local SECRET = "cli-webhooks-secret-9034"

describe("thinkific webhooks #lua54", function()
  local sb
  helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY, secret = SECRET })

  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url,
      THINKIFIC_SUBDOMAIN = "acme", THINKIFIC_WEBHOOK_SECRET = SECRET }
  end, { API_KEY, SECRET })

  local function line(w) return w.id .. "\t" .. w.topic .. "\t" .. w.target_url .. "\n" end

  -- The sandbox's webhooks, read with the library.
  local function stored()
    local c = helper.client(sb)
    local all = {}
    for w, err in c:webhooks{ limit = 250 } do all[#all + 1] = assert(w, err) end
    c:close()
    return all
  end

  local function create(topic, target_url) return helper.create_webhook(sb, topic, target_url) end

  it("lists every page with --limit, in order, as text and as JSON", function()
    -- None: stdout stays empty for scripts, stderr says so; JSON is [].
    local code, out, err = run({ "webhooks", "list" })
    assert.are.equal(0, code)
    assert.are.equal("", out)
    assert.are.equal("no webhooks\n", err)
    code, out, err = run({ "webhooks", "list", "--json" })
    assert.are.equal(0, code)
    assert.are.equal("[]\n", out)
    assert.are.equal("", err)

    local want = {}
    for i = 1, 5 do
      want[i] = create(i % 2 == 0 and "user.signup" or "order.created",
        "https://example.com/hook/" .. i)
    end
    local expected = {}
    for i, w in ipairs(want) do expected[i] = line(w) end

    assert(sb:reset_stats())
    code, out, err = run({ "webhooks", "list", "--limit", "2" })
    assert.are.equal(0, code)
    assert.are.equal(table.concat(expected), out)
    assert.are.equal("", err)
    assert.are.equal(3, assert(sb:stats()).requests) -- pages of 2, 2 and 1

    assert(sb:reset_stats())
    code, out = run({ "webhooks", "list", "--limit", "2", "--json" })
    assert.are.equal(0, code)
    local list = assert(thinkific.decode(out))
    assert.are.equal(5, #list)
    for i, w in ipairs(want) do
      assert.are.equal(w.id, list[i].id)
      assert.are.equal(w.topic, list[i].topic)
      assert.are.equal(w.target_url, list[i].target_url)
    end
    assert.are.equal(3, assert(sb:stats()).requests)

    assert(sb:reset_stats())
    code, out = run({ "webhooks", "list" })
    assert.are.equal(0, code)
    assert.are.equal(table.concat(expected), out)
    assert.are.equal(1, assert(sb:stats()).requests) -- the default page size: 250
  end)

  it("creates, gets and updates a webhook, as text and as JSON", function()
    local code, out = run({ "webhooks", "create", "--topic", "order.created",
      "--target-url", "https://example.com/a" })
    assert.are.equal(0, code)
    local id = out:match("^(%d+)\torder%.created\thttps://example%.com/a\n$")
    assert.is_truthy(id, out)
    local all = stored()
    assert.are.equal(1, #all)
    assert.are.equal(id, all[1].id)

    code, out = run({ "webhooks", "create", "--json", "--topic", "user.signup",
      "--target-url", "https://example.com/b" })
    assert.are.equal(0, code)
    local made = assert(thinkific.decode(out))
    assert.are.equal("user.signup", made.topic)
    assert.are.equal("https://example.com/b", made.target_url)
    assert.are.equal(made.id, stored()[2].id)

    code, out = run({ "webhooks", "get", id })
    assert.are.equal(0, code)
    assert.are.equal(id .. "\torder.created\thttps://example.com/a\n", out)
    code, out = run({ "webhooks", "get", id, "--json" })
    assert.are.equal(0, code)
    local c = helper.client(sb)
    assert.are.same(assert(c:get_webhook(id)), assert(thinkific.decode(out)))

    code, out = run({ "webhooks", "update", id, "--topic", "enrollment.created",
      "--target-url", "https://example.com/c" })
    assert.are.equal(0, code)
    assert.are.equal(id .. "\tenrollment.created\thttps://example.com/c\n", out)
    local now = assert(c:get_webhook(id))
    assert.are.equal("enrollment.created", now.topic)
    assert.are.equal("https://example.com/c", now.target_url)

    code, out = run({ "webhooks", "update", "--json", id, "--topic", "lesson.completed",
      "--target-url", "https://example.com/d" })
    assert.are.equal(0, code)
    assert.are.same(assert(c:get_webhook(id)), assert(thinkific.decode(out)))
    assert.are.equal("lesson.completed", thinkific.decode(out).topic)
    c:close()
  end)

  it("deletes a webhook, as text and as JSON", function()
    local a = create("order.created", "https://example.com/a")
    local b = create("order.created", "https://example.com/b")
    local code, out = run({ "webhooks", "delete", a.id })
    assert.are.equal(0, code)
    assert.are.equal("deleted " .. a.id .. "\n", out)
    code, out = run({ "webhooks", "delete", b.id, "--json" })
    assert.are.equal(0, code)
    assert.are.same({ deleted = true, id = b.id }, assert(thinkific.decode(out)))
    assert.are.equal(0, #stored())
  end)

  it("exits 1 with the API's message for an unknown id (404)", function()
    local cases = {
      { { "webhooks", "get", "424242" }, "GET /webhooks/424242" },
      { { "webhooks", "delete", "424242" }, "DELETE /webhooks/424242" },
      { { "webhooks", "update", "424242", "--topic", "order.created", "--target-url",
        "https://example.com/a" }, "PUT /webhooks/424242" },
      { { "webhooks", "get", "424242", "--json" }, "GET /webhooks/424242" },
    }
    for _, case in ipairs(cases) do
      local code, out, err = run(case[1])
      assert.are.equal(1, code, case[2])
      assert.are.equal("", out, case[2])
      assert.are.equal("thinkific webhooks: " .. case[2] .. ": Record not found. (http 404)\n", err)
    end
  end)

  it("exits 1 with the validation messages (422) and changes nothing", function()
    local code, out, err = run({ "webhooks", "create", "--topic", "no_such.topic",
      "--target-url", "https://example.com/a", "--allow-unknown-topic" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific webhooks: POST /webhooks: topic invalid format (http 422)\n", err)
    code, out, err = run({ "webhooks", "create", "--topic", "order.created",
      "--target-url", "not a url" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific webhooks: POST /webhooks: url is not valid (http 422)\n", err)
    assert.are.equal(0, #stored())

    local w = create("order.created", "https://example.com/a")
    code, out, err = run({ "webhooks", "update", w.id, "--topic", "no.pe",
      "--target-url", "nope", "--json", "--allow-unknown-topic" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific webhooks: PUT /webhooks/" .. w.id
      .. ": topic invalid format; url is not valid (http 422)\n", err)
    assert.are.same({ line(w) }, { line(stored()[1]) })
  end)

  it("exits 1 on a refused credential, naming what to check; takes the token too", function()
    local code, out, err = run({ "webhooks", "list" }, { THINKIFIC_API_KEY = "wrong-key-4711" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific webhooks: GET /webhooks: [^\n]*%(http 401%): check "
      .. "THINKIFIC_API_KEY %(or THINKIFIC_ACCESS_TOKEN%)\n$", err)
    assert.is_nil(err:find("wrong-key-4711", 1, true))
    code, out, err = run({ "webhooks", "get", "1" }, { THINKIFIC_API_KEY = false,
      THINKIFIC_ACCESS_TOKEN = "wrong-token-4712" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific webhooks: GET /webhooks/1: [^\n]*%(http 401%): check "
      .. "THINKIFIC_ACCESS_TOKEN %(or THINKIFIC_API_KEY%)\n$", err)
    assert.is_nil(err:find("wrong-token-4712", 1, true))

    local w = create("order.created", "https://example.com/a")
    code, out = run({ "webhooks", "list" }, { THINKIFIC_API_KEY = false,
      THINKIFIC_ACCESS_TOKEN = API_KEY })
    assert.are.equal(0, code)
    assert.are.equal(line(w), out)
  end)

  it("checks the topic before any request; --allow-unknown-topic sends it anyway", function()
    local w = create("order.created", "https://example.com/a")
    assert(sb:reset_stats())
    local cases = {
      { "webhooks", "create", "--topic", "order.creatd", "--target-url", "https://example.com/b" },
      { "webhooks", "update", w.id, "--topic", "order.creatd", "--target-url", "https://example.com/b" },
    }
    for _, argv in ipairs(cases) do
      local code, out, err = run(argv)
      assert.are.equal(2, code, argv[2])
      assert.are.equal("", out, argv[2])
      assert.are.equal("thinkific webhooks: unknown topic 'order.creatd': did you mean "
        .. "'order.created'? (see thinkific topics; --allow-unknown-topic sends it anyway)",
        err:match("([^\n]*)\n$"))
    end
    assert.are.equal(0, assert(sb:stats()).requests)

    -- Sent: the sandbox, which knows only Thinkific's topics, refuses it.
    for _, argv in ipairs(cases) do
      argv[#argv + 1] = "--allow-unknown-topic"
      local code, out, err = run(argv)
      assert.are.equal(1, code, argv[2])
      assert.are.equal("", out, argv[2])
      assert.matches("^thinkific webhooks: [A-Z]+ /webhooks[^\n]*: topic invalid format %(http 422%)\n$",
        err)
    end
    assert.are.equal(2, assert(sb:stats()).requests)
    assert.are.same({ line(w) }, { line(stored()[1]) })
  end)

  it("names the base URL in use when a 404 comes from one without /api/v2", function()
    local password = "cli-webhooks-password-6170"
    local root = sb.url:gsub("/api/v2$", "")
    local shown = root
    local with_user = root:gsub("^http://", "http://user:" .. password .. "@")
    local checked = helper.cli(function()
      return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_WEBHOOK_SECRET = SECRET }
    end, { API_KEY, SECRET, password })
    local cases = {
      { { "webhooks", "list" }, with_user, "GET /webhooks" },
      { { "webhooks", "get", "12" }, root .. "/?token=" .. password, "GET /webhooks/12" },
      { { "webhooks", "delete", "12" }, root, "DELETE /webhooks/12" },
    }
    for _, case in ipairs(cases) do
      local code, out, err = checked(case[1], { THINKIFIC_BASE_URL = case[2] })
      assert.are.equal(1, code, case[3])
      assert.are.equal("", out, case[3])
      local want = case[2] == root .. "/?token=" .. password and root .. "/" or shown
      assert.matches("^thinkific webhooks: " .. case[3]:gsub("%p", "%%%0") .. ": [^\n]*%(http 404%) "
        .. "%(is THINKIFIC_BASE_URL right%? it is " .. want:gsub("%p", "%%%0")
        .. ", without /api/v2%)\n$", err)
    end
    -- With /api/v2, a 404 is about the id: no hint (as in the test of unknown ids).
    local code, _, err = checked({ "webhooks", "get", "12" }, { THINKIFIC_BASE_URL = sb.url })
    assert.are.equal(1, code)
    assert.are.equal("thinkific webhooks: GET /webhooks/12: Record not found. (http 404)\n", err)
  end)
end)

-- An https API with a certificate of its own (a private CA, a sandbox's self-signed one): the
-- API commands trust the CA file SSL_CERT_FILE names, as `deliver` does, and only then.
describe("thinkific webhooks over https #lua54", function()
  local dir, cert, sb

  helper.scratch_dir(function(d) dir = d end)

  lazy_setup(function()
    local key
    cert, key = helper.certificate(dir, "api", "/CN=127.0.0.1", "IP:127.0.0.1")
    sb = helper.sandbox{ port = 0, api_key = API_KEY, tls_cert = cert, tls_key = key }
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url }
  end, { API_KEY })

  it("verifies the API against $SSL_CERT_FILE, else the system bundle", function()
    local c = helper.client(sb, { ca_file = cert })
    local w = assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/a" })
    c:close()
    local code, out, err = run({ "webhooks", "list" }, { SSL_CERT_FILE = cert })
    assert.are.equal(0, code, err)
    assert.are.equal(w.id .. "\torder.created\thttps://example.com/a\n", out)

    code, out, err = run({ "webhooks", "list" })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific webhooks: GET /webhooks: [^\n]*certificate[^\n]*\n$", err)
  end)
end)
