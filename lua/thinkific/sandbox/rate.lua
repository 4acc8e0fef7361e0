-- The sandbox's rate limit (--rate-limit, spawn{ rate_limit }): each site's API requests are
-- counted in fixed windows of `window` seconds (60: Thinkific's minute), and once a window's
-- `limit` is spent the answer is Thinkific's 429 with RateLimit-Reset = the window's end in epoch
-- milliseconds (the form observed in real answers, doc/THINKIFIC.md). A site is its
-- X-Auth-Subdomain, else its credential. Refused requests do not count.
local respond = require("thinkific.http.respond")
local gettime = require("socket").gettime

local floor = math.floor

local _M = {}

local Rate = {}
Rate.__index = Rate

-- limit: requests per window; window: seconds.
function _M.new(limit, window)
  return setmetatable({ limit = limit, window = window, sites = {}, at = nil }, Rate)
end

local function site_of(req)
  local h = req.headers
  local subdomain = h["x-auth-subdomain"]
  if subdomain and subdomain ~= "" then return "subdomain:" .. subdomain:lower() end
  return "credential:" .. tostring(h.authorization)
end

-- Counts req; returns nil when it may go on, else the 429 to answer.
function Rate:check(req)
  local index = floor(gettime() / self.window)
  if index ~= self.at then -- a new window: every site starts again
    self.at, self.sites = index, {}
  end
  local site = site_of(req)
  local used = self.sites[site] or 0
  if used >= self.limit then
    local reset_ms = floor((index + 1) * self.window * 1000 + 0.5)
    return respond.error(429, "Too many requests",
      { ["RateLimit-Reset"] = string.format("%d", reset_ms) })
  end
  self.sites[site] = used + 1
  return nil
end

function Rate:reset()
  self.at, self.sites = nil, {}
end

return _M
