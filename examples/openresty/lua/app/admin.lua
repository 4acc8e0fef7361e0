-- GET /admin/webhooks: every webhook of the site, as JSON, through thinkific.ngx.transport
-- (nginx's own upstream: the worker never blocks). Credentials come from the environment.
local thinkific = require("thinkific")
local tngx = require("thinkific.ngx")

local _M = {}

local API_KEY = os.getenv("THINKIFIC_API_KEY")
local SUBDOMAIN = os.getenv("THINKIFIC_SUBDOMAIN")
local BASE_URL = os.getenv("THINKIFIC_BASE_URL") -- nil: https://api.thinkific.com/api/v2

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(thinkific.encode(value))
  return ngx.exit(ngx.HTTP_OK)
end

function _M.list()
  if not API_KEY or API_KEY == "" then
    return reply(500, { error = "THINKIFIC_API_KEY is not set" })
  end
  -- tngx.client: thinkific.new with transport = tngx.transport{ location = "/_thinkific" }
  -- and sleep = ngx.sleep (waits between retries do not block either).
  local client = tngx.client{ api_key = API_KEY, subdomain = SUBDOMAIN, base_url = BASE_URL,
    timeout = 30, retries = 2 }
  local items = thinkific.array()
  for webhook, err in client:webhooks{ limit = 250 } do
    if not webhook then
      client:close()
      ngx.log(ngx.ERR, "thinkific: listing webhooks: ", tostring(err)) -- never the credential
      return reply(502, { error = tostring(err) })
    end
    items[#items + 1] = { id = webhook.id, topic = webhook.topic, target_url = webhook.target_url }
  end
  client:close()
  return reply(200, { webhooks = items })
end

return _M
