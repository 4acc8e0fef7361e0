-- thinkific.ngx.redis_store{...}: the router's claim store (API.md part two) on Redis through
-- cosockets, so that several nginx hosts share their claims. lua-resty-redis does the talking:
-- Debian's lua-nginx-redis (0.27, `require("nginx.redis")`) or OpenResty's `resty.redis`. Only
-- methods that 0.27 has are called: it sends any unknown method name to Redis as a command, so
-- a call of `set_timeouts` (newer versions only) would silently lose the timeout.
-- Each call takes a connection from the worker's pool and gives it back after a whole answer;
-- after an error it is closed. Values are stored as JSON ("running", "done", true).
local argerror = require("thinkific.args").error
local need = require("thinkific.ngx.need")
local core = require("thinkific.core")

local type, pairs, ipairs, tostring, pcall, require, error, setmetatable = type, pairs, ipairs,
  tostring, pcall, require, error, setmetatable
local ceil, huge = math.ceil, math.huge
local encode, decode = core.encode, core.decode

local _M = {}

local FNAME = "redis_store"
local DEFAULTS = { host = "127.0.0.1", port = 6379, db = 0, prefix = "thinkific:", timeout = 1,
  pool_size = 64, keepalive = 60 }
local KNOWN = { host = true, port = true, password = true, db = true, prefix = true,
  timeout = true, pool_size = true, keepalive = true }

-- Each store's password, kept out of its fields (nothing that prints a store shows it).
local passwords = setmetatable({}, { __mode = "k" })

local Store = {}
Store.__index = Store

function Store:__tostring()
  return ("thinkific.ngx.redis_store(%s, db %d, prefix %q)"):format(self.where, self.db,
    self.prefix)
end

-- Logs what failed (never the password: no message here is built with it) and returns it as
-- the store's nil, err.
local function failure(self, what, err)
  local message = ("redis %s failed on %s: %s"):format(what, self.where, tostring(err))
  self.ngx.log(self.ngx.ERR, "thinkific.ngx.redis_store: ", message)
  return nil, message
end

-- A connection, authenticated and on the store's db: from the pool, or a fresh one that gets
-- AUTH and SELECT first. nil, err (logged) on a failure; the connection is then closed.
local function connect(self)
  local red, err = self.redis:new()
  if not red then return failure(self, "socket", err) end
  red:set_timeout(self.timeout_ms)
  local ok
  ok, err = red:connect(self.host, self.port, self.pool)
  if not ok then return failure(self, "connect", err) end
  if red:get_reused_times() == 0 then
    local password = passwords[self]
    if password then
      ok, err = red:auth(password)
      if not ok then
        red:close()
        return failure(self, "AUTH", err)
      end
    end
    if self.db ~= 0 then
      ok, err = red:select(self.db)
      if not ok then
        red:close()
        return failure(self, "SELECT " .. self.db, err)
      end
    end
  end
  return red
end

-- Runs one command ("set", key, ...) on a pooled connection: its reply (ngx.null included),
-- or nil, err for a network failure, a timeout or an error reply (false from lua-resty-redis).
local function command(self, name, key, ...)
  local red, err = connect(self)
  if not red then return nil, err end
  local res
  res, err = red[name](red, key, ...)
  if res == nil or res == false then
    red:close()
    return failure(self, name:upper() .. " " .. key, err)
  end
  if not red:set_keepalive(self.keepalive_ms, self.pool_size) then red:close() end
  return res
end

local function check_key(key, fname)
  local t = type(key)
  if t ~= "string" and t ~= "number" then
    argerror(1, fname, "key must be a string or a number, got " .. t)
  end
end

-- The stored text of a value: JSON of a string, number or boolean (true by default).
local function stored(value, fname)
  if value == nil then value = true end
  local t = type(value)
  if t ~= "string" and t ~= "number" and t ~= "boolean" then
    argerror(2, fname, "value must be a string, a number or a boolean, got " .. t)
  end
  return encode(value)
end

-- PX's milliseconds for a ttl in seconds; nil for no expiry (nil or 0). Rounded up, so that a
-- tiny ttl never becomes 0 (which Redis refuses).
local function px(ttl, fname)
  if ttl == nil or ttl == 0 then return nil end
  if type(ttl) ~= "number" or ttl < 0 or ttl ~= ttl or ttl == huge then
    argerror(3, fname, "ttl must be a number of seconds >= 0 (0 or nil: no expiry)")
  end
  return ceil(ttl * 1000)
end

