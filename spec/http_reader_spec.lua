-- The HTTP reader shared by thinkific.listen and the sandbox (thinkific.http.message), under
-- hostile requests over real sockets on 127.0.0.1: chunk sizes are strict hex (a lenient
-- parser is a request-smuggling risk behind a proxy that parses differently), a body of a
-- million tiny chunks costs memory in proportion to the body and time linear in it, and every
-- limit says which limit it is. listen runs in this process, the sandbox as a child process.
local helper = require("spec.helper")
local peer = require("spec.http_peer")
local wire = require("spec.sandbox_wire")
local socket = require("socket")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")

local gettime = socket.gettime

local SECRET = "reader-secret"
-- The issue's attack: a body just under listen's 1 MiB limit, in one-byte chunks.
local CHUNKS = 1040000

local function envelope(id)
  return assert(thinkific.encode({ id = id, resource = "order", action = "created",
    tenant_id = "3", created_at = "2024-01-01T00:00:00.000Z", payload = { id = 1 } }))
end

-- A POST of a chunked body (the chunks' text given) to listen, signed for `body`.
local function chunked_post(body, chunks, extra)
  return "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    .. "X-Thinkific-Hmac-Sha256: " .. thinkific.sign(body, SECRET) .. "\r\n\r\n"
    .. chunks .. (extra or "")
end

-- A JSON body of exactly n bytes (an envelope and trailing spaces), for one-byte chunks.
local function padded_envelope(id, n)
  local text = envelope(id)
  return text .. string.rep(" ", n - #text)
end

-- The chunks of body, one byte each (plus the last chunk and the end of the trailers).
local function one_byte_chunks(body)
  return (body:gsub(".", "1\r\n%0\r\n")) .. "0\r\n\r\n"
end

-- Chunk size lines that must be refused, each with a body of "hello" behind it; the
-- comment says what a lenient reader did with it.
local BAD_SIZES = {
  "0x5",                 -- read as 0: the last chunk, "hello" the next request
  "5garbage",            -- read as 5
  "+5", "-5", " 5", "5 x", "5\tgarbage",
  "5\0",                 -- NUL behind the digits
  "5;ext\1",             -- a control character in an extension
  "00000000000000005",   -- 17 hex digits
  "10000000000000000",   -- 2^64: wraps to 0 in a 64-bit integer
  "",                    -- no size at all
}

-- Lines good for 5: hex digits, optionally an extension (with whitespace before it).
local GOOD_SIZES = { "5", "05", "5;name=value", "5 ; name=\"quoted value\"", "5;a;b=c" }

-- HEAD is answered with GET's status and headers and no body: a body there would be read as
-- the start of the next answer on the connection. Two HEADs in a row on one connection.
local function head_twice(server, target, extra)
  local c = peer.connect(server)
  local head = "HEAD " .. target .. " HTTP/1.1\r\nHost: x\r\n" .. (extra or "") .. "\r\n"
  c:send(head .. head)
  c:finish()
  assert.is_true(c:wait_closed(peer.TIMEOUT))
  c:close()
  local statuses = {}
  for status in c.buf:gmatch("HTTP/1%.1 (%d%d%d) [^\r\n]*\r\n") do
    statuses[#statuses + 1] = status
  end
  local one = c.buf:match("^(.-\r\n\r\n)")
  assert.are.equal(2 * #one, #c.buf, "no body after the headers: " .. c.buf)
  return statuses, one
end

describe("the HTTP reader, listen", function()
  local server, seen

  before_each(function()
    seen = {}
    local router = thinkific.router{ secret = SECRET }
    router:on("*", function(event) seen[#seen + 1] = event end)
    server = assert(listen.serve{ router = router, port = 0, log = false })
  end)

  after_each(function()
    server:close()
  end)

  it("refuses a chunk size that is not plain hex with 400, and reads nothing after it", function()
    -- The issue's case: 0x10 read as a last chunk, and the smuggled request after it served.
    local c = peer.connect(server)
    c:send(chunked_post("", "0x10\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.are.equal(400, c:response().status)
    assert.is_nil(c:response())
    c:close()
    local body = envelope("bad-size")
    for _, size in ipairs(BAD_SIZES) do
      c = peer.connect(server)
      -- A lenient reader answers the POST and then this GET as a second request.
      c:send(chunked_post(body, size .. "\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      local res = c:response()
      assert.are.equal(400, res and res.status, ("%q"):format(size))
      assert.are.equal("close", res.headers.connection)
      assert.is_nil(c:response(), ("a second answer after %q"):format(size))
      c:close()
    end
    assert.are.equal(0, #seen)
  end)

  it("accepts hex sizes with and without extensions", function()
    local body = envelope("good-size")
    local chunked = {}
    for _, size in ipairs(GOOD_SIZES) do
      local piece = body:sub(1, 5)
      chunked[#chunked + 1] = size .. "\r\n" .. piece .. "\r\n"
      body = body:sub(6)
    end
    local sent = envelope("good-size")
    local chunks = table.concat(chunked) .. string.format("%x", #body) .. "\r\n" .. body
      .. "\r\n0;last\r\nX-Trailer: dropped\r\n\r\n"
    local res = peer.exchange(server, chunked_post(sent, chunks))
    assert.are.equal(200, res.status)
    assert.are.equal(1, #seen)
  end)

  it("refuses a chunk size line longer than its limit, and a chunk without its CR LF", function()
    local body = envelope("long-line")
    local res = peer.exchange(server, chunked_post(body, "5;" .. string.rep("x", 2000)
      .. "\r\nhello\r\n0\r\n\r\n"))
    assert.are.equal(400, res.status)
    assert.matches("Chunk size line longer than 1024 bytes", res.body, 1, true)
    local unframed = { "5\r\nhelloXX0\r\n\r\n", "5\nhello\n0\n\n", "5\r\nhello\n0\r\n\r\n" }
    for _, chunks in ipairs(unframed) do
      res = peer.exchange(server, chunked_post(body, chunks))
      assert.are.equal(400, res.status, ("%q"):format(chunks))
    end
    assert.are.equal(0, #seen)
  end)

  it("reads a million one-byte chunks in memory proportional to the body, and in time",
    function()
      local body = padded_envelope("tiny-chunks", CHUNKS)
      local raw = chunked_post(body, one_byte_chunks(body))
      local c = peer.connect(server)
      collectgarbage()
      collectgarbage()
      local base, peak = collectgarbage("count") * 1024, 0
      local t0 = gettime()
      c:send(raw)
      local res
      -- The live memory between the server's steps (the request half read): what it keeps.
      assert.is_true(peer.serve_until(server, function()
        collectgarbage()
        peak = math.max(peak, collectgarbage("count") * 1024 - base)
        res = res or c:poll()
        return res ~= nil or c.closed
      end, 60), "no answer in 60 s")
      local took = gettime() - t0
      c:close()
      assert.are.equal(200, res and res.status)
      assert.are.equal(1, #seen)
      assert.is_true(peak < 4 * #body, ("%.1f MB kept for a %.1f MB body"):format(peak / 1e6,
        #body / 1e6))
      assert.is_true(took < 20, ("%.1f s for %d chunks"):format(took, CHUNKS))
    end)

  it("says which limit a request passed", function()
    local res = peer.exchange(server, "GET /" .. string.rep("a", 9000) .. " HTTP/1.1\r\n\r\n")
    assert.are.equal(414, res.status)
    assert.matches("Request line longer than 8192 bytes", res.body, 1, true)
    res = peer.exchange(server, "POST / HTTP/1.1\r\nX-Big: " .. string.rep("a", 9000) .. "\r\n\r\n")
    assert.are.equal(431, res.status)
    assert.matches("Header line longer than 8192 bytes", res.body, 1, true)
    local many = {}
    for i = 1, 101 do many[i] = "X-H" .. i .. ": v" end
    res = peer.exchange(server, "GET / HTTP/1.1\r\n" .. table.concat(many, "\r\n") .. "\r\n\r\n")
    assert.are.equal(431, res.status)
    assert.matches("More than 100 header fields", res.body, 1, true)
    -- 300 KiB of headers in 8000-byte lines: the header limit, not the body's.
    local lines = {}
    for i = 1, 38 do lines[i] = "X-H" .. i .. ": " .. string.rep("a", 8000) end
    res = peer.exchange(server, "GET / HTTP/1.1\r\n" .. table.concat(lines, "\r\n") .. "\r\n\r\n")
    assert.are.equal(431, res.status)
    assert.matches("Header fields larger than 65536 bytes in all", res.body, 1, true)
    res = peer.exchange(server, "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
    assert.are.equal(413, res.status)
    assert.matches("Request body larger than 1048576 bytes", res.body, 1, true)
    res = peer.exchange(server, chunked_post("", "100001\r\n"))
    assert.are.equal(413, res.status)
    assert.matches("Request body larger than 1048576 bytes", res.body, 1, true)
  end)

  it("answers HEAD with no body, whatever the status", function()
    local get = peer.exchange(server, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local statuses, head = head_twice(server, "/")
    assert.are.same({ "200", "200" }, statuses)
    assert.matches("\r\nContent%-Length: " .. #get.body .. "\r\n", head)
    assert.are.same({ "404", "404" }, (head_twice(server, "/nowhere")))
  end)
end)

describe("the HTTP reader, sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end, { reset = false, delivery_attempts = 1 })

  -- A POST to the API with a chunked body; returns the connection.
  local function chunked(chunks)
    local c = wire.connect(sb)
    c:send_raw("POST /api/v2/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " .. wire.KEY
      .. "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunks)
    return c
  end


  it("refuses a chunk size that is not plain hex with 400, and reads nothing after it", function()
    for _, size in ipairs(BAD_SIZES) do
      local c = chunked(size .. "\r\nhello\r\n0\r\n\r\nGET /api/v2/webhooks HTTP/1.1\r\n"
        .. "Authorization: Bearer " .. wire.KEY .. "\r\n\r\n")
      local status, headers = c:receive()
      assert.are.equal(400, status, ("%q"):format(size))
      assert.are.equal("close", headers.connection)
      assert.is_nil((c:receive()), ("a second answer after %q"):format(size))
      c:close()
    end
  end)

  it("reads a million one-byte chunks in memory proportional to the body, and in time",
    function()
      -- A webhook no delivery of the tests below goes to (nor anywhere off this machine).
      local body = assert(thinkific.encode({ topic = "user.signup",
        target_url = "http://127.0.0.1:9/unused" }))
      body = body .. string.rep(" ", CHUNKS - #body)
      local raw = one_byte_chunks(body)
      local before = helper.peak_rss(sb.pid)
      local t0 = gettime()
      local c = chunked(raw)
      local status = c:receive()
      local took = gettime() - t0
      c:close()
      assert.are.equal(201, status)
      if before then
        local grew = helper.peak_rss(sb.pid) - before
        assert.is_true(grew < 4 * #body, ("the sandbox grew by %.1f MB for a %.1f MB body")
          :format(grew / 1e6, #body / 1e6))
      end
      assert.is_true(took < 20, ("%.1f s for %d chunks"):format(took, CHUNKS))
    end)

  it("answers HEAD with no body, whatever the status", function()
    local auth = "Authorization: Bearer " .. wire.KEY .. "\r\n"
    assert.are.same({ "405", "405" }, (head_twice(peer.remote(sb.port),
      "/api/v2/webhooks", auth)))
    assert.are.same({ "404", "404" }, (head_twice(peer.remote(sb.port),
      "/nowhere", auth)))
  end)

  -- The sandbox reads its deliveries' answers with the same reader: a delivery's error
  -- names the limit the answer passed.
  it("says which limit a delivery's answer passed", function()
    local srv = assert(socket.bind("127.0.0.1", 0))
    srv:settimeout(wire.TIMEOUT)
    local _, port = srv:getsockname()
    local url = ("http://127.0.0.1:%d/hooks"):format(port)
    local c = helper.client(sb)
    local hook = assert(c:create_webhook{ topic = "order.created", target_url = url })
    c:close()
    finally(function()
      srv:close()
      local cleanup = helper.client(sb)
      cleanup:delete_webhook(hook.id)
      cleanup:close()
    end)
    local big = {}
    for i = 1, 9 do big[i] = "X-H" .. i .. ": " .. string.rep("h", 8000) .. "\r\n" end
    local answers = {
      { "HTTP/1.1 200 OK\r\n" .. table.concat(big) .. "Content-Length: 0\r\n\r\n",
        "response headers too large: header fields larger than 65536 bytes in all" },
      { "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n",
        "response larger than 1048576 bytes" },
    }
    for i, case in ipairs(answers) do
      assert(sb:trigger("order.created", { id = i }))
      local conn = assert(srv:accept())
      conn:settimeout(wire.TIMEOUT)
      repeat local line = assert(conn:receive("*l")) until line == ""
      conn:send(case[1])
      local mine
      assert.is_true(helper.wait_until(function()
        mine = {}
        for _, d in ipairs(assert(sb:deliveries())) do
          if d.target_url == url then mine[#mine + 1] = d end
        end
        return #mine == i
      end, wire.TIMEOUT))
      conn:close()
      assert.are.equal(case[2], mine[i].error)
    end
  end)
end)

describe("the HTTP reader's time bound", function()
  local http_server = require("thinkific.http.server")

  it("gives a request request_time from its first byte on, its first line included", function()
    local server = assert(http_server.new({ port = 0, idle_timeout = 10,
      limits = { request_time = 0.5 }, handle = function() return { status = 204 } end }))
    finally(function() server:close() end)
    -- Idle, a connection waits for idle_timeout; its request, once begun, has request_time.
    local c = peer.connect(server)
    local t0 = gettime()
    c:send("GET / HT")
    assert.is_true(c:wait_closed(5), "not closed")
    c:close()
    local took = gettime() - t0
    assert.is_true(took > 0.4 and took < 2, ("closed after %.1f s"):format(took))
  end)
end)
