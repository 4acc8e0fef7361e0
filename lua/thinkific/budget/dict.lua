-- The budget's store on a lua_shared_dict ("ngx:DICT"): every nginx worker's clients of a site
-- share one budget. The interface is budget.lua's.
--
-- A site's budget is `limit` keys, one per slot ("<site>#<i>"), each present while its slot is
-- taken, its expiry the moment the slot frees: a take is dict:add on free keys (the dict says
-- which worker was first: add fails on a key that is there and not expired), a finish sets a
-- key's expiry to a window from now, the 429's block is one more key. Nothing is read and then
-- written, so no lock is needed; a slot frees by itself when its time is up, even when the
-- worker that took it is gone.
local argerror = require("thinkific.args").error
local make_error = require("thinkific.core").error

local rawget, type, tostring, setmetatable, min, max, format = rawget, type, tostring,
  setmetatable, math.min, math.max, string.format

local _M = {}

local Store = {}
Store.__index = Store

-- bound: { site, limit, window }; name: the lua_shared_dict. Raises (a bad argument of `new`)
-- outside nginx or for a dict nginx.conf does not declare.
function _M.new(bound, name)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    argerror(1, "new", "'rate_limit_store' ngx:" .. name .. " needs OpenResty (nginx with ngx_lua)")
  end
  local dict = ngx.shared[name]
  if not dict then
    argerror(1, "new", ("'rate_limit_store': no lua_shared_dict named '%s': add "
      .. "`lua_shared_dict %s 1m;` to the http block of nginx.conf"):format(name, name))
  end
  local keys = {}
  for i = 1, bound.limit do keys[i] = bound.site .. "#" .. i end
  return setmetatable({ dict = dict, keys = keys, blocked = bound.site .. "#blocked",
    window = bound.window, ngx = ngx, name = name, counter = 0 }, Store)
end

-- A value no other take holds: this worker's pid and a counter.
local function ticket(self)
  self.counter = self.counter + 1
  return format("%d-%d", self.ngx.worker.pid(), self.counter)
end

-- Seconds until the key frees: 0 when free. (ttl: nil for a missing key, <= 0 for one that
-- expired but is still in the dict, 0 for one without expiry, which this store never sets.)
local function left(dict, key)
  return max(0, dict:ttl(key) or 0)
end

function Store:take(want, lease)
  local dict = self.dict
  self.ngx.update_time() -- the dict's expiry reads nginx's clock: now, not the loop's last turn
  local blocked = left(dict, self.blocked)
  if blocked > 0 then return 0, blocked end
  local mine, id = {}, ticket(self)
  for _, key in ipairs(self.keys) do
    local ok, err = dict:add(key, id, lease + self.window)
    if ok then
      mine[#mine + 1] = key
      if #mine == want then break end
    elseif err ~= "exists" then -- the dict failed (no memory): give back what was taken
      for _, k in ipairs(mine) do dict:delete(k) end
      return nil, make_error{ kind = "store", store = "ngx:" .. self.name,
        message = ("ngx:%s: cannot take a slot: %s"):format(self.name, tostring(err)) }
    end
  end
  if #mine > 0 then return #mine, { keys = mine, id = id } end
  -- Every slot is taken: the soonest frees first (one under way, no sooner than a window).
  local soonest = self.window
  for _, key in ipairs(self.keys) do soonest = min(soonest, left(dict, key)) end
  return 0, soonest
end

function Store:finish(grant)
  local dict = self.dict
  for _, key in ipairs(grant.keys) do
    -- Only a key still ours: one whose lease ran out may be another take's by now.
    if dict:get(key) == grant.id then dict:set(key, grant.id, self.window) end
  end
  return true
end

function Store:block(seconds)
  local dict = self.dict
  if left(dict, self.blocked) < seconds then dict:set(self.blocked, true, seconds) end
  return true
end

function Store:look()
  local dict, used, soonest = self.dict, 0, nil
  self.ngx.update_time()
  for _, key in ipairs(self.keys) do
    local ttl = left(dict, key)
    if ttl > 0 then
      used = used + 1
      soonest = min(soonest or ttl, ttl)
    end
  end
  return used, soonest or 0, left(dict, self.blocked)
end

function Store.close() end

return _M
