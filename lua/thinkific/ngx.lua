-- thinkific.ngx: lua-thinkific inside OpenResty (ngx_lua). Nothing here blocks a worker:
--   serve(router)        a content handler that receives deliveries (body in memory or spilled)
--   transport{location}  the client's transport over ngx.location.capture to an internal
--                        location that proxy_passes to the API with nginx's keep-alive upstream
--   header_filter()      optional, in that location: tells the transport whether nginx reached
--                        the API at all (for err.sent)
--   store(dict, {ttl})   a de-duplication store on a lua_shared_dict, shared by all workers
--   redis_store{...}     the same store on Redis, shared by several nginx hosts
--   client(opts)         thinkific.new with this transport and ngx.sleep filled in
-- Each piece lives in its own module under thinkific/ngx/; this facade keeps the one name
-- users' nginx.conf and code require. The modules load without nginx (for docs and tooling);
-- their functions raise when called there.
local _M = {
  serve = require("thinkific.ngx.serve").serve,
  transport = require("thinkific.ngx.transport").transport,
  header_filter = require("thinkific.ngx.upstream").header_filter,
  store = require("thinkific.ngx.store").store,
  redis_store = require("thinkific.ngx.redis_store").redis_store,
  client = require("thinkific.ngx.client").client,
}

return _M
