-- Automation for an online-course business: welcome every new student, tally the revenue.
--
-- Everything runs on this machine: a sandbox plays Thinkific, a local receiver plays your
-- server. The script registers webhooks for enrollments and orders that point at the
-- receiver, makes things happen in the sandbox (students enroll, orders come in), and
-- reacts to each delivery with a router. Run it from the source tree with
--   sh scripts/run examples/automation.lua
local thinkific = require("thinkific")
local sandbox = require("thinkific.sandbox")
local listen = require("thinkific.listen")

local WAIT = 20   -- seconds we wait, at most, for every delivery to arrive

-- The stage: a sandbox plays Thinkific (stopped when the script ends).
local sb <close> = sandbox.spawn{ port = 0 }
print("sandbox (Thinkific)  " .. sb.url)

-------------------------------------------------------------------------------------------
-- The reactions: what the business wants done when Thinkific says something happened.
-------------------------------------------------------------------------------------------
-- Deliveries are signed with the site's API key: the router checks every signature.
local router = thinkific.router{ secret = sb.secret }
local handled, revenue_cents, orders = 0, 0, 0

router:on("enrollment.created", function(event)
  local enrollment = event.payload
  -- A real app would send an email here.
  print(("Welcome, %s, to %s!"):format(enrollment.user.first_name, enrollment.course.name))
  handled = handled + 1
end)

router:on("order.created", function(event)
  local order = event.payload
  revenue_cents = revenue_cents + order.amount_cents
  orders = orders + 1
  print(("Order #%d: %s bought %q for $%.2f"):format(order.order_number,
    order.billing_name, order.product_name, order.amount_cents / 100))
  handled = handled + 1
end)

router:on_error(function(err) io.stderr:write("a handler failed: ", err, "\n") end)

-------------------------------------------------------------------------------------------
-- The plumbing: a receiver for the router, and webhooks that point at it.
-------------------------------------------------------------------------------------------
local server, listen_err = listen.serve{ router = router, host = "127.0.0.1", port = 0,
  log = false }     -- quiet: the handlers print what matters here
if not server then error(listen_err) end
print("receiver (your app)  " .. server.url)

local client <close> = thinkific.new{ api_key = sb.api_key, base_url = sb.url }
for _, topic in ipairs{ "enrollment.created", "order.created" } do
  local webhook, err = client:create_webhook{ topic = topic, target_url = server.url }
  if not webhook then error(err) end
  print(("webhook %s  %-18s -> receiver"):format(webhook.id, topic))
end
print()

-------------------------------------------------------------------------------------------
-- What happens at the school: three students buy a course and enroll.
-------------------------------------------------------------------------------------------
-- Payloads shaped like Thinkific's (see spec/fixtures/payloads).
local COURSE = { id = 4, name = "Introduction to Webhooks" }
local STUDENTS = {
  { id = 123456, first_name = "Robert", last_name = "Smith", email = "robert@example.com" },
  { id = 123457, first_name = "Aisha", last_name = "Khan", email = "aisha@example.com" },
  { id = 123458, first_name = "Mateo", last_name = "Rossi", email = "mateo@example.com" },
}

local function enrollment(n, student)
  local now = "2024-03-0" .. n .. "T09:00:00.000Z"
  return { id = 97470 + n, user = student, course = COURSE, course_id = COURSE.id,
    percentage_completed = "0.0", free_trial = false, completed_at = thinkific.null,
    expiry_date = thinkific.null, activated_at = now, started_at = now, created_at = now,
    updated_at = now }
end

local function order(n, student, product, cents)
  return { id = 19790 + n, order_number = 1010 + n, status = "Complete",
    payment_type = "one-time", product_id = product.id, product_name = product.name,
    amount_cents = cents, amount_dollars = cents / 100, coupon = thinkific.null,
    affiliate_referral_code = thinkific.null, created_at = "2024-03-0" .. n .. "T08:59:00.000Z",
    billing_name = student.first_name .. " " .. student.last_name, user = student,
    items = { { product_id = product.id, product_name = product.name, amount_cents = cents,
      amount_dollars = cents / 100 } } }
end

local BUNDLE = { id = 2, name = "Webhooks Mastery Bundle" }
local triggered = {}
local function trigger(topic, payload)
  local result, err = sb:trigger(topic, payload)
  if not result then error(err) end
  if result.webhooks ~= 1 then
    error(("%s reached %d webhooks, expected 1"):format(topic, result.webhooks))
  end
  triggered[#triggered + 1] = result.event_id
end

trigger("order.created", order(1, STUDENTS[1], { id = 1, name = COURSE.name }, 5000))
trigger("enrollment.created", enrollment(1, STUDENTS[1]))
trigger("order.created", order(2, STUDENTS[2], BUNDLE, 12900))
trigger("enrollment.created", enrollment(2, STUDENTS[2]))
trigger("order.created", order(3, STUDENTS[3], { id = 1, name = COURSE.name }, 3500))
trigger("enrollment.created", enrollment(3, STUDENTS[3]))

-- Serve until every event was handled (or give up after WAIT seconds). The sandbox delivers
-- them side by side, as Thinkific does: they need not arrive in the order they happened.
local done = server:run_until(function() return handled == #triggered end, WAIT)
print()
if not done then
  io.stderr:write(("automation: only %d of %d events were handled in %d s\n"):format(handled,
    #triggered, WAIT))
  -- What the sandbox saw when it delivered them: the receiver's answers, or why none came.
  local answers = {}
  for _, a in ipairs(sb:deliveries() or {}) do
    local what = a.status ~= thinkific.null and ("HTTP " .. a.status) or tostring(a.error)
    answers[what] = (answers[what] or 0) + 1
  end
  for what, n in pairs(answers) do io.stderr:write(("  %d attempts: %s\n"):format(n, what)) end
  os.exit(1, true)   -- true: close the sandbox and the client on the way out
end
print(("Revenue: %d cents ($%.2f) from %d orders"):format(revenue_cents, revenue_cents / 100,
  orders))

-- The sandbox's own record of what it sent: one attempt per delivery when all went well.
-- (It notes an answer once it has read it: wait, briefly, until it has read them all.)
local attempts, err = sb:wait_deliveries(#triggered, 5)
if not attempts then error(err) end
server:close()
local ok = 0
for _, a in ipairs(attempts) do
  if a.status ~= thinkific.null and a.status >= 200 and a.status < 300 then ok = ok + 1 end
end
print(("%d events triggered, %d handled; %d delivery attempts, %d answered 2xx"):format(
  #triggered, handled, #attempts, ok))
