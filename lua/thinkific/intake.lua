-- The intake checks of a delivery, in router:handle's order and with its answers: the size
-- (413), the signature over the raw bytes (401), a JSON envelope with id, resource, action and
-- payload (400), an X-Thinkific-Topic that agrees with it (400). router:handle and the inbox
-- both call it, so the inbox refuses exactly what the router refuses.
local core = require("thinkific.core")
local find_header = require("thinkific.headers").find

local verify, decode, null = core.verify, core.decode, core.null
local type, find, gsub = type, string.find, string.gsub

local _M = {}

_M.TOO_LARGE = '{"error":"body too large"}'
_M.NO_SIGNATURE = '{"error":"missing signature"}'
_M.BAD_SIGNATURE = '{"error":"invalid signature"}'
_M.BAD_JSON = '{"error":"body is not JSON"}'
_M.BAD_ENVELOPE = '{"error":"not a Thinkific event: id, resource, action and payload required"}'
_M.BAD_TOPIC = '{"error":"X-Thinkific-Topic disagrees with resource.action"}'

-- Thinkific sends both spellings for one topic: "canceled" is read as "cancelled".
function _M.canonical(topic)
  if not find(topic, "canceled", 1, true) then return topic end -- the common case: no copy
  return (gsub(topic, "%.canceled$", ".cancelled"))
end
local canonical = _M.canonical

-- A header in any case; a list value (OpenResty gives those for repeated headers) gives its first.
function _M.header(headers, name)
  local v = find_header(headers, name)
  if type(v) == "table" then v = v[1] end
  return v
end
local header = _M.header

local function valid_envelope(event)
  if type(event) ~= "table" then return false end
  local id = event.id
  return (type(id) == "string" and id ~= "" or type(id) == "number")
    and type(event.resource) == "string" and type(event.action) == "string"
    and type(event.payload) == "table"
end

--- intake.check(router, raw_body, headers) -> event, topic | nil, status, body, event
-- raw_body a string and headers a table (the caller checks them); router: its secrets and
-- max_body. On success the decoded envelope and its canonical topic; else the refusal as
-- router:handle answers it, with the envelope once it was decoded (for logs).
function _M.check(router, body, headers)
  if #body > router.max_body then return nil, 413, _M.TOO_LARGE end
  local signature = header(headers, "x-thinkific-hmac-sha256")
  if type(signature) ~= "string" or signature == "" then return nil, 401, _M.NO_SIGNATURE end
  if not verify(body, signature, router.secrets) then return nil, 401, _M.BAD_SIGNATURE end
  local event = decode(body)
  if event == nil or event == null then return nil, 400, _M.BAD_JSON end
  if not valid_envelope(event) then return nil, 400, _M.BAD_ENVELOPE end
  local topic = canonical(event.resource .. "." .. event.action)
  local said = header(headers, "x-thinkific-topic")
  if type(said) == "string" and said ~= topic and canonical(said) ~= topic then
    return nil, 400, _M.BAD_TOPIC, event
  end
  return event, topic
end

return _M
