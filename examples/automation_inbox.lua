-- automation.lua with nothing lost: the receiver stores each delivery in an inbox (SQLite, in
-- a temporary directory) and answers once it is stored; a worker runs the handlers afterwards,
-- and retries a handler that fails. Here the mail service is down for a moment: the first
-- welcome email fails, the inbox retries it, and every student is still welcomed once.
--
-- Everything runs on this machine: a sandbox plays Thinkific, a local receiver plays your
-- server. Run it from the source tree with
--   sh scripts/run examples/automation_inbox.lua
-- In production the two halves are two commands (see the README, "Nothing lost"):
--   thinkific listen rules.lua --inbox sqlite:/var/lib/app/thinkific.db   (receive, store, work)
--   thinkific inbox status                                                 (look in)
local thinkific = require("thinkific")
local sandbox = require("thinkific.sandbox")
local listen = require("thinkific.listen")
local socket = require("socket")

local WAIT = 20   -- seconds we wait, at most, for every event to be handled

local sb <close> = sandbox.spawn{ port = 0 }
print("sandbox (Thinkific)  " .. sb.url)

-- The inbox's store: a SQLite file in a directory of our own, removed at the end.
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 '" .. dir .. "'"))
local store = "sqlite:" .. dir .. "/inbox.db"

-------------------------------------------------------------------------------------------
-- The reactions, as in automation.lua. They run in the worker, after the answer, and at
-- least once: a handler may run again for the same event, so it keys what it does by the
-- event id (ctx.event_id).
-------------------------------------------------------------------------------------------
local router = thinkific.router{ secret = sb.secret }
local welcomed, revenue_cents, mail_down = {}, 0, true

router:on("enrollment.created", function(event, ctx)
  local enrollment = event.payload
  if mail_down then   -- the first attempt finds the mail service down
    mail_down = false
    error("mail service unavailable")
  end
  if welcomed[ctx.event_id] then return end   -- already sent: at least once, not twice
  welcomed[ctx.event_id] = true
  print(("Welcome, %s, to %s! (attempt %d)"):format(enrollment.user.first_name,
    enrollment.course.name, ctx.attempt))
end)

local orders = {}
router:on("order.created", function(event, ctx)
  if orders[ctx.event_id] then return end
  orders[ctx.event_id] = true
  revenue_cents = revenue_cents + event.payload.amount_cents
  print(("Order #%d: $%.2f"):format(event.payload.order_number, event.payload.amount_cents / 100))
end)

-------------------------------------------------------------------------------------------
-- The plumbing: an inbox, a receiver that stores into it, webhooks that point at it.
-------------------------------------------------------------------------------------------
local inbox, err = thinkific.inbox{ store = store, router = router,
  backoff = { base = 0.2, max = 5 } }   -- quick retries for the demo (default: 2 s, doubling)
if not inbox then error(err) end
print("inbox                " .. inbox.store)

local server, listen_err = listen.serve{ inbox = inbox, port = 0, log = false }
if not server then error(listen_err) end
print("receiver (your app)  " .. server.url)

local client <close> = thinkific.new{ api_key = sb.api_key, base_url = sb.url }
for _, topic in ipairs{ "enrollment.created", "order.created" } do
  local webhook, werr = client:create_webhook{ topic = topic, target_url = server.url }
  if not webhook then error(werr) end
end
print()

local COURSE = { id = 4, name = "Introduction to Webhooks" }
local STUDENTS = { "Robert", "Aisha", "Mateo" }
local triggered = 0
for n, name in ipairs(STUDENTS) do
  local student = { id = 123455 + n, first_name = name, email = name:lower() .. "@example.com" }
  for _, what in ipairs{
    { "order.created", { id = 19790 + n, order_number = 1010 + n, amount_cents = 5000 + 1000 * n,
      user = student } },
    { "enrollment.created", { id = 97470 + n, user = student, course = COURSE } },
  } do
    local result, terr = sb:trigger(what[1], what[2])
    if not result then error(terr) end
    triggered = triggered + 1
  end
end

-- Receive and work in turns until every event is done: the receiver answers each delivery
-- once it is stored; the worker runs the handlers of what is stored (retrying, with backoff,
-- the one that failed).
local deadline = socket.gettime() + WAIT
local stats
repeat
  server:step(0.05)
  local n, werr = inbox:work{ limit = 10 }
  if not n then error(werr) end
  stats = assert(inbox:stats())
until stats.done == triggered or socket.gettime() > deadline
print()
print(("Revenue: %d cents from %d orders"):format(revenue_cents, #STUDENTS))
print(("inbox: %d done, %d retrying, %d dead"):format(stats.done, stats.retrying, stats.dead))

-- Every event, with its attempts: the failed welcome took two.
local items = assert(inbox:list{ topic = "enrollment.*" })
local attempts = 0
for _, it in ipairs(items) do attempts = attempts + it.attempts end
print(("%d enrollments in %d attempts"):format(#items, attempts))

server:close()
inbox:close()
os.execute("rm -rf '" .. dir .. "'")
if stats.done ~= triggered then
  io.stderr:write(("automation_inbox: only %d of %d events done in %d s\n"):format(stats.done,
    triggered, WAIT))
  os.exit(1, true)
end
