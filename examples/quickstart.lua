-- The README's demo: the whole Webhooks API against a local sandbox that this script starts.
-- Run it with `sh scripts/demo` (or `make demo` once built).
local thinkific = require("thinkific")
local sandbox = require("thinkific.sandbox")

local sb <close> = sandbox.spawn{ port = 0 }
print("sandbox at " .. sb.url)

local client <close> = thinkific.new{ api_key = sb.api_key, base_url = sb.url }

-- Create a few webhooks. Every call returns a value, or nil and an error to check.
local created = {}
for _, topic in ipairs{ "order.created", "enrollment.created", "enrollment.completed",
                        "lesson.completed", "user.signup" } do
  local webhook, err = client:create_webhook{ topic = topic,
    target_url = "https://hooks.example.com/thinkific" }
  if not webhook then error(err) end
  created[#created + 1] = webhook
  print(("created  %s  %-22s -> %s"):format(webhook.id, webhook.topic, webhook.target_url))
end

-- Read one back, then change its target.
local first = created[1]
local webhook, err = client:get_webhook(first.id)
if not webhook then error(err) end
print(("got      %s  status %s, created by %s"):format(webhook.id, webhook.status,
  tostring(webhook.created_by)))

webhook, err = client:update_webhook(first.id, { topic = "order.created",
  target_url = "https://hooks.example.com/orders" })
if not webhook then error(err) end
print(("updated  %s  now -> %s"):format(webhook.id, webhook.target_url))

-- One page at a time...
local page
page, err = client:list_webhooks{ limit = 2 }
if not page then error(err) end
print(("page 1 has %d webhooks; next cursor %s"):format(#page.items, tostring(page.next)))

-- ...or every webhook across all pages.
local count = 0
for w, iter_err in client:webhooks{ limit = 2 } do
  if not w then error(iter_err) end
  count = count + 1
end
print(("all pages: %d webhooks"):format(count))

-- Delete one; reading it again is a 404, returned as an error value.
local ok
ok, err = client:delete_webhook(created[#created].id)
if not ok then error(err) end
print("deleted  " .. created[#created].id)
local gone, not_found = client:get_webhook(created[#created].id)
assert(gone == nil)
print(("get after delete: %s"):format(tostring(not_found)))

-- Read an event the sandbox recorded: integers stay integers, nulls stay visible.
local event
event, err = client:get_event("20180126172320940835610")
if not event then error(err) end
print(("event    %s  %s.%s: %s bought %q for %d cents (%s), coupon %s, referral %s"):format(
  event.id, event.resource, event.action, event.payload.user.first_name,
  event.payload.product_name, event.payload.amount_cents, math.type(event.payload.amount_cents),
  event.payload.coupon and event.payload.coupon.code or "none",
  event.payload.affiliate_referral_code == thinkific.null and "null" or "set"))

-- A validation error: 422 with Thinkific's errors normalised to {field, message}.
local bad, invalid = client:create_webhook{ topic = "order.exploded",
  target_url = "https://hooks.example.com/thinkific" }
assert(bad == nil)
print(("invalid topic: %s"):format(tostring(invalid)))
for _, e in ipairs(invalid.errors) do
  print(("  field %s: %s"):format(e.field, e.message))
end

print("done")
