-- Response tables for the handlers of http/server.lua (the sandbox's, the receiver's):
-- { status, headers, body }.
local encode = require("thinkific.core").encode

local _M = {}

_M.JSON = "application/json; charset=utf-8"

-- An answer whose body is JSON text already.
function _M.json(status, text, headers)
  local h = { ["Content-Type"] = _M.JSON }
  for k, v in pairs(headers or {}) do h[k] = v end
  return { status = status, headers = h, body = text }
end

-- {"error": message}, Thinkific's shape for 400/401/403/404.
function _M.error(status, message, headers)
  return _M.json(status, assert(encode({ error = message })), headers)
end

-- An answer with no body (204).
function _M.empty(status)
  return { status = status, headers = {}, body = "" }
end

function _M.method_not_allowed(allowed)
  return _M.error(405, "Method not allowed", { Allow = allowed })
end

return _M
