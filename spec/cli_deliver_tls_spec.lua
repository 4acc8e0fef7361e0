-- `thinkific deliver` over https verifies the server before sending anything (libcurl does):
-- the chain against --ca-file, $CURL_CA_BUNDLE, $SSL_CERT_FILE or libcurl's own bundle, and
-- the host name against the certificate. The receivers are sandboxes serving https with
-- self-signed certificates made at test time; each delivery goes to POST /sandbox/events,
-- which records the envelope, so whether anything arrived is read back from the API. The
-- command is Lua 5.4 (#lua54).
local helper = require("spec.helper")
local socket = require("socket")
local thinkific = require("thinkific")

local SECRET = "cli-tls-secret-7751"

describe("thinkific deliver (https) #lua54", function()
  local dir, ip_cert, name_cert, other_cert, sb_ip, sb_name
  local sequence = 0

  helper.scratch_dir(function(d) dir = d end)

  -- CURL_CA_BUNDLE is read too: unset unless a test sets it.
  local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = SECRET, CURL_CA_BUNDLE = false }, { SECRET })

  lazy_setup(function()
    local ip_key, name_key
    ip_cert, ip_key = helper.certificate(dir, "ip", "/CN=127.0.0.1", "IP:127.0.0.1")
    name_cert, name_key = helper.certificate(dir, "name", "/CN=localhost", "DNS:localhost")
    other_cert = helper.certificate(dir, "other", "/CN=127.0.0.1", "IP:127.0.0.1")
    sb_ip = helper.sandbox{ port = 0, tls_cert = ip_cert, tls_key = ip_key }
    sb_name = helper.sandbox{ port = 0, tls_cert = name_cert, tls_key = name_key }
  end)

  lazy_teardown(function()
    if sb_ip then sb_ip:stop() end
    if sb_name then sb_name:stop() end
  end)

  -- The delivery URL on a sandbox, with the host given (default 127.0.0.1).
  local function target(sb, host)
    return "https://" .. (host or "127.0.0.1") .. ":" .. sb.port .. "/sandbox/events"
  end

  -- A fresh envelope file: its path and its event id.
  local function envelope()
    sequence = sequence + 1
    local id = string.format("2024010100000000000%04d", sequence)
    local path = helper.write(dir, "envelope" .. sequence .. ".json", assert(thinkific.encode({
      id = id, resource = "order", action = "created", tenant_id = "3",
      created_at = "2024-01-01T00:00:00.000Z", payload = { id = sequence, amount_cents = 5000 } })))
    return path, id
  end

  -- The event the sandbox recorded under id, or nil (read over the API, verified).
  local function recorded(sb, id, cert, host)
    local base = "https://" .. (host or "127.0.0.1") .. ":" .. sb.port .. "/api/v2"
    local c = helper.client(sb, { ca_file = cert, base_url = base, retries = 0 })
    local ev, err = c:get_event(id)
    c:close()
    if ev then return ev end
    assert.are.equal(404, err.status, tostring(err))
    return nil
  end

  local function deliver(url, payload, extra, env)
    local argv = { "deliver", url, "--topic", "order.created", "--payload", payload }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    return run(argv, env)
  end

  it("delivers to a server verified with --ca-file: an IP address and a host name", function()
    local file, id = envelope()
    local code, out, err = deliver(target(sb_ip), file, { "--ca-file", ip_cert })
    assert.are.equal(0, code, err)
    assert.are.equal('201\n{"event_id":"' .. id .. '"}\n', out)
    assert.are.equal(sequence, recorded(sb_ip, id, ip_cert).payload.id)

    file, id = envelope()
    code, out, err = deliver(target(sb_name, "localhost"), file, { "--ca-file", name_cert })
    assert.are.equal(0, code, err)
    assert.are.equal('201\n{"event_id":"' .. id .. '"}\n', out)
    assert.are.equal(sequence, recorded(sb_name, id, name_cert, "localhost").payload.id)
  end)

  it("takes the CA bundle from CURL_CA_BUNDLE, else SSL_CERT_FILE; --ca-file comes first", function()
    local file, id = envelope()
    local code, _, err = deliver(target(sb_ip), file, nil, { SSL_CERT_FILE = ip_cert })
    assert.are.equal(0, code, err)
    assert.is_table(recorded(sb_ip, id, ip_cert))

    file, id = envelope()
    code, _, err = deliver(target(sb_ip), file, { "--ca-file", ip_cert },
      { SSL_CERT_FILE = other_cert })
    assert.are.equal(0, code, err)
    assert.is_table(recorded(sb_ip, id, ip_cert))

    file, id = envelope()
    code = deliver(target(sb_ip), file, { "--ca-file", other_cert }, { SSL_CERT_FILE = ip_cert })
    assert.are.equal(1, code)
    assert.is_nil(recorded(sb_ip, id, ip_cert))

    -- curl's order: CURL_CA_BUNDLE before SSL_CERT_FILE.
    file, id = envelope()
    code, _, err = deliver(target(sb_ip), file, nil, { CURL_CA_BUNDLE = ip_cert,
      SSL_CERT_FILE = other_cert })
    assert.are.equal(0, code, err)
    assert.is_table(recorded(sb_ip, id, ip_cert))

    file, id = envelope()
    code = deliver(target(sb_ip), file, nil, { CURL_CA_BUNDLE = other_cert,
      SSL_CERT_FILE = ip_cert })
    assert.are.equal(1, code)
    assert.is_nil(recorded(sb_ip, id, ip_cert))
  end)

  it("refuses a certificate it cannot verify, and sends nothing, naming --ca-file as the fix", function()
    local cases = {
      { {}, nil, "; for a private CA or a self%-signed test certificate pass %-%-ca%-file FILE" },
      { { "--ca-file", other_cert }, nil, "; the CA bundle from %-%-ca%-file cannot verify this "
        .. "server: pass its CA %(or its own certificate%) as %-%-ca%-file FILE, in PEM" },
      { {}, { SSL_CERT_FILE = other_cert }, "; the CA bundle from %$SSL_CERT_FILE cannot verify" },
    }
    for _, case in ipairs(cases) do
      local file, id = envelope()
      local code, out, err = deliver(target(sb_ip), file, case[1], case[2])
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.matches("^thinkific deliver: POST https://127%.0%.0%.1:%d+/sandbox/events: "
        .. "[^\n]*self%-signed certificate[^\n]*" .. case[3] .. "[^\n]*\n$", err)
      assert.is_nil(recorded(sb_ip, id, ip_cert))
    end
  end)

  it("refuses a certificate for another host name, and sends nothing", function()
    local cases = {
      { sb_ip, "localhost", ip_cert },
      { sb_name, "127.0.0.1", name_cert },
    }
    for _, case in ipairs(cases) do
      local sb, host, cert = case[1], case[2], case[3]
      local file, id = envelope()
      local code, out, err = deliver(target(sb, host), file, { "--ca-file", cert })
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      -- libcurl's words: "SSL: no alternative certificate subject name matches target host
      -- name 'localhost'"; the CA bundle is right, so --ca-file is not named.
      assert.matches("^thinkific deliver: POST https://[^\n]*/sandbox/events: [^\n]*host name '"
        .. host:gsub("%.", "%%.") .. "'\n$", err)
      assert.is_nil(recorded(sb, id, cert, host == "localhost" and "127.0.0.1" or "localhost"))
    end
  end)

  it("exits 1 with one line for a CA file it cannot use", function()
    local file = envelope()
    local missing = dir .. "/missing.pem"
    local code, out, err = deliver(target(sb_ip), file, { "--ca-file", missing })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific deliver: --ca-file: cannot read " .. missing
      .. ": No such file or directory\n", err)

    code, out, err = deliver(target(sb_ip), file, nil, { SSL_CERT_FILE = missing })
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific deliver: $SSL_CERT_FILE: cannot read " .. missing
      .. ": No such file or directory (install ca-certificates, or pass --ca-file FILE)\n", err)

    code, out, err = deliver(target(sb_ip), file, { "--ca-file", file }) -- JSON, not PEM
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^thinkific deliver: POST [^\n]*: [^\n]*" .. file:gsub("%p", "%%%0")
      .. "; the CA bundle from %-%-ca%-file cannot verify this server: pass its CA %(or its own "
      .. "certificate%) as %-%-ca%-file FILE, in PEM\n$", err)
  end)

  it("--timeout bounds the TLS handshake", function()
    local file = envelope()
    local silent = assert(socket.bind("127.0.0.1", 0)) -- listens, never accepts
    local _, port = silent:getsockname()
    local t0 = socket.gettime()
    local code, out, err = deliver("https://127.0.0.1:" .. port .. "/", file,
      { "--ca-file", ip_cert, "--timeout", "0.5" })
    local took = socket.gettime() - t0
    silent:close()
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("thinkific deliver: POST https://127.0.0.1:" .. port
      .. "/: no answer within 0.5 s (--timeout)\n", err)
    -- Generous: without the deadline it would wait for the spec runner's 20 s kill.
    assert.is_true(took >= 0.5 and took < 10, "took " .. took .. " s")
  end)
end)
