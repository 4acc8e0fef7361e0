-- thinkific.listen with an inbox, in this process, on both engines: the deliveries read in one
-- round of the loop are stored with one accept_many and answered only after it returned
-- (group commit); group_commit = false stores each with accept; a store failure is 503 with
-- Retry-After; an accept_many that raises is 500 for its group, and the server goes on.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local peer = require("spec.http_peer")
local listen = require("thinkific.listen")

-- A raw POST of a signed delivery of event id.
local function post(id)
  local body, headers = engines.delivery(id)
  local lines = { "POST / HTTP/1.1", "Host: 127.0.0.1", "Content-Length: " .. #body }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

-- The inbox as listen sees it, its calls recorded: groups (the size of each accept_many),
-- singles (the number of accept calls); accept_many(group) may be replaced by `many`.
local function recording(inbox, many)
  local calls = { groups = {}, singles = 0 }
  local wrapped = setmetatable({
    accept = function(_, body, headers)
      calls.singles = calls.singles + 1
      return inbox:accept(body, headers)
    end,
    accept_many = function(_, group)
      calls.groups[#calls.groups + 1] = #group
      if many then return many(group) end
      return inbox:accept_many(group)
    end,
  }, { __index = inbox })
  return wrapped, calls
end

describe("thinkific.listen with an inbox", function()
  it("raises for a router and an inbox together, neither, or a bad group_commit", function()
    local router = engines.router()
    helper.argerror(1, "serve", function() listen.serve{ port = 0 } end)
    helper.argerror(1, "serve", function() listen.serve{ router = router, inbox = {}, port = 0 } end)
    helper.argerror(1, "serve", function() listen.serve{ inbox = { accept = print }, port = 0 } end)
    helper.argerror(1, "serve", function()
      listen.serve{ inbox = { accept = print, accept_many = print, router = router },
        group_commit = "yes", port = 0 }
    end)
  end)

  engines.each(function(engine)
    local inbox, server
    before_each(function() inbox = engines.inbox(engine.fresh()) end)
    after_each(function()
      if server then server:close() end
      inbox:close()
    end)

    it("stores the deliveries of one round with one accept_many, and answers after it", function()
      local clients, answered_early = {}, false
      local wrapped, calls = recording(inbox, function(group)
        for _, c in ipairs(clients) do answered_early = answered_early or c:poll() ~= nil end
        return inbox:accept_many(group)
      end)
      local lines = {}
      server = assert(listen.serve{ inbox = wrapped, port = 0,
        log = function(line) lines[#lines + 1] = line end })
      for i = 1, 8 do
        clients[i] = peer.connect(server)
        clients[i]:send(post(tostring(9000 + i)))
      end
      for i = 1, 8 do
        local res = clients[i]:response()
        assert.are.same({ 200, '{"status":"stored"}' }, { res.status, res.body })
      end
      assert.is_false(answered_early, "an answer came before its group was committed")
      assert.are.equal(0, calls.singles)
      local total, largest = 0, 0
      for _, n in ipairs(calls.groups) do
        total, largest = total + n, math.max(largest, n)
      end
      assert.are.equal(8, total)
      assert.is_true(largest >= 4, "groups: " .. table.concat(calls.groups, ", "))
      assert.are.equal(8, inbox:stats().pending)
      assert.are.equal(8, #lines)
      assert.matches("^order%.created 900%d 200 %d+%.%d ms$", lines[1])
      -- A copy is a duplicate, answered the same way.
      local res = peer.exchange(server, post("9001"))
      assert.are.same({ 200, '{"status":"duplicate"}' }, { res.status, res.body })
    end)

    it("stores each delivery on its own with group_commit = false", function()
      local wrapped, calls = recording(inbox)
      server = assert(listen.serve{ inbox = wrapped, group_commit = false, port = 0, log = false })
      for i = 1, 3 do
        local res = peer.exchange(server, post(tostring(9100 + i)))
        assert.are.same({ 200, '{"status":"stored"}' }, { res.status, res.body })
      end
      assert.are.same({ groups = {}, singles = 3 }, calls)
    end)

    it("answers 503 with Retry-After when the store fails; 500 when accept_many raises", function()
      local raise = false
      local wrapped = recording(inbox, function(group)
        if raise then error("a bug") end
        local results = {}
        for i in ipairs(group) do
          results[i] = { status = 503, body = '{"error":"store unavailable"}',
            headers = { ["Retry-After"] = "5" } }
        end
        return results
      end)
      local errors = {}
      server = assert(listen.serve{ inbox = wrapped, port = 0, log = false })
      server.httpd.on_error = function(message) errors[#errors + 1] = message end
      local res = peer.exchange(server, post("9201"))
      assert.are.same({ 503, '{"error":"store unavailable"}', "5" },
        { res.status, res.body, res.headers["retry-after"] })
      raise = true
      res = peer.exchange(server, post("9202"))
      assert.are.same({ 500, '{"error":"the router failed"}' }, { res.status, res.body })
      assert.are.equal(1, #errors)
      assert.matches("^thinkific listen: inbox:accept_many raised: .*a bug", errors[1])
      raise = false
      res = peer.exchange(server, post("9203"))
      assert.are.equal(503, res.status)
    end)
  end)
end)
