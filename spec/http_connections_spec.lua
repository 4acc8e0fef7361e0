-- The connection cap of thinkific.http.server (listen's and the sandbox's), over real sockets
-- on 127.0.0.1: at the cap, a new connection takes the place of the one idle the longest
-- (between requests, or not started yet); when every connection is in the middle of a request
-- the new one is answered 503 with Retry-After, never closed without a word.
local peer = require("spec.http_peer")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")
local socket = require("socket")

local GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
-- A request cut after its headers' first line: its connection is busy, not idle.
local HALF = "POST / HTTP/1.1\r\nHost: x\r\n"

-- Steps the server for `seconds` (it accepts and reads what has arrived).
local function settle(server, seconds)
  peer.serve_until(server, function() return false end, seconds or 0.2)
end

-- A connection whose request was answered (200) and which now waits, idle.
local function idle_after_request(server, raw)
  local c = peer.connect(server)
  c:send(raw)
  local res = c:response()
  assert.are.equal(200, res and res.status)
  return c
end

-- The behaviour, for a server with max_connections = 2 whose `raw` request answers 200.
local function cap_behaviour(new_server, raw)
  local server

  before_each(function() server = new_server() end)
  after_each(function() server:close() end)

  it("at the cap, a new connection replaces the one idle the longest", function()
    local c1 = idle_after_request(server, raw)
    local c2 = idle_after_request(server, raw)
    local c3 = peer.connect(server)
    c3:send(raw)
    local res = c3:response()
    assert.are.equal(200, res and res.status, "the new connection is served")
    assert.is_true(c1:wait_closed(peer.TIMEOUT), "the longest idle is closed")
    c2:send(raw)
    assert.are.equal(200, c2:response().status)
    for _, c in ipairs({ c1, c2, c3 }) do c:close() end
  end)

  it("a connection that has sent nothing yet is idle too", function()
    local c1 = peer.connect(server)
    settle(server)
    local c2 = peer.connect(server)
    settle(server)
    local res = peer.exchange(server, raw)
    assert.are.equal(200, res and res.status)
    assert.is_true(c1:wait_closed(peer.TIMEOUT))
    c2:send(raw)
    assert.are.equal(200, c2:response().status)
    c1:close()
    c2:close()
  end)

  it("when every connection is in the middle of a request, answers 503 with Retry-After",
    function()
      local c1, c2 = peer.connect(server), peer.connect(server)
      c1:send(HALF)
      c2:send(HALF)
      settle(server)
      local c3 = peer.connect(server)
      c3:send(raw)
      local res = c3:response()
      assert.are.equal(503, res and res.status)
      assert.are.equal("close", res.headers.connection)
      assert.matches("^%d+$", res.headers["retry-after"])
      assert.is_true(c3:wait_closed(peer.TIMEOUT))
      -- The busy ones were left alone: each gets its answer.
      for _, c in ipairs({ c1, c2 }) do
        c:send("Content-Length: 0\r\nConnection: close\r\n\r\n")
        local answer = c:response()
        assert.is_truthy(answer, "the busy connection was kept")
        assert.are_not.equal(503, answer.status)
        c:close()
      end
      c3:close()
      -- And with room again, a new connection is served.
      assert.are.equal(200, peer.exchange(server, raw).status)
    end)
end

describe("connection cap, listen", function()
  cap_behaviour(function()
    return assert(listen.serve{ router = thinkific.router{ secret = "x" }, port = 0,
      max_connections = 2, log = false })
  end, GET)
end)

describe("descriptors select cannot take", function()
  it("a connection past select's limit is closed, and the server goes on", function()
    local server = assert(listen.serve{ router = thinkific.router{ secret = "x" }, port = 0,
      log = false })
    -- Files fill the descriptors below the limit, so the next connection's is past it.
    local files = {}
    finally(function()
      for _, f in ipairs(files) do f:close() end
      server:close()
    end)
    for i = 1, (socket._SETSIZE or 1024) + 8 do
      files[i] = io.open("/dev/null")
      if not files[i] then
        pending("needs more than " .. i .. " open files (ulimit -n)")
        return
      end
    end
    -- Accepted before the request arrives: its coroutine would have to wait on it.
    local c = peer.connect(server)
    settle(server)
    c:send(GET)
    assert.is_nil(c:response(), "closed without an answer")
    c:close()
    for _, f in ipairs(files) do f:close() end
    files = {}
    assert.are.equal(200, peer.exchange(server, GET).status)
  end)
end)

describe("connection cap, sandbox #lua54", function()
  local sandbox = require("thinkific.sandbox")
  cap_behaviour(function()
    return assert(sandbox.serve{ port = 0, max_connections = 2 })
  end, "GET /api/v2/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sandbox-key\r\n\r\n")
end)
