-- thinkific.ngx.store(dict, {ttl}): a de-duplication store for the router on a
-- lua_shared_dict, shared by every worker, with an expiry a raw ngx.shared.DICT lacks.
local argerror = require("thinkific.args").error
local need = require("thinkific.ngx.need")

local type, pairs, tostring, setmetatable = type, pairs, tostring, setmetatable

local _M = {}

local Store = {}
Store.__index = Store

--- store:add(id, value) -> true | false, "exists" | false, message (e.g. "no memory")
function Store:add(id, value)
  if value == nil then value = true end
  local ok, err = self.dict:add(id, value, self.ttl)
  if ok then return true end
  return false, err
end

--- store:delete(id) -> true
function Store:delete(id)
  self.dict:delete(id)
  return true
end

--- thinkific.ngx.store(dict_name, { ttl = seconds }) -> store
function _M.store(name, opts)
  local ngx = need("store")
  if type(name) ~= "string" or name == "" then
    argerror(1, "store", "the name of a lua_shared_dict expected, got " .. type(name))
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror(2, "store", "table expected, got " .. type(opts))
  end
  local ttl = 0
  for k, v in pairs(opts or {}) do
    if k ~= "ttl" then argerror(2, "store", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= "number" or v < 0 or v ~= v then
      argerror(2, "store", "ttl must be a number of seconds >= 0 (0: no expiry)")
    end
    ttl = v
  end
  local dict = ngx.shared[name]
  if not dict then
    argerror(1, "store", ("no lua_shared_dict named '%s': add `lua_shared_dict %s 10m;` to the "
      .. "http block of nginx.conf"):format(name, name))
  end
  return setmetatable({ dict = dict, ttl = ttl, name = name }, Store)
end

return _M
