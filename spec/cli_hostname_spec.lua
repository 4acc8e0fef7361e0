-- thinkific.cli.hostname, the host-name check of `thinkific deliver` over https: the rules on
-- plain names, then on names read from real certificates (made by openssl at test time).
local helper = require("spec.helper")
local hostname = require("thinkific.cli.hostname")

local function check(host, names)
  return (hostname.check(host, names))
end

describe("thinkific.cli.hostname", function()
  it("reads IP literals as bytes: IPv4 and every IPv6 spelling of one address", function()
    assert.are.equal("\127\0\0\1", hostname.ip_bytes("127.0.0.1"))
    local loop = string.rep("\0", 15) .. "\1"
    for _, s in ipairs({ "::1", "0:0:0:0:0:0:0:1", "0::1", "[::1]", "0000:0::0:1" }) do
      assert.are.equal(loop, hostname.ip_bytes(s), s)
    end
    assert.are.equal(string.rep("\0", 10) .. "\255\255\1\2\3\4", hostname.ip_bytes("::ffff:1.2.3.4"))
    assert.are.equal("\254\128" .. string.rep("\0", 13) .. "\1", hostname.ip_bytes("FE80::1"))
    for _, s in ipairs({ "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1::2::3",
      ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "12345::1", "1.2.3.4::", "::1%eth0",
      "example.com", "", "1:2:3:4:5:6:7" }) do
      assert.is_nil(hostname.ip_bytes(s), s)
    end
  end)

  it("matches a dNSName exactly, in any case, a trailing dot ignored", function()
    local names = { dns = { "api.Example.com" }, ip = {}, cn = {} }
    assert.is_true(check("api.example.com", names))
    assert.is_true(check("API.EXAMPLE.COM.", names))
    assert.is_false(check("example.com", names))
    assert.is_false(check("xapi.example.com", names))
    assert.is_false(check("api.example.com.evil.test", names))
  end)

  it("takes '*' only as the whole leftmost label, for exactly one label", function()
    local names = { dns = { "*.example.com" }, ip = {}, cn = {} }
    assert.is_true(check("a.example.com", names))
    assert.is_true(check("A-1.EXAMPLE.com", names))
    assert.is_false(check("example.com", names))
    assert.is_false(check("a.b.example.com", names))
    assert.is_false(check(".example.com", names))
    assert.is_false(check("*.example.com", names)) -- a host is never a pattern
    assert.is_false(check("127.0.0.1", { dns = { "*.0.0.1" }, ip = {}, cn = {} }))
    for _, pattern in ipairs({ "*.com", "*", "f*.example.com", "a.*.example.com", "*.*.com",
      "**.example.com" }) do
      local n = { dns = { pattern }, ip = {}, cn = {} }
      assert.is_false(check("foo.example.com", n), pattern)
      assert.is_false(check("foo.com", n), pattern)
    end
  end)

  it("matches IP literals against iPAddress entries only", function()
    local names = { dns = { "127.0.0.1", "localhost" }, ip = { "10.0.0.1", "::1" }, cn = {} }
    assert.is_true(check("10.0.0.1", names))
    assert.is_true(check("0:0::1", names))
    assert.is_true(check("[::1]", names))
    assert.is_false(check("127.0.0.1", names)) -- only as a dNSName: not an IP identity
    assert.is_false(check("10.0.0.2", names))
    assert.is_true(check("localhost", names))
  end)

  it("reads the last commonName only when there is no dNSName and no iPAddress", function()
    assert.is_true(check("a.example.com", { dns = {}, ip = {}, cn = { "a.example.com" } }))
    assert.is_true(check("x.example.com", { dns = {}, ip = {}, cn = { "*.example.com" } }))
    assert.is_true(check("127.0.0.1", { dns = {}, ip = {}, cn = { "127.0.0.1" } }))
    assert.is_false(check("a.example.com", { dns = {}, ip = {}, cn = { "a.example.com", "b.test" } }))
    assert.is_false(check("a.example.com", { dns = { "b.example.com" }, ip = {},
      cn = { "a.example.com" } }))
    assert.is_false(check("a.example.com", { dns = {}, ip = { "10.0.0.1" }, cn = { "a.example.com" } }))
    assert.is_false(check("a.example.com", { dns = {}, ip = {}, cn = {} }))
  end)

  it("refuses names with a NUL or other bytes that no host name has", function()
    assert.is_false(check("www.bank.test", { dns = { "www.bank.test\0.evil.test" }, ip = {}, cn = {} }))
    assert.is_false(check("www.bank.test\0.evil.test", { dns = { "www.bank.test" }, ip = {}, cn = {} }))
    assert.is_false(check("a b.test", { dns = { "a b.test" }, ip = {}, cn = {} }))
  end)

  it("says which names the certificate has, and which host was asked for", function()
    local ok, why = hostname.check("localhost", { dns = { "a.test", "b.test" }, ip = { "10.0.0.1" },
      cn = { "ignored" } })
    assert.is_false(ok)
    assert.are.equal("the certificate names a.test, b.test, 10.0.0.1, not localhost", why)
    local _, cn_only = hostname.check("b.test", { dns = {}, ip = {}, cn = { "a.test" } })
    assert.are.equal("the certificate names a.test, not b.test", cn_only)
    local dns = {}
    for i = 1, 7 do dns[i] = "h" .. i .. ".test" end
    local _, many = hostname.check("x.test", { dns = dns, ip = {}, cn = {} })
    assert.are.equal("the certificate names h1.test, h2.test, h3.test, h4.test and 3 more, "
      .. "not x.test", many)
    local _, odd = hostname.check("x.test", { dns = { "a\nb" }, ip = {}, cn = {} })
    assert.are.equal("the certificate names a?b, not x.test", odd)
  end)

  describe("with certificates made by openssl", function()
    local dir, made = nil, 0
    helper.scratch_dir(function(d) dir = d end)

    local function names_of(subject, san)
      made = made + 1
      local cert = helper.certificate(dir, "cert" .. made, subject, san)
      return hostname.names(assert(require("ssl").loadcertificate(helper.read(cert))))
    end

    it("reads dNSName, iPAddress and the commonName", function()
      local names = names_of("/O=Test/CN=site.test", "DNS:*.example.test,DNS:localhost,"
        .. "IP:127.0.0.1,IP:::1")
      assert.are.same({ "*.example.test", "localhost" }, names.dns)
      assert.are.same({ "127.0.0.1", "::1" }, names.ip)
      assert.are.same({ "site.test" }, names.cn)
      assert.is_true(check("a.example.test", names))
      assert.is_false(check("a.b.example.test", names))
      assert.is_false(check("example.test", names))
      assert.is_true(check("localhost", names))
      assert.is_true(check("127.0.0.1", names))
      assert.is_true(check("::1", names))
      assert.is_false(check("site.test", names)) -- the CN does not count beside a SAN
    end)

    it("falls back to the commonName of a certificate without subjectAltName", function()
      local names = names_of("/CN=localhost")
      assert.are.same({}, names.dns)
      assert.are.same({}, names.ip)
      assert.is_true(check("localhost", names))
      assert.is_false(check("127.0.0.1", names))
    end)
  end)
end)
