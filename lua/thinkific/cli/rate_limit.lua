-- The command line's rate limit: its settings from the environment (for common.api), and what
-- long jobs say about it: the time left on their progress line (pace), and a line before a job
-- that will take more than a minute (announce). The sandbox's own command loads none of this.
local common = require("thinkific.cli.common")
local budget = require("thinkific.budget")

local nonempty = common.nonempty

local _M = {}

-- The rate limit's settings from THINKIFIC_RATE_LIMIT (a number of requests per minute, or
-- off), THINKIFIC_RATE_LIMIT_STORE and THINKIFIC_RATE_WINDOW, as options of thinkific.new
-- ({ limit, store, window }: nil for the client's defaults), or nil and a usage error's message.
function _M.options(getenv, base_url)
  local limit = nonempty(getenv, common.ENV_RATE_LIMIT)
  if limit == "off" then
    limit = false
  elseif limit then
    limit = limit:find("^%d+$") and #limit <= 9 and tonumber(limit)
    if not limit or limit < 1 then
      return nil, common.ENV_RATE_LIMIT .. " must be a number of requests per minute (1 or more), or off"
    end
    limit = math.tointeger(limit)
  end
  local store = nonempty(getenv, common.ENV_RATE_LIMIT_STORE)
  if store and (limit == false or (limit == nil
      and not budget.default_limit(base_url or "https://api.thinkific.com"))) then
    return nil, string.format("%s needs a rate limit: set %s (there is no default against a "
      .. "base URL other than Thinkific's API)", common.ENV_RATE_LIMIT_STORE, common.ENV_RATE_LIMIT)
  end
  local window = nonempty(getenv, common.ENV_RATE_WINDOW)
  if window then
    window = tonumber(window)
    if not window or not (window > 0 and window <= 60) then
      return nil, common.ENV_RATE_WINDOW .. " must be a number of seconds, over 0 and at most 60"
    end
  end
  return { limit = limit, store = store, window = window }
end

-- "45 s", "2 min 5 s", "1 h 20 min": a duration as a person reads it (seconds rounded up).
function _M.duration(seconds)
  local s = math.ceil(seconds)
  if s < 60 then return s .. " s" end
  if s < 3600 then
    return s % 60 == 0 and (s // 60 .. " min") or string.format("%d min %d s", s // 60, s % 60)
  end
  local m = (s + 59) // 60
  return m % 60 == 0 and (m // 60 .. " h") or string.format("%d h %d min", m // 60, m % 60)
end

-- "120/min", or "5 per 1 s" for a window other than a minute (tests).
local function rate_text(state)
  if state.window == 60 then return state.limit .. "/min" end
  return string.format("%d per %g s", state.limit, state.window)
end

-- The pace of a job of `client` under its rate limit: pace(requests) -> the time those many
-- more requests take at the current budget, as ", about 2 min 5 s left at 120/min" (", under a
-- second left at …"), or "" when the client has no limit or its store does not answer. Reads
-- client:budget() at most once a second (with a shared store, each read is a query).
function _M.pace(client)
  local now = require("thinkific.core").now
  local state, read_at = nil, -math.huge
  return function(requests)
    if requests <= 0 then return "" end
    if now() - read_at >= 1 then
      state, read_at = client:budget(), now()
    end
    if not state then return "" end
    local seconds = budget.time_for(state, requests)
    return string.format(", %s left at %s", seconds < 1 and "under a second"
      or "about " .. _M.duration(seconds), rate_text(state))
  end
end

-- Says on stderr, before a job of `requests` requests starts, when the client's rate limit
-- makes it take more than a minute: "thinkific events: 600 requests at 120/min: this takes
-- about 4 min".
function _M.announce(prog, client, requests)
  local state = client:budget()
  if not state then return end
  local seconds = budget.time_for(state, requests)
  if seconds <= 60 then return end
  io.stderr:write(string.format("%s: %d requests at %s: this takes about %s\n", prog,
    requests, rate_text(state), _M.duration(seconds)))
end

return _M
