-- A password in a URL is never shown. User info is read as RFC 3986 reads it (the authority
-- ends at the first '/', '?' or '#'; the user info precedes its last '@'), and a URL whose
-- '@' signs allow more than one reading (an '@' after the host: a password holding '/', '?'
-- or '#'; or two '@': a password holding '@') is refused by thinkific.new, `thinkific
-- deliver` and `thinkific sandbox trigger` without being echoed. What a message shows of a
-- URL (cli.common.shown_url) drops the user info, the query and the fragment.
local helper = require("spec.helper")
local thinkific = require("thinkific")
local args = require("thinkific.args")

local PASSWORD = "userinfo-password-8264"

-- Base URLs whose password would show if its '/', '?', '#' or '@' ended the user info early.
local AMBIGUOUS = {
  "http://u:pa/" .. PASSWORD .. "@127.0.0.1/api/v2",
  "http://u:p/ss#" .. PASSWORD .. "@127.0.0.1/api/v2",
  "http://u:pa?" .. PASSWORD .. "@127.0.0.1/api/v2",
  "http://u:p@" .. PASSWORD .. "@127.0.0.1/api/v2",
  "https://" .. PASSWORD .. "/x@127.0.0.1/api/v2",
}

describe("user info in URLs", function()
  it("args.url_parts reads the authority and the user info as RFC 3986 does", function()
    local cases = {
      { "http://h/a", { "http", nil, "h", "/a" } },
      { "https://u:p@h:8443/a?q#f", { "https", "u:p", "h:8443", "/a?q#f" } },
      { "http://u:p@ss@h/a", { "http", "u:p@ss", "h", "/a" } },
      { "http://u:p/ss@h/a", { "http", nil, "u:p", "/ss@h/a" } },
      { "http://h?x@y", { "http", nil, "h", "?x@y" } },
      { "http://h#x@y", { "http", nil, "h", "#x@y" } },
      { "HTTP://@h", { "HTTP", "", "h", "" } },
    }
    for _, case in ipairs(cases) do
      assert.are.same(case[2], { args.url_parts(case[1]) }, case[1])
    end
    assert.is_nil(args.url_parts("127.0.0.1/api/v2"))
  end)

  it("thinkific.new refuses a base_url whose user info reads more than one way", function()
    local urls = { "http://127.0.0.1/api/v2/@me" }
    for _, url in ipairs(AMBIGUOUS) do urls[#urls + 1] = url end
    for _, url in ipairs(urls) do
      local msg = helper.argerror(1, "new", function()
        thinkific.new{ api_key = "k", base_url = url }
      end)
      assert.truthy(msg:find("'base_url' may hold one '@', before the host", 1, true), msg)
      assert.is_nil(msg:find(PASSWORD, 1, true), msg)
    end
  end)

  it("thinkific.new takes one '@' before the host, and percent-encoded ones", function()
    for _, url in ipairs({ "http://u:" .. PASSWORD .. "@127.0.0.1/api/v2",
        "http://u:pa%2F%23%3F%40ss@127.0.0.1/api/v2", "http://127.0.0.1/api/v2/%40me",
        "http://127.0.0.1/api/v2" }) do
      local c = thinkific.new{ api_key = "k", base_url = url }
      local text = tostring(c)
      assert.is_nil(text:find(PASSWORD, 1, true), text)
      assert.is_nil(text:find("pa%2F", 1, true), text)
      assert.truthy(text:find("http://127.0.0.1/api/v2", 1, true), text)
      c:close()
    end
  end)

  -- tostring(client) is built in C (src/client.c): the same reading as shown_url, below.
  it("tostring(client) hides user info read as RFC 3986 does, the query and the fragment",
    function()
      local core = require("thinkific.core")
      local function shown(url)
        local c = core.new_client{ authorization = "Bearer k", user_agent = "spec",
          base_url = url, verify_tls = true, timeout = 5, connect_timeout = 5,
          max_response_size = 1024 }
        local text = tostring(c)
        c:close()
        return text:match("^thinkific%.Client %((.*)%): ")
      end
      for _, url in ipairs(AMBIGUOUS) do
        local text = shown(url)
        assert.is_nil(text:find(PASSWORD, 1, true), text)
      end
      assert.are.equal("https://h/api/v2", shown("https://h/api/v2?token=" .. PASSWORD))
      assert.are.equal("https://h/api/v2", shown("https://h/api/v2#" .. PASSWORD))
      assert.are.equal("http://127.0.0.1/api/v2", shown(AMBIGUOUS[2]))
    end)

  it("cli.common.shown_url drops the user info, the query and the fragment", function()
    local shown_url = require("thinkific.cli.common").shown_url
    local cases = {
      { "http://h:8080/a/b", "http://h:8080/a/b" },
      { "http://user:pw@h/x?token=t#frag", "http://h/x" },
      { "https://u:p@ss@h/a", "https://h/a" },
      { "http://user:pa/" .. PASSWORD .. "@127.0.0.1:9/x", "http://127.0.0.1:9/x" },
      { "http://u:p/ss#" .. PASSWORD .. "@127.0.0.1/api/v2", "http://127.0.0.1/api/v2" },
      { "http://u:pa?" .. PASSWORD .. "@127.0.0.1/api/v2", "http://127.0.0.1/api/v2" },
      { "http://h/a?q=1", "http://h/a" },
      { "http://h#x", "http://h" },
      { "u:" .. PASSWORD .. "@h/a?q", "h/a" },
    }
    for _, case in ipairs(cases) do assert.are.equal(case[2], shown_url(case[1]), case[1]) end
    for _, url in ipairs(AMBIGUOUS) do
      assert.is_nil(shown_url(url):find(PASSWORD, 1, true), url)
    end
  end)

  describe("on the command line #lua54", function()
    local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = "userinfo-secret-1934",
      THINKIFIC_API_KEY = "userinfo-api-key-5121" },
      { PASSWORD, "userinfo-secret-1934", "userinfo-api-key-5121" })
    local dir
    helper.scratch_dir(function(d) dir = d end)

    local WHY = "may hold one '@', before the host: percent-encode any other as %40, and '/', "
      .. "'?' or '#' in a user name or password as %2F, %3F or %23"

    it("deliver refuses a URL whose user info reads more than one way (exit 2)", function()
      local payload = helper.write(dir, "p.json", "{}")
      local port = helper.closed_port()
      for _, url in ipairs(AMBIGUOUS) do
        url = url:gsub("127%.0%.0%.1", "127.0.0.1:" .. port)
        local code, out, err = run({ "deliver", url, "--topic", "order.created", "--payload",
          payload })
        assert.are.same({ 2, "" }, { code, out }, err)
        assert.are.equal("thinkific deliver: URL " .. WHY, err:match("([^\n]*)\n$"))
      end
      -- One '@' before the host: sent, and the failure shows the URL without it.
      local code, out, err = run({ "deliver", "http://user:" .. PASSWORD .. "@127.0.0.1:" .. port
        .. "/x?token=" .. PASSWORD, "--topic", "order.created", "--payload", payload })
      assert.are.same({ 1, "" }, { code, out })
      assert.matches("^thinkific deliver: POST http://127%.0%.0%.1:" .. port .. "/x: ", err)
    end)

    it("the API commands and sandbox trigger refuse such a THINKIFIC_BASE_URL (exit 2)", function()
      for _, url in ipairs(AMBIGUOUS) do
        for _, argv in ipairs({ { "webhooks", "list" }, { "events", "get", "1" } }) do
          local code, out, err = run(argv, { THINKIFIC_BASE_URL = url })
          assert.are.same({ 2, "", "thinkific " .. argv[1] .. ": THINKIFIC_BASE_URL: 'base_url' "
            .. WHY .. "\n" }, { code, out, err })
        end
        local code, out, err = run({ "sandbox", "trigger", "order.created" },
          { THINKIFIC_BASE_URL = url })
        assert.are.same({ 2, "" }, { code, out }, err)
        assert.are.equal("thinkific sandbox trigger: $THINKIFIC_BASE_URL " .. WHY,
          err:match("([^\n]*)\n$"))
      end
    end)
  end)
end)
