-- The budget's store in this process's memory (no rate_limit_store): every client of one site
-- in this Lua state shares it. The interface is budget.lua's; times on the monotonic clock.
local now_monotonic = require("thinkific.core").now

local setmetatable, min = setmetatable, math.min

local _M = {}

-- site key -> { grants = { {n =, frees_at =}, … }, blocked_until = t }
local SITES = {}

local Store = {}
Store.__index = Store

-- bound: { site, limit, window }; clock: a function giving seconds (tests), else monotonic.
function _M.new(bound, clock)
  local clock_fn = clock or now_monotonic
  local site = SITES[bound.site]
  if not site or clock then -- a clock of its own: a site of its own too
    site = { grants = {}, blocked_until = -math.huge }
    if not clock then SITES[bound.site] = site end
  end
  return setmetatable({ site = site, limit = bound.limit, window = bound.window, clock = clock_fn },
    Store)
end

-- Drops the grants whose slots are free again; returns the slots in use and when the
-- soonest of them frees (nil when none is).
local function used(site, now)
  local kept, n, soonest = {}, 0, nil
  for _, g in ipairs(site.grants) do
    if g.frees_at > now then
      kept[#kept + 1] = g
      n = n + g.n
      if not soonest or g.frees_at < soonest then soonest = g.frees_at end
    end
  end
  site.grants = kept
  return n, soonest
end

function Store:take(want, lease)
  local site, now = self.site, self.clock()
  if site.blocked_until > now then return 0, site.blocked_until - now end
  local n, soonest = used(site, now)
  local free = self.limit - n
  -- A grant still under way frees no sooner than a window from now.
  if free <= 0 then return 0, min(soonest - now, self.window) end
  local grant = { n = min(want, free), frees_at = now + lease + self.window }
  site.grants[#site.grants + 1] = grant
  return grant.n, grant
end

function Store:finish(grant)
  grant.frees_at = self.clock() + self.window
  return true
end

function Store:block(seconds)
  local site = self.site
  site.blocked_until = math.max(site.blocked_until, self.clock() + seconds)
  return true
end

function Store:look()
  local site, now = self.site, self.clock()
  local n, soonest = used(site, now)
  return n, soonest and soonest - now or 0, math.max(0, site.blocked_until - now)
end

function Store.close() end

return _M
