-- thinkific.ngx.client(opts): thinkific.new with the nginx transport and ngx.sleep filled in.
local argerror = require("thinkific.args").error
local need = require("thinkific.ngx.need")
local transport = require("thinkific.ngx.transport").transport

local type, pairs, require = type, pairs, require

local _M = {}

--- thinkific.ngx.client(opts) -> client: thinkific.new(opts) with transport =
-- transport{ location = opts.location } and sleep = ngx.sleep unless given.
function _M.client(opts)
  local ngx = need("client")
  if type(opts) ~= "table" then argerror(1, "client", "table expected, got " .. type(opts)) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local location = o.location
  o.location = nil
  if location ~= nil and type(location) ~= "string" then
    argerror(1, "client", "option 'location' must be a string, got " .. type(location))
  end
  if o.transport == nil then o.transport = transport{ location = location } end
  if o.sleep == nil then o.sleep = ngx.sleep end
  return require("thinkific").new(o)
end

return _M
