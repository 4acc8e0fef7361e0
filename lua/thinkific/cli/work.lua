-- `thinkific work RULES.lua [--inbox STORE]`: a worker of an inbox (on another host, or in
-- another process): it runs the handlers of RULES.lua's router for the events the inbox holds,
-- one line per event, until Ctrl-C, which lets the running handler finish (within the lease).
-- `thinkific listen --inbox` starts its workers as `thinkific work RULES.lua --parent-pipe`.
--
-- Ctrl-C: Lua 5.4's interpreter raises "interrupted!" in the main thread at its next
-- instruction. Each inbox:work call runs in a coroutine of its own, which that hook does not
-- reach, so the error comes when the call has returned, its outcomes written: never inside a
-- handler.
local argparse = require("argparse")
local socket = require("socket")
local common = require("thinkific.cli.common")
local store = require("thinkific.cli.store")
local interrupt = require("thinkific.cli.interrupt")

local gettime, sleep = socket.gettime, socket.sleep
local format = string.format

local _M = {}

local PROG = "thinkific work"

local CALL_SECONDS = 0.5  -- what one inbox:work call should take: a stop waits for no more
local MAX_LIMIT = 100     -- events in one call at most
local QUIET_FOR = 30      -- seconds between two reports of the same store failure

local function parser()
  local p = argparse(PROG, "Run the handlers of RULES.lua for the events an inbox holds, "
    .. "until Ctrl-C (which lets the running handler finish).")
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("rules", "A Lua file that returns a router (and, optionally, inbox options).")
  p:option("--inbox", store.HELP)
  p:flag("--parent-pipe", "Started by thinkific listen: the store is the first line of standard "
    .. "input; a 'stop' line or its end stops the worker."):hidden(true)
  p:epilog(store.ENVIRONMENT)
  return p
end

-- Standard input as select sees it (the parent's pipe).
local STDIN = { getfd = function() return 0 end, dirty = function() return false end }

-- With the parent's pipe: has the parent said "stop", or gone (the pipe's end)?
local function stop_requested()
  local readable = socket.select({ STDIN }, nil, 0)
  if not readable[STDIN] then return false end
  local line = io.stdin:read("l")
  return line == nil or line == "stop"
end

-- The router, as the inbox sees it, with one line per event it runs: topic, id, outcome,
-- attempt, time, and the first line of the error. max_attempts() gives the inbox's.
local function logging(router, say, max_attempts)
  return setmetatable({
    dispatch = function(_, event, ctx)
      local t0 = gettime()
      local called, ok, errs = pcall(router.dispatch, router, event, ctx)
      local ms = (gettime() - t0) * 1000
      local outcome, why = "done", ""
      if not (called and ok) then
        local last = ctx.attempt >= max_attempts()
        outcome = last and "dead" or "retrying"
        why = ": " .. common.printable(tostring(called and (errs or {})[1] or ok):match("^[^\n]*"))
      end
      say(format("%s %s %s (attempt %d of %d, %.1f ms)%s", common.printable(ctx.topic),
        common.printable(ctx.event_id), outcome, ctx.attempt, max_attempts(), ms, why))
      if not called then error(ok, 0) end
      return ok, errs
    end,
  }, { __index = router })
end

-- Runs inbox:work calls until a stop (parent_pipe) or an error (Ctrl-C's among them).
local function run(inbox, parent_pipe)
  local limit, last_failure, failed_at = 1, nil, -math.huge
  while not (parent_pipe and stop_requested()) do
    local t0 = gettime()
    local co = coroutine.create(inbox.work)
    local ok, n, err = coroutine.resume(co, inbox, { limit = limit, wait = 1 })
    if not ok then error(n, 0) end
    if coroutine.status(co) ~= "dead" then
      error("a handler yielded: handlers run to their end in a worker", 0)
    end
    if n then
      if last_failure then io.stderr:write(PROG, ": the store answers again\n") end
      last_failure = nil
      if n > 0 then -- as many events as take about CALL_SECONDS
        local each = (gettime() - t0) / n
        limit = math.max(1, math.min(MAX_LIMIT, math.floor(CALL_SECONDS / math.max(each, 1e-4))))
      end
    else
      local message = tostring(err)
      if message ~= last_failure or gettime() - failed_at > QUIET_FOR then
        io.stderr:write(PROG, ": ", message:match("^[^\n]*"), " (retrying every second)\n")
        failed_at = gettime()
      end
      last_failure = message
      sleep(1)
    end
  end
end

-- argv: the arguments after "work". Returns the exit status: 0 after a stop through the
-- parent's pipe, 130 after Ctrl-C, 1 when the rules or the store fail at start, 2 on usage
-- errors.
function _M.main(argv, getenv)
  local p = parser()
  local args, status = common.parse(p, PROG, argv)
  if not args then return status end
  local url, why
  if args.parent_pipe then
    url = io.stdin:read("l")
    if not url or url == "" then return common.fail(PROG, "no store on standard input") end
  else
    url, why = store.url(args.inbox, getenv)
    if not url then return common.usage_error(p, PROG, why) end
  end
  local router, options = require("thinkific.cli.listen").load_rules(args.rules)
  if not router then return common.fail(PROG, options) end
  local out = io.stdout
  local function say(line)
    out:write(line, "\n")
    out:flush()
  end
  local inbox, code -- (inbox: declared first, for the router's max_attempts())
  inbox, why, code = store.open(url, logging(router, say, function() return inbox.max_attempts end),
    options)
  if not inbox then
    if code == 2 then return common.usage_error(p, PROG, why) end
    return common.fail(PROG, why)
  end
  if not args.parent_pipe then say("working on " .. inbox.store) end
  local ok, err = pcall(run, inbox, args.parent_pipe)
  inbox:close()
  if ok then return 0 end
  if interrupt.is_interrupt(err) then return interrupt.STATUS end
  return common.fail(PROG, err)
end

return _M
