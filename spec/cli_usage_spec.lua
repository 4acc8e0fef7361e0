-- Every command's --help (exit 0, on stdout, no credential needed) and usage errors (exit 2,
-- nothing on stdout, the message as the last line on stderr), without any server: a usage
-- error is found before anything is sent. The command is Lua 5.4 (#lua54: one run is enough).
local helper = require("spec.helper")

local API_KEY = "cli-usage-api-key-1357"
local SECRET = "cli-usage-secret-2468"

describe("thinkific usage #lua54", function()
  -- Credentials are set (usage errors must not depend on them) and the API is a closed port:
  -- a command that got past its checks would fail with exit 1, not 2.
  local base = { THINKIFIC_API_KEY = API_KEY, THINKIFIC_WEBHOOK_SECRET = SECRET,
    THINKIFIC_BASE_URL = "http://127.0.0.1:" .. helper.closed_port() .. "/api/v2" }
  local run = helper.cli(base, { API_KEY, SECRET })
  local run_bare = helper.cli({}, { API_KEY, SECRET })

  it("prints each command's help on stdout with --help, exit 0, no credential needed", function()
    local cases = {
      { { "--help" }, "Usage: thinkific <command>", { "webhooks", "events", "topics", "sign",
        "verify", "deliver", "listen", "sandbox", "thinkific help <command>", "--version" } },
      { { "-h" }, "Usage: thinkific <command>" },
      { { "help" }, "Usage: thinkific <command>" },
      -- help COMMAND: that command's own --help.
      { { "help", "webhooks" }, "Usage: thinkific webhooks <action>", { "sync FILE" } },
      { { "help", "webhooks", "sync" }, "Usage: thinkific webhooks sync", { "--dry-run" } },
      { { "help", "--help" }, "Usage: thinkific <command>" },
      { { "help", "events" }, "Usage: thinkific events get" },
      { { "help", "topics" }, "Usage: thinkific topics", { "--json" } },
      { { "help", "deliver" }, "Usage: thinkific deliver", { "--allow-unknown-topic" } },
      { { "help", "sign" }, "Usage: thinkific sign" },
      { { "help", "listen" }, "Usage: thinkific listen" },
      { { "help", "sandbox" }, "Usage: thinkific sandbox" },
      { { "topics", "--help" }, "Usage: thinkific topics", { "--json" } },
      { { "webhooks", "--help" }, "Usage: thinkific webhooks <action>", { "list", "create",
        "get ID", "update ID", "delete ID", "sync FILE", "--json" } },
      { { "webhooks", "help" }, "Usage: thinkific webhooks <action>" },
      { { "webhooks", "list", "--help" }, "Usage: thinkific webhooks list", { "--limit", "--json" } },
      { { "webhooks", "create", "-h" }, "Usage: thinkific webhooks create",
        { "--topic", "--target-url", "--json", "--allow-unknown-topic", "--ca-file" } },
      { { "webhooks", "get", "--help" }, "Usage: thinkific webhooks get", { "<id>", "--json" } },
      { { "webhooks", "update", "--help" }, "Usage: thinkific webhooks update",
        { "<id>", "--topic", "--target-url", "--allow-unknown-topic" } },
      { { "webhooks", "delete", "--help" }, "Usage: thinkific webhooks delete", { "<id>" } },
      { { "webhooks", "sync", "--help" }, "Usage: thinkific webhooks sync",
        { "<file>", "--dry-run", "--prune", "--json", "--allow-unknown-topic" } },
      { { "events", "--help" }, "Usage: thinkific events get", { "<ids>", "--json" } },
      { { "events", "get", "--help" }, "Usage: thinkific events get", { "<ids>", "--json" } },
      { { "sign", "--help" }, "Usage: thinkific sign", { "<file>", "--json" } },
      { { "verify", "--help" }, "Usage: thinkific verify", { "--signature", "<file>", "--json" } },
      { { "deliver", "--help" }, "Usage: thinkific deliver", { "<url>", "--topic", "--payload",
        "--timeout", "--ca-file", "--json", "--allow-unknown-topic" } },
      { { "listen", "--help" }, "Usage: thinkific listen", { "--host", "--port", "<rules>" } },
      { { "sandbox", "--help" }, "Usage: thinkific sandbox", { "--host", "--port", "--api-key",
        "--secret", "--tls-cert", "--tls-key" } },
      -- --help wins over whatever else is (not) there.
      { { "webhooks", "create", "--topic", "--help" }, "Usage: thinkific webhooks create" },
      { { "deliver", "ftp://x/", "--help" }, "Usage: thinkific deliver" },
    }
    for _, case in ipairs(cases) do
      local what = table.concat(case[1], " ")
      local code, out, err = run_bare(case[1])
      assert.are.equal(0, code, what)
      assert.are.equal("", err, what)
      assert.are.equal(case[2], out:sub(1, #case[2]), what .. ": " .. out)
      for _, word in ipairs(case[3] or {}) do
        assert.is_truthy(out:find(word, 1, true), what .. " mentions " .. word)
      end
    end
  end)

  it("prints the version with --version and -V", function()
    for _, flag in ipairs({ "--version", "-V" }) do
      local code, out, err = run_bare({ flag })
      assert.are.equal(0, code, flag)
      assert.are.equal("", err, flag)
      assert.are.equal("thinkific " .. require("thinkific.version") .. "\n", out, flag)
    end
    assert.matches("^%d+%.%d+%.%d+$", require("thinkific.version"))
  end)

  it("names in each action's --help the environment variables it reads", function()
    local api = { "THINKIFIC_API_KEY", "THINKIFIC_ACCESS_TOKEN", "THINKIFIC_SUBDOMAIN",
      "THINKIFIC_BASE_URL", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "--ca-file" }
    local cases = {
      { { "webhooks", "--help" }, api },
      { { "events", "get", "--help" }, api },
      { { "sign", "--help" }, { "THINKIFIC_WEBHOOK_SECRET" } },
      { { "verify", "--help" }, { "THINKIFIC_WEBHOOK_SECRET" } },
      { { "deliver", "--help" }, { "THINKIFIC_WEBHOOK_SECRET", "THINKIFIC_SUBDOMAIN",
        "CURL_CA_BUNDLE", "SSL_CERT_FILE", "--ca-file" } },
    }
    for _, action in ipairs({ "list", "create", "get", "update", "delete", "sync" }) do
      cases[#cases + 1] = { { "webhooks", action, "--help" }, api }
    end
    for _, case in ipairs(cases) do
      local what = table.concat(case[1], " ")
      local code, out = run_bare(case[1])
      assert.are.equal(0, code, what)
      local environment = out:match("\nEnvironment:\n(.*)$")
      assert.is_truthy(environment, what .. " has an Environment section: " .. out)
      for _, name in ipairs(case[2]) do
        assert.is_truthy(out:find(name, 1, true), what .. " names " .. name)
      end
      if case[2] ~= api then
        assert.is_nil(environment:find("THINKIFIC_API_KEY", 1, true), what .. " needs no key")
      end
    end
  end)

  it("exits 2 on usage errors, the message last on stderr, nothing on stdout", function()
    local r = "rules.lua"
    local ok_deliver = { "--topic", "order.created", "--payload", "p.json" }
    local function deliver(url, ...)
      local argv = { "deliver", url }
      for _, a in ipairs(ok_deliver) do argv[#argv + 1] = a end
      for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
      return argv
    end
    -- The unknown topic line, with its suggestion (or none).
    local function unknown(topic, suggestion)
      return "unknown topic '" .. topic .. "'"
        .. (suggestion and (": did you mean '" .. suggestion .. "'?") or "")
        .. " (see thinkific topics; --allow-unknown-topic sends it anyway)"
    end
    local target = { "--target-url", "https://example.com/" }
    local function with_target(...)
      local argv = { ... }
      for _, a in ipairs(target) do argv[#argv + 1] = a end
      return argv
    end
    local cases = {
      { with_target("webhooks", "create", "--topic", "order.creatd"),
        "thinkific webhooks: " .. unknown("order.creatd", "order.created") },
      { with_target("webhooks", "create", "--topic", "Order.Created"),
        "thinkific webhooks: " .. unknown("Order.Created", "order.created") },
      { with_target("webhooks", "create", "--topic", "subscription.canceled"),
        "thinkific webhooks: " .. unknown("subscription.canceled", "subscription.cancelled") },
      { with_target("webhooks", "create", "--topic", "invoice.paid"),
        "thinkific webhooks: " .. unknown("invoice.paid") },
      { with_target("webhooks", "update", "1", "--topic", "enrolment.completed"),
        "thinkific webhooks: " .. unknown("enrolment.completed", "enrollment.completed") },
      { with_target("webhooks", "create", "--topic", "ordercreated", "--allow-unknown-topic"),
        "thinkific webhooks: topic 'ordercreated' is not resource.action (e.g. order.created): "
        .. "did you mean 'order.created'?" },
      { { "nosuch" }, "thinkific: unknown command 'nosuch' (see thinkific --help)" },
      -- A close miss gets a suggestion.
      { { "webhook" }, "thinkific: unknown command 'webhook': did you mean 'webhooks'? "
        .. "(see thinkific --help)" },
      { { "evnets", "get", "1" }, "thinkific: unknown command 'evnets': did you mean 'events'? "
        .. "(see thinkific --help)" },
      { { "help", "webhook" }, "thinkific: unknown command 'webhook': did you mean 'webhooks'? "
        .. "(see thinkific --help)" },
      { { "help", "nosuch" }, "thinkific: unknown command 'nosuch' (see thinkific --help)" },
      { { "webhooks", "lsit" }, "thinkific webhooks: unknown action 'lsit': did you mean 'list'?" },
      { { "webhooks", "create", "--tpoic", "order.created" },
        "thinkific webhooks: unknown option '--tpoic': did you mean '--topic'?" },
      { { "topics", "extra" }, "thinkific topics: too many arguments" },
      { { "topics", "--bogus" }, "thinkific topics: unknown option '--bogus'" },
      { { "webhooks" },
        "thinkific webhooks: an action is required (list, create, get, update, delete, sync)" },
      { { "webhooks", "bogus" }, "thinkific webhooks: unknown action 'bogus'" },
      { { "webhooks", "list", "--bogus" }, "thinkific webhooks: unknown option '--bogus'" },
      { { "webhooks", "list", "--limit", "0" }, "thinkific webhooks: --limit must be a number 1..250" },
      { { "webhooks", "list", "--limit", "251" }, "thinkific webhooks: --limit must be a number 1..250" },
      { { "webhooks", "list", "--limit", "x" }, "thinkific webhooks: --limit must be a number 1..250" },
      { { "webhooks", "create", "--topic", "order.created" },
        "thinkific webhooks: missing option '--target-url'" },
      { { "webhooks", "create", "--topic", "", "--target-url", "https://example.com/" },
        "thinkific webhooks: --topic and --target-url must not be empty" },
      { { "webhooks", "get" }, "thinkific webhooks: missing argument 'id'" },
      { { "webhooks", "get", "" }, "thinkific webhooks: ID must not be empty" },
      { { "webhooks", "get", "1", "2" }, "thinkific webhooks: too many arguments" },
      { { "webhooks", "update", "1", "--topic", "order.created" },
        "thinkific webhooks: missing option '--target-url'" },
      { { "webhooks", "delete" }, "thinkific webhooks: missing argument 'id'" },
      { { "webhooks", "sync" }, "thinkific webhooks: missing argument 'file'" },
      { { "webhooks", "list", "--ca-file", "" }, "thinkific webhooks: --ca-file must not be empty" },
      { { "events", "get", "1", "--ca-file", "" }, "thinkific events: --ca-file must not be empty" },
      { { "events" }, "thinkific events: an action is required (get)" },
      { { "events", "list" }, "thinkific events: unknown action 'list'" },
      { { "events", "get" }, "thinkific events: missing argument 'ids'" },
      { { "events", "get", "1", "" }, "thinkific events: an event id must not be empty" },
      { { "events", "get", "-" }, "thinkific events: no event id on stdin" },
      { { "events", "get", "1", "--concurrency", "0" },
        "thinkific events: --concurrency must be a number 1..64" },
      { { "events", "get", "1", "--concurrency", "x" },
        "thinkific events: --concurrency must be a number 1..64" },
      { { "sign", "--signature", "00" }, "thinkific sign: unknown option '--signature'" },
      { { "sign", "a", "b" }, "thinkific sign: too many arguments" },
      { { "verify", "body.json" }, "thinkific verify: missing option '--signature'" },
      { { "verify", "--signature" }, "thinkific verify: option '--signature' requires an argument" },
      { { "deliver" }, "thinkific deliver: missing argument 'url'" },
      { { "deliver", "http://127.0.0.1:1/" }, "thinkific deliver: missing option '--topic'" },
      { deliver("ftp://127.0.0.1/"), "thinkific deliver: URL must be http:// or https://" },
      { deliver("https:///hooks"), "thinkific deliver: URL has no host" },
      { deliver("http://127.0.0.1:1/", "--timeout", "0"),
        "thinkific deliver: --timeout must be a positive number" },
      { deliver("http://127.0.0.1:1/", "--timeout", "soon"),
        "thinkific deliver: --timeout must be a positive number" },
      { deliver("http://127.0.0.1:1/", "--ca-file", ""), "thinkific deliver: --ca-file must not be empty" },
      { { "deliver", "http://127.0.0.1:1/", "--topic", "", "--payload", "p.json" },
        "thinkific deliver: --topic must not be empty" },
      { { "deliver", "http://127.0.0.1:1/", "--topic", "order.creatd", "--payload", "p.json" },
        "thinkific deliver: " .. unknown("order.creatd", "order.created") },
      -- A topic is resource.action, whatever --allow-unknown-topic says.
      { { "deliver", "http://127.0.0.1:1/", "--topic", "ordercreated", "--payload", "p.json",
        "--allow-unknown-topic" }, "thinkific deliver: topic 'ordercreated' is not resource.action "
        .. "(e.g. order.created): did you mean 'order.created'?" },
      { { "deliver", "http://127.0.0.1:1/", "--topic", "order.", "--payload", "p.json",
        "--allow-unknown-topic" }, "thinkific deliver: topic 'order.' is not resource.action "
        .. "(e.g. order.created)" },
      { { "listen" }, "thinkific listen: missing argument 'rules'" },
      { { "listen", "--port", "70000", r }, "thinkific listen: --port must be a number 0..65535" },
      { { "listen", "--port", "x", r }, "thinkific listen: --port must be a number 0..65535" },
      { { "listen", "--bogus", r }, "thinkific listen: unknown option '--bogus'" },
      { { "sandbox", "--port", "nope" }, "thinkific sandbox: --port must be a number 0..65535" },
      { { "sandbox", "--tls-cert", "only.pem" }, "thinkific sandbox: --tls-cert and --tls-key go together" },
      { { "sandbox", "--bogus" }, "thinkific sandbox: unknown option '--bogus'" },
    }
    for _, case in ipairs(cases) do
      local what = table.concat(case[1], " ")
      local code, out, err = run(case[1])
      assert.are.equal(2, code, what .. ": " .. err)
      assert.are.equal("", out, what)
      assert.are.equal(case[2], err:match("([^\n]*)\n$"), what)
    end
    -- No command at all: the list of commands, on stderr.
    local code, out, err = run({})
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^Usage: thinkific <command>", err)
  end)

  it("exits 2 without the credential or the secret a command needs, naming the variable", function()
    local no_key = "no credential: set THINKIFIC_API_KEY or THINKIFIC_ACCESS_TOKEN"
    local no_secret = "no signing secret: set THINKIFIC_WEBHOOK_SECRET"
    local cases = {
      { { "webhooks", "list" }, "thinkific webhooks: " .. no_key },
      { { "webhooks", "sync", "desired.json" }, "thinkific webhooks: " .. no_key },
      { { "events", "get", "1" }, "thinkific events: " .. no_key },
      { { "sign" }, "thinkific sign: " .. no_secret },
      { { "verify", "--signature", "00" }, "thinkific verify: " .. no_secret },
      { { "deliver", "http://127.0.0.1:1/", "--topic", "order.created", "--payload", "p.json" },
        "thinkific deliver: " .. no_secret },
    }
    for _, case in ipairs(cases) do
      local what = table.concat(case[1], " ")
      -- Set but empty counts as not set.
      for _, env in ipairs({ {}, { THINKIFIC_API_KEY = "", THINKIFIC_WEBHOOK_SECRET = "" } }) do
        local code, out, err = run_bare(case[1], env)
        assert.are.equal(2, code, what)
        assert.are.equal("", out, what)
        assert.are.equal(case[2] .. "\n", err, what)
      end
    end
  end)

  it("exits 2 on settings thinkific.new refuses, with its reason and never a value", function()
    local password = "base-url-password-5310"
    local token = "cli-usage-token-8642"
    local broken_key = "cli-usage-broken\nkey-9753"
    local checked = helper.cli(base, { API_KEY, SECRET, password, token, "cli-usage-broken",
      "key-9753" })
    local cases = {
      { { THINKIFIC_ACCESS_TOKEN = token }, "both THINKIFIC_API_KEY and THINKIFIC_ACCESS_TOKEN "
        .. "are set: unset one" },
      { { THINKIFIC_BASE_URL = "ftp://user:" .. password .. "@127.0.0.1/api/v2" },
        "THINKIFIC_BASE_URL: 'base_url' must start with http:// or https://" },
      { { THINKIFIC_BASE_URL = "127.0.0.1:8080/api/v2" },
        "THINKIFIC_BASE_URL: 'base_url' must start with http:// or https://" },
      { { THINKIFIC_API_KEY = broken_key },
        "THINKIFIC_API_KEY: 'api_key' must not contain CR, LF or NUL" },
      { { THINKIFIC_API_KEY = false, THINKIFIC_ACCESS_TOKEN = broken_key },
        "THINKIFIC_ACCESS_TOKEN: 'access_token' must not contain CR, LF or NUL" },
      { { THINKIFIC_SUBDOMAIN = "acme\r\nX-Injected: 1" },
        "THINKIFIC_SUBDOMAIN: 'subdomain' must not contain CR, LF or NUL" },
    }
    for _, command in ipairs({ { "webhooks", "list" }, { "events", "get", "1" } }) do
      local prog = "thinkific " .. command[1] .. ": "
      for _, case in ipairs(cases) do
        local code, out, err = checked(command, case[1])
        assert.are.equal(2, code, case[2])
        assert.are.equal("", out, case[2])
        assert.are.equal(prog .. case[2] .. "\n", err)
      end
    end
  end)
end)
