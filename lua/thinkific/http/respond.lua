-- Response tables for the handlers of http/server.lua (the sandbox's, the receiver's):
-- { status, headers, body }.
local encode = require("thinkific.core").encode

local M = {}

M.JSON = "application/json; charset=utf-8"

-- An answer whose body is JSON text already.
function M.json(status, text, headers)
  local h = { ["Content-Type"] = M.JSON }
  for k, v in pairs(headers or {}) do h[k] = v end
  return { status = status, headers = h, body = text }
end

-- {"error": message}, Thinkific's shape for 400/401/403/404.
function M.error(status, message, headers)
  return M.json(status, assert(encode({ error = message })), headers)
end

-- An answer with no body (204).
function M.empty(status)
  return { status = status, headers = {}, body = "" }
end

function M.method_not_allowed(allowed)
  return M.error(405, "Method not allowed", { Allow = allowed })
end

return M
