-- thinkific.http.loop's rounds: with gather, what arrives on a socket while the round's
-- coroutines run joins that round (before after_round, which commits a group in listen);
-- without it, it waits for the next round. On loopback sockets, every wait bounded.
local socket = require("socket")
local loop_mod = require("thinkific.http.loop")

-- n connected pairs on 127.0.0.1: the client ends and the server ends.
local function pairs_of(n)
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  local clients, servers = {}, {}
  for i = 1, n do
    clients[i] = assert(socket.connect("127.0.0.1", port))
    listener:settimeout(5)
    servers[i] = assert(listener:accept())
    servers[i]:settimeout(0)
  end
  listener:close()
  return clients, servers
end

-- A loop whose coroutine i reads one line from servers[i] into the round's list; reading
-- "a" makes the client of the second pair send its own line, as a peer would meanwhile.
-- Returns the lists of each round (after_round) and a function that runs one round.
local function rounds_of(gather)
  local clients, servers = pairs_of(2)
  local rounds, current = {}, {}
  local loop = loop_mod.new({
    on_error = function(e) error(e) end,
    gather = gather and function() return #current > 0 end or nil,
    after_round = function()
      if #current > 0 then rounds[#rounds + 1] = current end
      current = {}
    end,
  })
  for i = 1, 2 do
    loop:spawn(function()
      assert(loop:wait(servers[i], "r", socket.gettime() + 5))
      local line = servers[i]:receive("*l")
      current[#current + 1] = line
      if line == "a" then
        assert(clients[2]:send("b\n"))
        socket.sleep(0.05) -- (loopback: there by now)
      end
    end)
  end
  assert(clients[1]:send("a\n"))
  local function close()
    for i = 1, 2 do
      clients[i]:close()
      servers[i]:close()
    end
  end
  return rounds, function() loop:step(1) end, close
end

describe("thinkific.http.loop", function()
  it("with gather, takes into the round what arrived while it ran", function()
    local rounds, step, close = rounds_of(true)
    step()
    close()
    assert.are.same({ { "a", "b" } }, rounds)
  end)

  it("without gather, leaves it to the next round", function()
    local rounds, step, close = rounds_of(false)
    step()
    step()
    close()
    assert.are.same({ { "a" }, { "b" } }, rounds)
  end)
end)
