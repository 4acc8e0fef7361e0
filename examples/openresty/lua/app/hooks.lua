-- The router of Thinkific's deliveries for the /thinkific/webhooks location. A module, loaded
-- once per worker (never a global): nginx.conf calls
--   require("thinkific.ngx").serve(require("app.hooks"))
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")

local secret = os.getenv("THINKIFIC_WEBHOOK_SECRET")
if not secret or secret == "" then
  error("THINKIFIC_WEBHOOK_SECRET is not set (and `env THINKIFIC_WEBHOOK_SECRET;` must be in "
    .. "nginx.conf): it is the site's API key, which Thinkific signs deliveries with")
end

local router = thinkific.router{
  secret = secret,
  -- Shared by every worker: a delivery that arrives twice runs its handlers once. A copy that
  -- arrives while the first attempt still runs is answered 503 with Retry-After (never 200
  -- before the handlers succeeded).
  dedupe = tngx.store("thinkific_dedupe"),
  -- Several nginx hosts behind one load balancer: the claims in one Redis that every host
  -- shares instead (each host's lua_shared_dict sees only its own deliveries). Needs
  -- lua-nginx-redis (Debian) or OpenResty's resty.redis, and `env THINKIFIC_REDIS_PASSWORD;`:
  -- dedupe = tngx.redis_store{ host = "10.0.0.5", port = 6379,
  --   password = os.getenv("THINKIFIC_REDIS_PASSWORD"), timeout = 1 },
  lease = 60,             -- seconds a claim holds: after it, a worker that died lets go
  keep = 7 * 24 * 3600,   -- seconds a handled id is remembered (Thinkific stops retrying
                          -- long before)
}

router:on("order.created", function(event)
  local order = event.payload
  ngx.log(ngx.NOTICE, "thinkific: order ", order.id, " (", order.product_name, ") for ",
    order.amount_cents, " cents")
end)

router:on("enrollment.completed", function(event)
  local enrollment = event.payload
  ngx.log(ngx.NOTICE, "thinkific: user ", enrollment.user and enrollment.user.id,
    " completed course ", enrollment.course and enrollment.course.id)
end)

-- A failing handler answers 500, so Thinkific delivers the event again later.
router:on_error(function(err, event)
  ngx.log(ngx.ERR, "thinkific: a handler failed for event ", event and event.id, ": ", err)
end)

return router
