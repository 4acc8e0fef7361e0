-- Random and mutated requests against the HTTP reader of thinkific.listen (in this process) and
-- of the sandbox (a child process), over 127.0.0.1: truncated, duplicated and oversized
-- headers, bad chunking, garbage bytes, pipelining, slow writes. Each request must get
-- well-formed answers (any status) or a closed connection, in time; the server must stay up
-- (a valid request afterwards gets 200) and within memory bounds.
--
-- The generator is seeded: every failure names its seed and case. Replay with
--   THINKIFIC_FUZZ_SEED=<seed> [THINKIFIC_FUZZ_COUNT=<cases per server, 1000>] \
--     lua5.4 /usr/bin/busted ... spec/http_fuzz_spec.lua
local helper = require("spec.helper")
local peer = require("spec.http_peer")
local thinkific = require("thinkific")
local listen = require("thinkific.listen")
local process = require("thinkific.sandbox.process")

local format, rep, char = string.format, string.rep, string.char

local SEED = tonumber(os.getenv("THINKIFIC_FUZZ_SEED") or "") or (os.time() % 2147483646 + 1)
-- Cases per server: fewer when the collector runs in its stress setting (make asan), where
-- the cases are about the reader, not about lifetimes.
local COUNT = tonumber(os.getenv("THINKIFIC_FUZZ_COUNT") or "")
  or (os.getenv("THINKIFIC_GC_STRESS") and 100 or 1000)
local CASE_TIME = 5 -- seconds for one case: sent, answered or closed
local SECRET = "fuzz-secret"

-- A Park-Miller generator: the same numbers under Lua 5.4 and LuaJIT for a seed, and apart
-- from math.random (which other code may use).
local function generator(seed)
  local state = seed % 2147483646 + 1
  return function(n)
    state = state * 48271 % 2147483647
    return state % n + 1
  end
end

