-- The commands that talk to the API (webhooks, events get) against a sandbox serving https
-- with a self-signed certificate made at test time (`thinkific sandbox --tls-cert --tls-key`):
-- the CA bundle from --ca-file, else $CURL_CA_BUNDLE, else $SSL_CERT_FILE (curl's order), and
-- a TLS failure that names --ca-file as the fix. The command is Lua 5.4 (#lua54).
local helper = require("spec.helper")
local thinkific = require("thinkific")

local API_KEY = "cli-api-tls-api-key-4102"

describe("thinkific webhooks and events over https #lua54", function()
  local dir, cert, other, sb

  helper.scratch_dir(function(d) dir = d end)

  -- The CA variables are unset unless a test sets them.
  local run = helper.cli(function()
    return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = sb.url, CURL_CA_BUNDLE = false }
  end, { API_KEY })

  lazy_setup(function()
    local key
    cert, key = helper.certificate(dir, "sandbox", "/CN=127.0.0.1", "IP:127.0.0.1")
    other = helper.certificate(dir, "other", "/CN=127.0.0.1", "IP:127.0.0.1")
    sb = helper.sandbox{ port = 0, api_key = API_KEY, tls_cert = cert, tls_key = key }
    assert.matches("^https://127%.0%.0%.1:%d+/api/v2$", sb.url)
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  it("works with the sandbox's certificate from --ca-file, CURL_CA_BUNDLE or SSL_CERT_FILE", function()
    local c = helper.client(sb, { ca_file = cert })
    local w = assert(c:create_webhook{ topic = "order.created", target_url = "https://example.com/a" })
    c:close()
    local line = w.id .. "\torder.created\thttps://example.com/a\n"
    local cases = {
      { { "--ca-file", cert } },
      { {}, { CURL_CA_BUNDLE = cert } },
      { {}, { SSL_CERT_FILE = cert } },
      -- --ca-file first, then CURL_CA_BUNDLE, then SSL_CERT_FILE.
      { { "--ca-file", cert }, { CURL_CA_BUNDLE = other, SSL_CERT_FILE = other } },
      { {}, { CURL_CA_BUNDLE = cert, SSL_CERT_FILE = other } },
    }
    for i, case in ipairs(cases) do
      local argv = { "webhooks", "list" }
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      local code, out, err = run(argv, case[2])
      assert.are.equal(0, code, i .. ": " .. err)
      assert.are.equal(line, out, i)
    end

    local id = sb.seeded_events[1]
    local code, out, err = run({ "events", "get", id, "--json" }, { SSL_CERT_FILE = cert })
    assert.are.equal(0, code, err)
    assert.are.equal(id, assert(thinkific.decode(out))[1].id)

    local file = helper.write(dir, "desired.json", '[{"topic": "order.created", '
      .. '"target_url": "https://example.com/a"}]')
    code, out, err = run({ "webhooks", "sync", file, "--dry-run", "--ca-file", cert })
    assert.are.equal(0, code, err)
    assert.matches("\n  0 to create, 0 to delete, 1 unchanged, 0 extra, 0 duplicates\n$", out)
  end)

  it("exits 1 on a certificate it cannot verify, naming --ca-file as the fix", function()
    local no_ca = "^thinkific webhooks: GET /webhooks: [^\n]*self%-signed certificate[^\n]*; for a "
      .. "private CA or a self%-signed test certificate pass %-%-ca%-file FILE\n$"
    local cases = {
      { {}, nil, no_ca },
      { { "--ca-file", other }, nil, "^thinkific webhooks: GET /webhooks: [^\n]*self%-signed "
        .. "certificate[^\n]*; the CA bundle from %-%-ca%-file cannot verify this server: pass its "
        .. "CA %(or its own certificate%) as %-%-ca%-file FILE, in PEM\n$" },
      { {}, { CURL_CA_BUNDLE = other, SSL_CERT_FILE = cert }, "; the CA bundle from "
        .. "%$CURL_CA_BUNDLE cannot verify this server: pass its CA %(or its own certificate%) as "
        .. "%-%-ca%-file FILE, in PEM\n$" },
      -- The certificate is right, the host is not the one it names.
      { { "--ca-file", cert }, { THINKIFIC_BASE_URL = sb.url:gsub("127%.0%.0%.1", "localhost") },
        "; the certificate does not name the host of THINKIFIC_BASE_URL\n$" },
    }
    for i, case in ipairs(cases) do
      local argv = { "webhooks", "list" }
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      local code, out, err = run(argv, case[2])
      assert.are.equal(1, code, i)
      assert.are.equal("", out, i)
      assert.matches(case[3], err)
    end
    local code, _, err = run({ "events", "get", sb.seeded_events[1] })
    assert.are.equal(1, code)
    assert.matches("pass %-%-ca%-file FILE\n$", err)
  end)

  it("exits 1 with one line for a CA file it cannot read", function()
    local missing = dir .. "/missing.pem"
    local cases = {
      { { "--ca-file", missing }, nil, "--ca-file: cannot read " .. missing
        .. ": No such file or directory" },
      { {}, { CURL_CA_BUNDLE = missing }, "$CURL_CA_BUNDLE: cannot read " .. missing
        .. ": No such file or directory (install ca-certificates, or pass --ca-file FILE)" },
      { {}, { SSL_CERT_FILE = missing }, "$SSL_CERT_FILE: cannot read " .. missing
        .. ": No such file or directory (install ca-certificates, or pass --ca-file FILE)" },
    }
    assert(sb:reset_stats())
    for _, case in ipairs(cases) do
      local argv = { "webhooks", "list" }
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      local code, out, err = run(argv, case[2])
      assert.are.equal(1, code, case[3])
      assert.are.equal("", out)
      assert.are.equal("thinkific webhooks: " .. case[3] .. "\n", err)
    end
    assert.are.equal(0, assert(sb:stats()).requests)
  end)
end)
