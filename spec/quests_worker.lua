-- A worker process for spec/quests_workers_spec.lua:
--   lua5.4 spec/quests_worker.lua INBOX_STORE QUESTS_STORE SECRET IDLE
-- Works its inbox, with the example's quests attached to its router, until nothing was due
-- for IDLE seconds. Prints "ready" once it runs.
local thinkific = require("thinkific")
local socket = require("socket")
local model = require("spec.quests_model")

local inbox_store, quests_store, secret, idle = arg[1], arg[2], arg[3], tonumber(arg[4])

local router = thinkific.router{ secret = secret }
local quests = assert(thinkific.quests{ store = quests_store, rules = model.RULES })
quests:attach(router)
local inbox = assert(thinkific.inbox{ store = inbox_store, router = router, lease = 30,
  backoff = { base = 0.05, max = 0.2 } })
io.stdout:write("ready\n")
io.stdout:flush()
local last = socket.gettime()
while socket.gettime() - last < idle do
  local n = assert(inbox:work{ wait = 0.1 })
  if n > 0 then last = socket.gettime() end
end
local stats = inbox:stats()
io.stdout:write(("done %d retrying %d dead %d\n"):format(stats.done, stats.retrying, stats.dead))
inbox:close()
quests:close()
