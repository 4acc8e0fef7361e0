-- The README's demo: the whole Webhooks API against a local sandbox that this script starts,
-- then the other direction: the sandbox delivers events to a receiver in this script.
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

-- The other direction: Thinkific calls your app. A receiver on this machine plays your server;
-- a router checks each delivery's signature and runs the handlers of its topic.
local router = thinkific.router{ secret = sb.secret }  -- deliveries are signed with the API key
local handled = {}   -- topic -> id of the event handled
router:on("enrollment.created", function(e)
  print(("handled  %s  welcome, %s, to %s!"):format(e.id, e.payload.user.first_name,
    e.payload.course.name))
  handled["enrollment.created"] = e.id
end)
router:on("order.created", function(e)
  print(("handled  %s  order of %d cents"):format(e.id, e.payload.amount_cents))
  handled["order.created"] = e.id
end)
local server, serve_err = require("thinkific.listen").serve{ router = router,
  host = "127.0.0.1", port = 0, log = false }
if not server then error(serve_err) end

-- Point the enrollment and order webhooks at the receiver...
for _, w in ipairs{ created[1], created[2] } do
  webhook, err = client:update_webhook(w.id, { topic = w.topic, target_url = server.url })
  if not webhook then error(err) end
  print(("updated  %s  %s now -> %s"):format(webhook.id, webhook.topic, webhook.target_url))
end

-- ...and make things happen: the sandbox records each event and POSTs it, signed, to every
-- webhook of its topic, in the background. Serve until both were handled (10 s at most).
local user = { id = 123457, first_name = "Aisha", last_name = "Khan", email = "aisha@example.com" }
for _, happened in ipairs{
  { "enrollment.created", { id = 97473, user = user, course_id = 4, percentage_completed = "0.0",
    course = { id = 4, name = "Introduction to Webhooks" }, completed_at = thinkific.null } },
  { "order.created", { id = 19797, user = user, amount_cents = 12900, product_id = 1,
    product_name = "Introduction to Webhooks", coupon = thinkific.null } },
} do
  local topic = happened[1]
  local triggered, trigger_err = sb:trigger(topic, happened[2])
  if not triggered then error(trigger_err) end
  print(("trigger  %s  %s, to %d webhook(s)"):format(triggered.event_id, topic, triggered.webhooks))
end
local function both_handled() return handled["enrollment.created"] and handled["order.created"] end
if not server:run_until(both_handled, 10) then
  error("the deliveries did not arrive in time")
end
server:close()

-- A delivery's id is its event's id: read it back from the API.
event, err = client:get_event(handled["enrollment.created"])
if not event then error(err) end
print(("event    %s  %s.%s read back: %s"):format(event.id, event.resource, event.action,
  event.payload.user.first_name))

print("done")