--- store:add(key, value, ttl) -> true | false, "exists" | nil, err
function Store:add(key, value, ttl)
  check_key(key, "add")
  local text, ms = stored(value, "add"), px(ttl, "add")
  local res, err
  if ms then
    res, err = command(self, "set", self.prefix .. key, text, "NX", "PX", ms)
  else
    res, err = command(self, "set", self.prefix .. key, text, "NX")
  end
  if res == nil then return nil, err end
  if res == self.ngx.null then return false, "exists" end
  return true
end

--- store:set(key, value, ttl) -> true | nil, err
function Store:set(key, value, ttl)
  check_key(key, "set")
  local text, ms = stored(value, "set"), px(ttl, "set")
  local res, err
  if ms then
    res, err = command(self, "set", self.prefix .. key, text, "PX", ms)
  else
    res, err = command(self, "set", self.prefix .. key, text)
  end
  if res == nil then return nil, err end
  return true
end

--- store:get(key) -> value | nil (missing or expired) | nil, err
-- A text that is not JSON (written by something else) is returned as it is.
function Store:get(key)
  check_key(key, "get")
  local res, err = command(self, "get", self.prefix .. key)
  if res == nil then return nil, err end
  if res == self.ngx.null then return nil end
  local value = decode(res)
  if value == nil or value == core.null then return res end
  return value
end

--- store:delete(key) -> true | nil, err
function Store:delete(key)
  check_key(key, "delete")
  local res, err = command(self, "del", self.prefix .. key)
  if res == nil then return nil, err end
  return true
end

local function whole(v, lo, hi)
  return type(v) == "number" and v % 1 == 0 and v >= lo and v <= hi
end

local function seconds(v, zero_ok)
  return type(v) == "number" and v == v and v < huge and (v > 0 or (zero_ok and v == 0))
end

-- Checks the options (raising at the user's line); returns them with the defaults filled in.
local function options(opts)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(1, FNAME, "table of options expected, got " .. type(opts))
  end
  local o = {}
  for k, v in pairs(opts or {}) do
    if not KNOWN[k] then argerror(1, FNAME, "unknown option '" .. tostring(k) .. "'") end
    o[k] = v
  end
  for k, v in pairs(DEFAULTS) do
    if o[k] == nil then o[k] = v end
  end
  local checks = {
    { type(o.host) == "string" and o.host ~= "", "host must be a non-empty string" },
    { whole(o.port, 1, 65535), "port must be a whole number from 1 to 65535" },
    { o.password == nil or (type(o.password) == "string" and o.password ~= ""),
      "password must be a non-empty string (or nil: no AUTH)" },
    { whole(o.db, 0, huge), "db must be a whole number >= 0" },
    { type(o.prefix) == "string", "prefix must be a string" },
    { seconds(o.timeout), "timeout must be a number of seconds > 0" },
    { whole(o.pool_size, 1, huge), "pool_size must be a whole number >= 1" },
    { seconds(o.keepalive, true), "keepalive must be a number of seconds >= 0 (0: no limit)" },
  }
  for _, check in ipairs(checks) do
    if not check[1] then argerror(1, FNAME, check[2]) end
  end
  return o
end

-- Debian's lua-nginx-redis, else OpenResty's lua-resty-redis.
local function redis_module()
  local ok, redis = pcall(require, "nginx.redis")
  if ok then return redis end
  ok, redis = pcall(require, "resty.redis")
  if ok then return redis end
  error("thinkific.ngx.redis_store needs lua-resty-redis: on Debian `apt install "
    .. "lua-nginx-redis` (require(\"nginx.redis\")); OpenResty has it as resty.redis", 3)
end

--- thinkific.ngx.redis_store{ host, port, password, db, prefix, timeout, pool_size, keepalive }
function _M.redis_store(opts)
  local ngx = need(FNAME)
  local o = options(opts)
  local where = o.host .. ":" .. o.port
  -- One pool per (host, port, db, password): a connection authenticated or SELECTed for one
  -- store never serves another. The password only as a digest.
  local pool = ("thinkific.redis:%s:%d:%s"):format(where, o.db,
    o.password and ngx.md5(o.password) or "-")
  local self = setmetatable({ ngx = ngx, redis = redis_module(), host = o.host, port = o.port,
    db = o.db, prefix = o.prefix, where = where, timeout_ms = ceil(o.timeout * 1000),
    pool_size = o.pool_size, keepalive_ms = ceil(o.keepalive * 1000),
    pool = { pool = pool, pool_size = o.pool_size } }, Store)
  passwords[self] = o.password
  return self
end

return _M
