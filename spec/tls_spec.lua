-- https: a sandbox with a self-signed certificate made at test time. Refused by default
-- (kind tls, never sent, never retried); accepted with ca_file or verify_tls = false.
local helper = require("spec.helper")

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

describe("TLS", function()
  local dir, cert, key, sb

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir -m 700 '" .. dir .. "'"))
    cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    assert(sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1 "
      .. "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"):format(key, cert)),
      "openssl could not make a certificate")
    sb = helper.sandbox{ port = 0, tls_cert = cert, tls_key = key }
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
    if dir then sh("rm -rf '" .. dir .. "'") end
  end)

  it("the sandbox serves https on 127.0.0.1", function()
    assert.truthy(sb.url:find("^https://127%.0%.0%.1:%d+/api/v2$"), sb.url)
  end)

  describe("#memory", function()
    it("the default client refuses a self-signed certificate: kind tls, not sent, one attempt", function()
      local c, waits = helper.recording(sb, { retries = 3 })
      for _, call in ipairs{
        function() return c:list_webhooks() end,
        function() return c:create_webhook{ topic = "order.created", target_url = "https://e.com/" } end,
      } do
        local v, err = call()
        assert.is_nil(v)
        assert.are.equal("tls", err.kind)
        assert.are.equal(false, err.sent)
        assert.are.equal(1, err.attempts)
        assert.is_nil(err.status)
        assert.are.equal(0, #waits)
      end
      -- Nothing reached the API.
      assert.are.equal(0, assert(sb:stats()).requests)
    end)

    it("verify_tls = true is the same as the default", function()
      local c = helper.client(sb, { verify_tls = true })
      local _, err = c:list_webhooks()
      assert.are.equal("tls", err.kind)
    end)

    it("works with ca_file naming the certificate", function()
      local c = helper.client(sb, { ca_file = cert })
      local w = assert(c:create_webhook{ topic = "order.created", target_url = "https://e.com/h" })
      assert.are.equal(w.id, assert(c:get_webhook(w.id)).id)
      assert.are.equal(true, c:delete_webhook(w.id))
    end)

    it("with ca_file still checks the host name", function()
      local url = sb.url:gsub("127%.0%.0%.1", "localhost")
      local c = helper.client(sb, { ca_file = cert, base_url = url, retries = 2 })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("tls", err.kind)
      assert.are.equal(1, err.attempts)
    end)

    it("works with verify_tls = false", function()
      local c = helper.client(sb, { verify_tls = false })
      local page = assert(c:list_webhooks())
      assert.is_table(page.items)
      local e = assert(c:get_event("20180126172320940835610"))
      assert.are.equal(5000, e.payload.amount_cents)
    end)

    it("a missing ca_file is an error, not a silent fallback to no checks", function()
      local c = helper.client(sb, { ca_file = dir .. "/missing.pem", retries = 1 })
      local v, err = c:list_webhooks()
      assert.is_nil(v)
      assert.are.equal("tls", err.kind)
      assert.are.equal(1, err.attempts)
    end)
  end)
end)
