-- examples/openresty as a user would run it, with only what must differ here substituted: the
-- port, the upstream (a TLS sandbox with a certificate made now, for "localhost"), the CA file,
-- the module paths of this checkout, the worker count. `nginx -t` passes, the admin location
-- lists webhooks over TLS through the transport, and the receiver handles a delivery.
local helper = require("spec.helper")
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")

local EXAMPLE = H.ROOT .. "/examples/openresty"

-- Replaces `plain` by `by` in text, expecting exactly one occurrence (so that the example
-- cannot drift away from this spec unnoticed).
local function replace(text, plain, by)
  local at = text:find(plain, 1, true)
  assert(at, "not in examples/openresty/nginx.conf: " .. plain)
  assert(not text:find(plain, at + 1, true), "twice in examples/openresty/nginx.conf: " .. plain)
  return text:sub(1, at - 1) .. by .. text:sub(at + #plain)
end

describe("examples/openresty", function()
  local dir, cert, sb, client, nginx, conf

  lazy_setup(function()
    dir = H.tmpdir()
    cert = dir .. "/cert.pem"
    assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
      .. "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1")
      :format(H.quote(dir .. "/key.pem"), H.quote(cert))), "openssl could not make a certificate")
    sb = helper.sandbox{ port = 0, tls_cert = cert, tls_key = dir .. "/key.pem",
      secret = "example-secret", delivery_backoff = 0.05 }
    client = helper.client(sb, { ca_file = cert })

    conf = H.read(EXAMPLE .. "/nginx.conf")
    conf = replace(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:${port};")
    conf = replace(conf, "server api.thinkific.com:443;", "server 127.0.0.1:${sb_port};")
    conf = replace(conf, "proxy_ssl_name api.thinkific.com;", "proxy_ssl_name localhost;")
    conf = replace(conf, "/etc/ssl/certs/ca-certificates.crt", cert)
    conf = replace(conf, "worker_processes auto;", "worker_processes 2;")
    conf = replace(conf, 'lua_package_path "$prefix/lua/?.lua;;";',
      'lua_package_path "$prefix/lua/?.lua;${root}/lua/?.lua;${root}/lua/?/init.lua;;";\n'
      .. '  lua_package_cpath "${root}/build/luajit/?.so;;";')
  end)

  lazy_teardown(function()
    if client then client:close() end
    if nginx then nginx:remove() end
    if sb then sb:stop() end
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  local function start()
    nginx = H.start{
      conf = conf,
      globals = "daemon off;",
      vars = { sb_port = sb.port },
      files = {
        ["lua/app/hooks.lua"] = H.read(EXAMPLE .. "/lua/app/hooks.lua"),
        ["lua/app/admin.lua"] = H.read(EXAMPLE .. "/lua/app/admin.lua"),
      },
      env = { THINKIFIC_API_KEY = sb.api_key, THINKIFIC_SUBDOMAIN = "acme",
        THINKIFIC_WEBHOOK_SECRET = "example-secret",
        THINKIFIC_BASE_URL = "https://localhost:" .. sb.port .. "/api/v2" },
    }
    return nginx
  end

  it("passes nginx -t", function()
    local n = start()
    local output, ok = H.run(table.concat({ H.quote(H.NGINX), "-t", "-p",
      H.quote(n.prefix .. "/"), "-c", H.quote(n.prefix .. "/nginx.conf"), "-e",
      H.quote(n.prefix .. "/logs/test.log") }, " "))
    assert.is_true(ok, output)
    assert.truthy(output:find("test is successful", 1, true), output)
  end)

  it("lists webhooks over TLS through the transport and receives a delivery", function()
    assert(client:create_webhook{ topic = "order.created",
      target_url = nginx.url .. "/thinkific/webhooks" })
    local status, headers, body = nginx:request{ path = "/admin/webhooks" }
    assert.are.equal(200, status, body)
    assert.are.equal("application/json", headers["content-type"])
    local listed = assert(thinkific.decode(body))
    assert.are.equal(1, #listed.webhooks)
    assert.are.equal("order.created", listed.webhooks[1].topic)

    local r = assert(sb:trigger("order.created", { id = 77, product_name = "Intro",
      amount_cents = 5000 }))
    local list = assert(H.delivered(sb, r.event_id))
    assert.are.equal(1, #list)
    assert.are.equal(200, list[1].status)
    assert(helper.wait_until(function()
      return nginx:log():find("thinkific: order 77 (Intro) for 5000 cents", 1, true) ~= nil
    end, 5), "the handler's log line")
    assert.are.same({}, nginx:lines("error"))
  end)
end)