-- Mutations: each takes the generator and a request, returns the mutated request.
local function at(rand, s) return rand(#s + 1) end

local CHUNK_SIZES = { "0x10", "-1", "+5", " 5", "5 x", "5garbage", "ffffffffffffffffff",
  "00000000000000000005", "5;\1", "", "0", "1", "FFFFFF", "5;" .. rep("e", 1100) }

local MUTATIONS = {
  truncate = function(rand, s) return s:sub(1, rand(#s + 1) - 1) end,
  garbage = function(rand, s)
    local bytes = {}
    for i = 1, rand(16) do bytes[i] = char(rand(256) - 1) end
    local i = at(rand, s)
    return s:sub(1, i - 1) .. table.concat(bytes) .. s:sub(i)
  end,
  flip = function(rand, s)
    if s == "" then return s end
    local i = rand(#s)
    return s:sub(1, i - 1) .. char(rand(256) - 1) .. s:sub(i + 1)
  end,
  cut = function(rand, s)
    local i = at(rand, s)
    return s:sub(1, i - 1) .. s:sub(i + rand(32))
  end,
  duplicate_header = function(rand, s)
    local lines = {}
    for line in s:gmatch("[^\r\n]+: [^\r\n]*\r\n") do lines[#lines + 1] = line end
    if #lines == 0 then return s end
    local line = lines[rand(#lines)]
    local i = s:find(line, 1, true)
    return s:sub(1, i - 1) .. line .. s:sub(i)
  end,
  big_header = function(rand, s)
    local sizes = { 100, 8000, 8200, 9000, 70000 }
    return (s:gsub("\r\n", "\r\nX-Big: " .. rep("b", sizes[rand(#sizes)]) .. "\r\n", 1))
  end,
  many_headers = function(rand, s)
    local lines = {}
    for i = 1, 90 + rand(30) do lines[i] = "X-M" .. i .. ": v\r\n" end
    return (s:gsub("\r\n", "\r\n" .. table.concat(lines), 1))
  end,
  framing = function(rand, s)
    local extra = { "Transfer-Encoding: chunked", "Content-Length: 5", "Content-Length: -1",
      "Content-Length: 99999999999999999999", "Transfer-Encoding: gzip, chunked",
      "Content-Length: 1, 2", "Expect: 100-continue", "Expect: nonsense", "Connection: close",
      "Transfer-Encoding : chunked", " Content-Length: 3" }
    return (s:gsub("\r\n", "\r\n" .. extra[rand(#extra)] .. "\r\n", 1))
  end,
  chunk_size = function(rand, s)
    local size = CHUNK_SIZES[rand(#CHUNK_SIZES)]
    local n = 0
    return (s:gsub("\r\n(%x+)\r\n", function()
      n = n + 1
      if n == 1 then return "\r\n" .. size .. "\r\n" end
    end))
  end,
  bare_lf = function(rand, s)
    local n, which = 0, rand(8)
    return (s:gsub("\r\n", function()
      n = n + 1
      if n == which then return "\n" end
    end))
  end,
  rechunk = function(rand, s)
    local head, body = s:match("^(.-\r\n\r\n)(.*)$")
    if not head then return s end
    local chunks = {}
    local i = 1
    while i <= #body do
      local n = math.min(rand(4), #body - i + 1)
      chunks[#chunks + 1] = format("%x\r\n%s\r\n", n, body:sub(i, i + n - 1))
      i = i + n
    end
    head = head:gsub("\r\n[Cc]ontent%-[Ll]ength: %d+", "\r\nTransfer-Encoding: chunked")
    return head .. table.concat(chunks) .. "0\r\n\r\n"
  end,
  pipeline = function(rand, s) return rep(s, 1 + rand(4)) end,
  version = function(rand, s)
    local versions = { "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1", "HTTP/1.12", "HTTP/0.9" }
    return (s:gsub("HTTP/1%.1", versions[rand(#versions)], 1))
  end,
  random = function(rand)
    local bytes = {}
    for i = 1, rand(300) - 1 do bytes[i] = char(rand(256) - 1) end
    return table.concat(bytes)
  end,
}

local MUTATION_NAMES = {}
for name in pairs(MUTATIONS) do MUTATION_NAMES[#MUTATION_NAMES + 1] = name end
table.sort(MUTATION_NAMES)

-- A case: a seed request with 0..3 mutations, split into 1..4 writes. Returns the request,
-- its writes and a description.
local function make_case(rand, seeds)
  local raw = seeds[rand(#seeds)]
  local applied = {}
  for _ = 1, rand(4) - 1 do
    local name = MUTATION_NAMES[rand(#MUTATION_NAMES)]
    raw = MUTATIONS[name](rand, raw)
    applied[#applied + 1] = name
  end
  local writes, from = {}, 1
  for _ = 1, rand(4) - 1 do
    local to = from + rand(math.max(1, #raw - from + 1)) - 1
    writes[#writes + 1] = raw:sub(from, to)
    from = to + 1
  end
  writes[#writes + 1] = raw:sub(from)
  return raw, writes, table.concat(applied, "+")
end

-- Every response in what the server sent before closing: they must all be whole, with a
-- status line, headers and the body their Content-Length says; none after a Connection:
-- close. Returns the statuses. When the case has a HEAD request in it, an answer followed by
-- the next one or by nothing is taken for the answer to HEAD, without a body.
local function check_answers(c, raw)
  local statuses = {}
  local heads = raw:find("HEAD ", 1, true) ~= nil
  while c.buf ~= "" do
    local head_end = c.buf:find("\r\n\r\n", 1, true)
    local after = head_end and c.buf:sub(head_end + 4, head_end + 12) or ""
    local res = c:_parse(heads and (after == "" or after == "HTTP/1.1 "))
    assert(res, "an incomplete response: " .. format("%q", c.buf:sub(1, 200)))
    assert(res.status == 100 or (res.status >= 200 and res.status <= 599),
      "status " .. res.status)
    statuses[#statuses + 1] = res.status
    if res.headers.connection == "close" then
      assert(c.buf == "", "bytes after Connection: close")
    end
  end
  return statuses
end

-- Sends one case (raw, as writes) on a new connection (the writes apart, the server stepped
-- between them), ends the sending side, and waits until the server has closed.
local function run_case(target, raw, writes)
  local c = peer.connect(target.server)
  for i, piece in ipairs(writes) do
    c:send(piece)
    if i < #writes then
      c:drain(CASE_TIME)
      target.server:step(0)
    end
  end
  if not c.closed then c:finish(CASE_TIME) end
  local closed = c:wait_closed(CASE_TIME)
  c:close()
  assert(closed, "the server neither answered nor closed in " .. CASE_TIME .. " s")
  return check_answers(c, raw)
end

-- The valid request answers 200, on a connection of its own.
local function still_up(target)
  local res = peer.exchange(target.server, target.valid)
  assert(res and res.status == 200, "a valid request afterwards got "
    .. tostring(res and res.status or "no answer"))
end

-- Runs COUNT cases against target (server, seeds: requests to mutate, valid: a request that
-- answers 200, offset: to the seed, check_errors() after each case, check_memory() now and
-- then); every failure says how to replay it.
local function fuzz(target)
  local rand = generator(SEED + target.offset)
  for i = 1, COUNT do
    local raw, writes, applied = make_case(rand, target.seeds)
    local ok, err = pcall(function()
      run_case(target, raw, writes)
      target.check_errors()
      if i % 100 == 0 then
        still_up(target)
        target.check_memory()
      end
    end)
    if not ok then
      error(format("%s, seed %d, case %d (%s), request %q: %s\nreplay: THINKIFIC_FUZZ_SEED=%d",
        target.name, SEED, i, applied == "" and "as is" or applied, raw:sub(1, 300),
        tostring(err), SEED), 0)
    end
  end
  local ok, err = pcall(function()
    still_up(target)
    target.check_memory()
  end)
  if not ok then
    error(format("%s, seed %d, after %d cases: %s\nreplay: THINKIFIC_FUZZ_SEED=%d",
      target.name, SEED, COUNT, tostring(err), SEED), 0)
  end
end

local function envelope(id)
  return assert(thinkific.encode({ id = id, resource = "order", action = "created",
    tenant_id = "3", created_at = "2024-01-01T00:00:00.000Z", payload = { id = 1 } }))
end

local function signed_post(id, extra)
  local body = envelope(id)
  return "POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    .. "X-Thinkific-Topic: order.created\r\nX-Thinkific-Hmac-Sha256: "
    .. thinkific.sign(body, SECRET) .. "\r\n" .. (extra or "") .. "Content-Length: " .. #body
    .. "\r\n\r\n" .. body
end

-- A body in three chunks (one with an extension), and trailers.
local function chunked(body)
  local a, b = math.floor(#body / 3), math.floor(2 * #body / 3)
  return format("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n",
    a, body:sub(1, a), b - a, body:sub(a + 1, b), #body - b, body:sub(b + 1))
end

local function signed_chunked_post(id)
  local body = envelope(id)
  return "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Thinkific-Hmac-Sha256: "
    .. thinkific.sign(body, SECRET) .. "\r\n\r\n" .. chunked(body)
end

describe("fuzzing the HTTP reader", function()
  it("listen answers or closes every request, stays up and within memory", function()
    local router = thinkific.router{ secret = SECRET }
    router:on("*", function() end)
    local server = assert(listen.serve{ router = router, port = 0, log = false })
    finally(function() server:close() end)
    -- A bug in the reader or the server is reported here (it would only close the connection).
    local bugs = {}
    server.httpd.on_error = function(message) bugs[#bugs + 1] = message end
    collectgarbage()
    collectgarbage()
    local base = collectgarbage("count") * 1024
    local target = {
      name = "listen", server = server, offset = 0,
      valid = "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      seeds = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        signed_post("fuzz-1"),
        signed_post("fuzz-2", "Expect: 100-continue\r\n"),
        signed_post("fuzz-3", "Connection: close\r\n"),
        signed_chunked_post("fuzz-4"),
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n" .. signed_post("fuzz-5"),
      },
      -- What the server keeps after its connections closed: nothing much.
      check_errors = function() assert(#bugs == 0, bugs[1]) end,
      check_memory = function()
        assert(peer.serve_until(server, function() return server.httpd.nconns == 0 end, 2),
          server.httpd.nconns .. " connections left open")
        collectgarbage()
        collectgarbage()
        local kept = collectgarbage("count") * 1024 - base
        assert(kept < 4e6, format("%.1f MB kept", kept / 1e6))
      end,
    }
    fuzz(target)
  end)

  it("the sandbox answers or closes every request, stays up and within memory", function()
    local sb = helper.sandbox()
    finally(function() sb:stop() end)
    local auth = "Authorization: Bearer " .. sb.api_key .. "\r\n"
    local hook = assert(thinkific.encode({ topic = "order.created",
      target_url = "https://example.com/hooks" }))
    local base = helper.peak_rss(sb.pid)
    local target = {
      name = "sandbox", offset = 1,
      server = peer.remote(sb.port),
      valid = "GET /api/v2/webhooks?limit=1 HTTP/1.1\r\nHost: x\r\n" .. auth .. "\r\n",
      seeds = {
        "GET /api/v2/webhooks HTTP/1.1\r\nHost: x\r\n" .. auth .. "\r\n",
        "GET /api/v2/webhooks?limit=2&next=abc HTTP/1.1\r\nHost: x\r\n" .. auth .. "\r\n",
        "HEAD /api/v2/webhooks HTTP/1.1\r\nHost: x\r\n" .. auth .. "\r\n",
        "POST /api/v2/webhooks HTTP/1.1\r\nHost: x\r\n" .. auth
          .. "Content-Type: application/json\r\nContent-Length: " .. #hook .. "\r\n\r\n" .. hook,
        "POST /api/v2/webhooks HTTP/1.1\r\nHost: x\r\n" .. auth
          .. "Transfer-Encoding: chunked\r\n\r\n" .. chunked(hook),
        "PUT /api/v2/webhooks/1 HTTP/1.1\r\nHost: x\r\n" .. auth .. "Expect: 100-continue\r\n"
          .. "Content-Length: " .. #hook .. "\r\n\r\n" .. hook,
        "DELETE /api/v2/webhooks/1 HTTP/1.1\r\nHost: x\r\n" .. auth .. "Connection: close\r\n\r\n",
        "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
          .. "GET /api/v2/webhooks HTTP/1.1\r\n" .. auth .. "\r\n",
      },
      -- Its stderr (the file is unlinked, the child still holds it): a bug would be there.
      check_errors = function()
        local stderr = process.read_file("/proc/" .. sb.pid .. "/fd/2", 2000) or ""
        assert(stderr == "", stderr)
      end,
      check_memory = function()
        if not base then return end -- make asan: no bound to read (helper.peak_rss)
        local grew = helper.peak_rss(sb.pid) - base
        assert(grew < 16e6, format("the sandbox grew by %.1f MB", grew / 1e6))
      end,
    }
    fuzz(target)
  end)
end)
