-- The claim store contract of API.md part two as cases every store must pass: run by
-- spec/claims_spec.lua against the in-memory store and a user's table store, and inside nginx
-- by spec/nginx/claims_ngx.lua against thinkific.ngx.store and a raw ngx.shared.DICT. Plain Lua
-- (nginx has no busted): a case raises on failure. Each case gets its own key prefix, so one
-- store can serve them all; env.sleep(seconds) waits (socket.sleep, ngx.sleep).
local contract = {}

local function same(want, got, what)
  if got ~= want then
    error(("%s: expected %s, got %s"):format(what, tostring(want), tostring(got)), 2)
  end
end

-- What the router counts as a failed set or delete: an explicit false, or nil with a message
-- (a raw dict's delete returns nothing at all).
local function failed(ok, err)
  return ok == false or (ok == nil and err ~= nil)
end

local function succeeds(what, ok, err)
  if failed(ok, err) then error(what .. " failed: " .. tostring(err), 2) end
end

contract.cases = {
  { "add claims a new key once, then says exists", function(store, key)
    same(true, (store:add(key, "running", 10)), "first add")
    local again, err = store:add(key, "other", 10)
    same(false, not not again, "second add")
    same("exists", err, "second add's message")
    same("running", (store:get(key)), "get after add")
  end },

  { "set overwrites, get reads, a missing key reads nil without a message", function(store, key)
    succeeds("set", store:set(key, "running", 10))
    succeeds("set", store:set(key, "done", 10))
    same("done", (store:get(key)), "get after set")
    local v, err = store:get(key .. ":missing")
    same(nil, v, "get of a missing key")
    same(nil, err, "get of a missing key, its message")
  end },

  { "keeps true (as 0.1.0 wrote), running and done", function(store, key)
    for i, value in ipairs({ true, "running", "done" }) do
      same(true, (store:add(key .. i, value, 10)), "add " .. tostring(value))
      same(value, (store:get(key .. i)), "get " .. tostring(value))
    end
  end },

  { "delete forgets; a missing key is no failure; the key can be claimed again", function(store, key)
    same(true, (store:add(key, "running", 10)), "add")
    succeeds("delete", store:delete(key))
    same(nil, (store:get(key)), "get after delete")
    succeeds("delete of a missing key", store:delete(key))
    same(true, (store:add(key, "running", 10)), "add after delete")
  end },

  { "expires after ttl seconds (fractions), per call; 0: never", function(store, key, env)
    same(true, (store:add(key .. "a", "running", 0.2)), "add a")
    succeeds("set b", store:set(key .. "b", "done", 0.2))
    same(true, (store:add(key .. "c", "running", 0.2)), "add c")
    succeeds("set c", store:set(key .. "c", "done", 30)) -- set's ttl replaces add's
    same(true, (store:add(key .. "d", "running", 0)), "add d")
    succeeds("set e", store:set(key .. "e", "done", 0))
    env.sleep(0.4)
    same(nil, (store:get(key .. "a")), "a after its ttl")
    same(nil, (store:get(key .. "b")), "b after its ttl")
    same("done", (store:get(key .. "c")), "c, kept by set's ttl")
    same("running", (store:get(key .. "d")), "d, ttl 0")
    same("done", (store:get(key .. "e")), "e, ttl 0")
    same(true, (store:add(key .. "a", "running", 10)), "add after expiry")
  end },
}

-- Runs every case against store, each with its own key prefix; returns a list of
-- { name = case, error = message } (no error: passed).
function contract.run(store, env, prefix)
  local results = {}
  for i, case in ipairs(contract.cases) do
    local ok, err = pcall(case[2], store, prefix .. ":" .. i, env)
    results[i] = { name = case[1], error = not ok and tostring(err) or nil }
  end
  return results
end

return contract
