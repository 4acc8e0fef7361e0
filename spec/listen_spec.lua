-- thinkific.listen, the local receiver, over real HTTP on 127.0.0.1: in this process (driven
-- by run_until, the clients reading without blocking), and as the `thinkific listen` command.
-- Every wait is bounded.
local helper = require("spec.helper")
local peer = require("spec.http_peer")
local socket = require("socket")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")
local process = require("thinkific.sandbox.process")

local SPEC_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
local REPO = SPEC_DIR .. "/.."
local TIMEOUT = 5
local SECRET = "listen-secret"

local function envelope(id, topic, payload)
  local resource, action = topic:match("^(.-)%.(.*)$")
  return assert(thinkific.encode({ id = id, resource = resource, action = action,
    tenant_id = "3", created_at = "2024-01-01T00:00:00.000Z", payload = payload or { id = 1 } }))
end

-- A raw POST of body, signed unless told otherwise.
local function post(body, opts)
  opts = opts or {}
  local lines = { "POST " .. (opts.path or "/") .. " HTTP/1.1", "Host: 127.0.0.1",
    "Content-Type: application/json", "Content-Length: " .. (opts.length or #body) }
  local topic = opts.topic or "order.created"
  if topic then lines[#lines + 1] = "X-Thinkific-Topic: " .. topic end
  lines[#lines + 1] = "X-Thinkific-Subdomain: acme"
  local signature = opts.signature or thinkific.sign(body, SECRET)
  lines[#lines + 1] = "X-Thinkific-Hmac-Sha256: " .. signature
  if opts.close then lines[#lines + 1] = "Connection: close" end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.partial or body)
end

local client, exchange = peer.connect, peer.exchange

describe("thinkific.listen #memory", function()
  local server, router, seen, lines

  before_each(function()
    seen, lines = {}, {}
    router = thinkific.router{ secret = SECRET }
    router:on("*", function(event, ctx)
      seen[#seen + 1] = { event = event, ctx = ctx }
    end)
    server = assert(listen.serve{ router = router, port = 0,
      log = function(line) lines[#lines + 1] = line end })
  end)

  after_each(function()
    server:close()
  end)

  it("hands a signed delivery to the router and answers its status and body", function()
    assert.matches("^http://127%.0%.0%.1:%d+/$", server.url)
    local body = envelope("20180126172320940835610", "order.created", { id = 19796 })
    local res = exchange(server, post(body, { path = "/any/path?x=1" }))
    assert.are.equal(200, res.status)
    assert.are.equal('{"status":"ok"}', res.body)
    assert.matches("^application/json", res.headers["content-type"])
    assert.are.equal(1, #seen)
    local ctx = seen[1].ctx
    assert.are.equal(19796, seen[1].event.payload.id)
    assert.are.equal("order.created", ctx.topic)
    assert.are.equal("acme", ctx.subdomain)
    assert.are.equal("order.created", ctx.headers["X-Thinkific-Topic"])
    assert.are.equal("order.created", ctx.headers["x-thinkific-topic"])
    assert.are.equal(1, #lines)
    assert.matches("^order%.created 20180126172320940835610 200 %d+%.%d ms$", lines[1])
    assert.is_nil(lines[1]:find(SECRET, 1, true))
    assert.is_nil(lines[1]:find(thinkific.sign(body, SECRET), 1, true))
  end)

  it("answers a tampered body with 401 and runs no handler", function()
    local body = envelope("1", "order.created", { amount_cents = 5000 })
    local tampered = body:gsub("5000", "9000")
    local res = exchange(server, post(tampered, { signature = thinkific.sign(body, SECRET) }))
    assert.are.equal(401, res.status)
    assert.are.equal(0, #seen)
    assert.matches("^order%.created %- 401 ", lines[1])
    res = exchange(server, post(body, { signature = "" }))
    assert.are.equal(401, res.status)
  end)

  it("refuses a 10 MB body with 413 from its Content-Length, unread, and goes on serving",
    function()
      local c = client(server)
      local t0 = socket.gettime()
      -- 64 KiB of the announced 10 MB: the answer comes without the rest ever being sent.
      c:send(post("", { length = 10 * 1024 * 1024, partial = string.rep("x", 65536) }))
      local res = c:response()
      c:close()
      assert.are.equal(413, res.status)
      assert.are.equal("close", res.headers.connection)
      assert.is_true(socket.gettime() - t0 < 3)
      assert.are.equal(0, #seen)
      assert.are.equal(200, exchange(server, post(envelope("2", "order.created"))).status)
      assert.are.equal(1, #seen)
    end)

  it("answers JSON nested 100,000 deep with 400", function()
    local deep = string.rep("[", 100000) .. string.rep("]", 100000)
    local res = exchange(server, post(deep))
    assert.are.equal(400, res.status)
    deep = '{"id":"1","resource":"a","action":"b","payload":' .. string.rep('{"a":', 100000)
      .. "1" .. string.rep("}", 100000) .. "}"
    assert.are.equal(400, exchange(server, post(deep)).status)
    assert.are.equal(0, #seen)
    assert.are.equal(200, exchange(server, post(envelope("3", "order.created"))).status)
  end)

  it("answers malformed requests with 400 or 431 and goes on serving", function()
    for _, raw in ipairs({ "THIS IS NOT HTTP\r\n\r\n", "\0\1\2\r\n\r\n",
      "POST / HTTP/1.1\r\nBad Header\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n" }) do
      local res = exchange(server, raw)
      assert.are.equal(400, res.status, raw)
    end
    local res = exchange(server, "POST / HTTP/1.1\r\nX-Big: " .. string.rep("a", 70000)
      .. "\r\n\r\n")
    assert.are.equal(431, res.status)
    assert.are.equal(0, #seen)
    assert.are.equal(200, exchange(server, post(envelope("4", "order.created"))).status)
  end)

  it("keeps a connection alive across deliveries", function()
    local c = client(server)
    for i = 1, 3 do
      c:send(post(envelope("ka-" .. i, "user.signup"), { topic = "user.signup" }))
      local res = c:response()
      assert.are.equal(200, res.status)
      assert.is_nil(res.headers.connection)
    end
    c:close()
    assert.are.equal(3, #seen)
  end)

  it("serves several connections at once", function()
    local clients = {}
    for i = 1, 12 do
      clients[i] = client(server)
      clients[i]:send(post(envelope("c-" .. i, "order.created")))
    end
    local got = {}
    assert.is_true(server:run_until(function()
      for i, c in ipairs(clients) do got[i] = got[i] or c:poll() end
      return #got == #clients
    end, TIMEOUT))
    for i, c in ipairs(clients) do
      assert.are.equal(200, got[i].status)
      c:close()
    end
    assert.are.equal(12, #seen)
    -- The same event again on a new connection: a duplicate, no handler runs.
    local res = exchange(server, post(envelope("c-1", "order.created")))
    assert.are.equal('{"status":"duplicate"}', res.body)
    assert.are.equal(12, #seen)
  end)

  it("answers GET / with a health text, other paths 404, other methods 405", function()
    local res = exchange(server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(200, res.status)
    assert.matches("^text/plain", res.headers["content-type"])
    assert.truthy(res.body ~= "")
    assert.are.equal(404, exchange(server, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").status)
    res = exchange(server, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert.are.equal(405, res.status)
    assert.truthy(res.headers.allow:find("POST", 1, true))
    assert.are.equal(0, #lines)
  end)

  it("reports a failing handler's 500 (so Thinkific retries) in its log line", function()
    router:on("order.created", function() error("boom") end)
    local res = exchange(server, post(envelope("f-1", "order.created")))
    assert.are.equal(500, res.status)
    assert.matches("^order%.created f%-1 500 %d+%.%d ms$", lines[1])
  end)

  it("run_until gives up at its timeout; a closed server refuses to run", function()
    local t0 = socket.gettime()
    assert.is_false(server:run_until(function() return false end, 0.2))
    local took = socket.gettime() - t0
    assert.is_true(took >= 0.19 and took < 1, took)
    server:step(0)
    server:close()
    server:close()
    assert.has_error(function() server:step(0) end)
    assert.has_error(function() server:run_until(function() return true end, 1) end)
    assert.has_error(function() server:run() end)
  end)
end)

describe("listen.serve", function()
  local router = thinkific.router{ secret = SECRET }

  it("raises on bad options", function()
    helper.argerror(1, "serve", function() listen.serve() end)
    helper.argerror(1, "serve", function() listen.serve{} end)
    helper.argerror(1, "serve", function() listen.serve{ router = {} } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, bogus = 1 } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, port = "80" } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, port = 70000 } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, log = 5 } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, max_connections = 0 } end)
  end)

  it("returns nil, err (a thinkific error, kind network) when it cannot listen", function()
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    local none, err = listen.serve{ router = router, port = tonumber(port), log = false }
    busy:close()
    assert.is_nil(none)
    assert.is_true(thinkific.is_error(err), tostring(err))
    assert.are.equal("network", err.kind)
    assert.matches("^cannot listen on 127%.0%.0%.1 port " .. port .. ": ", err.message)
    assert.matches("^cannot listen on [^\n]+ %(network%)$", tostring(err))
  end)

  -- Closing at the end of a <close> scope: close_lua54_spec.lua.
  it("run returns after stop, and the stopped server is closed", function()
    local server
    local stopper = thinkific.router{ secret = SECRET }
    stopper:on("*", function() server:stop() end)
    server = assert(listen.serve{ router = stopper, port = 0, log = false })
    -- A bound: should the delivery never reach the handler, the server stops after 2 * TIMEOUT.
    local loop = server.httpd.loop
    loop:spawn(function() loop:sleep(2 * TIMEOUT) server:stop() end)
    local c = client(server)
    c:send(post(envelope("stop-1", "order.created")))
    local t0 = socket.gettime()
    server:run()
    assert.is_true(socket.gettime() - t0 < TIMEOUT)
    c:close()
    assert.has_error(function() server:step(0) end)
  end)

  it("logs to a file by default form, and not at all with log = false", function()
    local f = io.tmpfile()
    local server = assert(listen.serve{ router = router, port = 0, log = f })
    assert.are.equal(200, exchange(server, post(envelope("l-1", "order.created"))).status)
    server:close()
    f:seek("set")
    assert.matches("^order%.created l%-1 200 %d+%.%d ms\n$", f:read("a"))
    f:close()
    server = assert(listen.serve{ router = router, port = 0, log = false })
    assert.are.equal(200, exchange(server, post(envelope("l-2", "order.created"))).status)
    server:close()
  end)
end)

describe("thinkific listen (command line)", function()
  local dir

  helper.scratch_dir(function(d) dir = d end)

  local function write(name, text) return helper.write(dir, name, text) end

  local function command(args)
    return string.format("lua5.4 %s/bin/thinkific listen %s", process.quote(REPO), args)
  end

  -- The command is Lua 5.4 whatever runs the specs.
  local LUA_PATH, LUA_CPATH = helper.lua54_paths()
  local ENV = { LUA_PATH_5_4 = LUA_PATH, LUA_CPATH_5_4 = LUA_CPATH,
    LUA_INIT = false, LUA_INIT_5_4 = false }

  -- Runs to the end: exit status, stdout, stderr.
  local function run(args)
    local out, err = dir .. "/out", dir .. "/err"
    local code = helper.execute(string.format("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s timeout 20 %s "
      .. "</dev/null >%s 2>%s", process.quote(LUA_PATH), process.quote(LUA_CPATH),
      command(args), out, err))
    return code, process.read_file(out) or "", process.read_file(err) or ""
  end

  it("prints its URL first, then one line per delivery from a sandbox, never the secret",
    function()
      local sb = helper.sandbox({ port = 0, secret = "cli-very-secret" })
      local rules = write("rules.lua", [[
        local thinkific = require("thinkific")
        local router = thinkific.router{ secret = "cli-very-secret" }
        router:on("order.created", function() end)
        return router
      ]])
      local child = process.start(command("--port 0 " .. process.quote(rules)), ENV)
      local ok, err = pcall(function()
        local url = child:first_line(10)
        assert.matches("^http://127%.0%.0%.1:%d+/$", url)
        local c = helper.client(sb)
        assert(c:create_webhook{ topic = "order.created", target_url = url .. "hooks" })
        c:close()
        local id = assert(sb:trigger("order.created", { id = 1 })).event_id
        assert(sb:wait_deliveries(1, 10))
        local text
        assert.is_true(helper.wait_until(function()
          text = process.read_file(child.out) or ""
          return select(2, text:gsub("\n", "")) >= 2
        end, 5))
        local first, second = text:match("^([^\n]*)\n([^\n]*)\n")
        assert.are.equal(url, first)
        assert.matches("^order%.created " .. id .. " 200 %d+%.%d ms$", second)
        assert.is_nil(text:find("cli-very-secret", 1, true))
        assert.are.equal("", child:stderr())
      end)
      child:stop()
      sb:stop()
      assert(ok, err)
    end)

  it("exits 2 on usage errors, 0 for --help", function()
    local rules = write("ok.lua", 'return require("thinkific").router{ secret = "x" }')
    for _, args in ipairs({ "", "--bogus " .. rules, "--port nope " .. rules,
      "--port 70000 " .. rules, rules .. " " .. rules }) do
      local code, _, err = run(args)
      assert.are.equal(2, code, args)
      assert.matches("thinkific listen: ", err)
    end
    local code, out = run("--help")
    assert.are.equal(0, code)
    assert.matches("RULES", out:upper())
  end)

  it("exits 1 with one line when the rules do not give a router", function()
    local cases = {
      write("number.lua", "return 42"),
      write("nothing.lua", "local x = 1"),
      write("raises.lua", 'error("no database\\nsecond line")'),
      write("syntax.lua", "return {"),
      dir .. "/missing.lua",
    }
    for _, path in ipairs(cases) do
      local code, out, err = run(process.quote(path))
      assert.are.equal(1, code, path)
      assert.are.equal("", out, path)
      assert.matches("^thinkific listen: [^\n]+\n$", err)
    end
  end)

  it("exits 1 when it cannot listen", function()
    local rules = write("ok2.lua", 'return require("thinkific").router{ secret = "x" }')
    local busy = assert(socket.bind("127.0.0.1", 0))
    local _, port = busy:getsockname()
    local code, _, err = run("--port " .. port .. " " .. process.quote(rules))
    busy:close()
    assert.are.equal(1, code)
    assert.are.equal("thinkific listen: cannot listen on 127.0.0.1 port " .. port
      .. ": address already in use\n", err)
  end)
end)
