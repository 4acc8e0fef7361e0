-- What nginx knows of the API behind a transport subrequest: header_filter records it in the
-- internal location, the transport reads it back from the ctx table it passed to the
-- subrequest. One file for both ends, so the two agree on where and what.
local need = require("thinkific.ngx.need")

local type, find = type, string.find

local _M = {}

local KEY = "thinkific_upstream"

--- thinkific.ngx.header_filter(): in the internal location (header_filter_by_lua_block), records
-- for the transport what nginx knows of the upstream: whether it connected at all.
function _M.header_filter()
  local ngx = need("header_filter")
  if not ngx.is_subrequest then return end
  local var = ngx.var
  ngx.ctx[KEY] = {
    status = var.upstream_status, addr = var.upstream_addr,
    connect_time = var.upstream_connect_time,
  }
end

-- nil when header_filter is not in the location; else { proxied = whether nginx chose an
-- upstream at all, connected = whether it opened a connection to one }.
-- $upstream_connect_time is "-" for each server nginx could not connect to.
function _M.read(ctx)
  local info = ctx[KEY]
  if type(info) ~= "table" then return nil end
  local times = info.connect_time
  return {
    proxied = info.status ~= nil or info.addr ~= nil,
    connected = type(times) == "string" and find(times, "[%d]") ~= nil,
  }
end

return _M
