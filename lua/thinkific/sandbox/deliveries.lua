-- Deliveries of triggered events to the webhooks' target URLs. Coming with the next issue:
-- each delivery will be a loop coroutine that POSTs the envelope (signed with HMAC-SHA256
-- of the raw body, headers X-Thinkific-Topic, X-Thinkific-Hmac-Sha256,
-- X-Thinkific-Subdomain) through http.lua's client side and retries with backoff; every
-- attempt is recorded here as {event_id, webhook_id, target_url, attempt, status, error, at}.
local json = require("thinkific.sandbox.json")

local M = {}

M.KEYS = { "event_id", "webhook_id", "target_url", "attempt", "status", "error", "at" }

local Deliveries = {}
Deliveries.__index = Deliveries

-- server: the server (its loop, store and secret).
function M.new(server)
  return setmetatable({ server = server, attempts = {} }, Deliveries)
end

function Deliveries:json()
  local texts = {}
  for i, a in ipairs(self.attempts) do texts[i] = json.object(M.KEYS, a) end
  return json.array_of(texts)
end

function Deliveries:clear()
  self.attempts = {}
end

-- Returns { event_id, webhooks }, or nil, { status, message }.
function Deliveries.trigger()
  return nil, { status = 501, message = "not implemented yet" }
end

return M
