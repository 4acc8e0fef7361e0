-- thinkific.ngx.store(dict, {ttl}): the router's claim store on a lua_shared_dict, shared by
-- every worker, with the contract of API.md part two (add, set, get, delete; nil, err on a
-- failure) and a default ttl for calls that give none (a raw ngx.shared.DICT has none).
local argerror = require("thinkific.args").error
local need = require("thinkific.ngx.need")

local type, pairs, tostring, setmetatable = type, pairs, tostring, setmetatable

local _M = {}

local Store = {}
Store.__index = Store

-- The ttl of a call: its own when given (0: no expiry), else the store's.
local function ttl_of(self, ttl)
  if ttl == nil then return self.ttl end
  return ttl
end

--- store:add(key, value, ttl) -> true | false, "exists" | nil, message (e.g. "no memory")
function Store:add(key, value, ttl)
  if value == nil then value = true end
  local ok, err = self.dict:add(key, value, ttl_of(self, ttl))
  if ok then return true end
  if err == "exists" then return false, err end
  return nil, err
end

--- store:set(key, value, ttl) -> true | nil, message
function Store:set(key, value, ttl)
  local ok, err = self.dict:set(key, value, ttl_of(self, ttl))
  if ok then return true end
  return nil, err
end

--- store:get(key) -> value | nil (missing or expired) | nil, message
function Store:get(key)
  -- The dict's second result is the user flags after a value, a message after nil.
  local value, err = self.dict:get(key)
  if value == nil and type(err) == "string" then return nil, err end
  return value
end

--- store:delete(key) -> true
function Store:delete(key)
  self.dict:delete(key)
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
