-- A worker process for spec/inbox_workers_spec.lua:
--   lua5.4 spec/inbox_worker.lua STORE LOG SECRET IDLE
-- Works the inbox until nothing was due for IDLE seconds. Each handler appends "start ID PID T"
-- and "end ID PID T" lines to LOG (one write each, in append mode) around a short random sleep.
local thinkific = require("thinkific")
local socket = require("socket")

local store, log_path, secret, idle = arg[1], arg[2], arg[3], tonumber(arg[4])
local stat = assert(io.open("/proc/self/stat")):read("l")
local pid = stat:match("^(%d+)")

local log = assert(io.open(log_path, "a"))
log:setvbuf("no")

local router = thinkific.router{ secret = secret }
router:on("*", function(_, ctx)
  log:write(("start %s %s %.6f\n"):format(ctx.event_id, pid, socket.gettime()))
  socket.sleep(math.random() * 0.01)
  log:write(("end %s %s %.6f\n"):format(ctx.event_id, pid, socket.gettime()))
end)

local inbox = assert(thinkific.inbox{ store = store, router = router, lease = 30 })
io.stdout:write("ready\n")
io.stdout:flush()
local last = socket.gettime()
while socket.gettime() - last < idle do
  local n = assert(inbox:work{ wait = 0.1 })
  if n > 0 then last = socket.gettime() end
end
inbox:close()
