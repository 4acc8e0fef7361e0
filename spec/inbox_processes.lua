-- Shared by the specs that run the inbox's commands as real processes (`thinkific listen
-- --inbox`, `thinkific work`, `thinkific inbox`): a rules file whose handler logs each attempt
-- and does what the event's payload asks (sleep, fail), the log read back, children started
-- in sessions of their own (so that a spec can send Ctrl-C to a whole process group, as a
-- terminal does), their workers found, and signed deliveries posted over HTTP.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local process = require("thinkific.sandbox.process")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local luassert = require("luassert")

local P = {}

P.SECRET = engines.SECRET

-- The rules: one handler for every topic. Each attempt appends "start ID PID ATTEMPT T" to
-- $SPEC_LOG, then, as the payload says: sleeps payload.sleep seconds (payload.sleep_first: on
-- the first attempt only), fails ("fail ID PID ATTEMPT T", then an error) while the attempt is
-- at most payload.fail_until, else logs "end ID PID ATTEMPT T". The inbox options come from
-- SPEC_LEASE, SPEC_MAX_ATTEMPTS, SPEC_BACKOFF (base seconds) and the router's max_body from
-- SPEC_MAX_BODY.
P.RULES = [[
local thinkific = require("thinkific")
local socket = require("socket")
local log = assert(io.open(assert(os.getenv("SPEC_LOG")), "a"))
log:setvbuf("no")
local pid = io.open("/proc/self/stat"):read("l"):match("^%d+")
local function note(what, ctx)
  log:write(("%s %s %s %d %.6f\n"):format(what, ctx.event_id, pid, ctx.attempt, socket.gettime()))
end
local router = thinkific.router{ secret = os.getenv("THINKIFIC_WEBHOOK_SECRET"),
  max_body = tonumber(os.getenv("SPEC_MAX_BODY") or "1048576") }
router:on("*", function(event, ctx)
  note("start", ctx)
  local p = event.payload
  local nap = p.sleep or (ctx.attempt == 1 and p.sleep_first) or 0
  if nap > 0 then socket.sleep(nap) end
  if ctx.attempt <= (p.fail_until or 0) then
    note("fail", ctx)
    error("spec: attempt " .. ctx.attempt .. " fails")
  end
  note("end", ctx)
end)
return router, { lease = tonumber(os.getenv("SPEC_LEASE") or "30"),
  max_attempts = tonumber(os.getenv("SPEC_MAX_ATTEMPTS") or "8"),
  backoff = { base = tonumber(os.getenv("SPEC_BACKOFF") or "0.05"), max = 10 } }
]]

-- Writes the rules file into dir; returns its path.
function P.rules(dir)
  return helper.write(dir, "rules.lua", P.RULES)
end

-- The environment for a child: the secret, the log, the store (never on a command line) and
-- more (name -> value).
function P.env(log, url, more)
  local env = { THINKIFIC_WEBHOOK_SECRET = P.SECRET, SPEC_LOG = log, THINKIFIC_INBOX = url }
  for k, v in pairs(more or {}) do env[k] = v end
  return env
end

-- Starts bin/thinkific with argv in a session of its own (its pid is its process group's id),
-- with the environment helper.cli_env(env). Returns the process (thinkific.sandbox.process).
function P.start(argv, env)
  return process.start("setsid " .. helper.cli_command(argv), helper.cli_env(env))
end

-- Starts `thinkific listen RULES --port PORT ARGS…` and waits for its URL. Returns the
-- process and the URL.
function P.listen(rules, port, env, args)
  local argv = { "listen", rules, "--port", tostring(port or 0) }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local child = P.start(argv, env)
  local url, why = child:first_line(20)
  assert(url and url:find("^http://"), "listen did not start (" .. tostring(why) .. "): "
    .. child:stderr())
  return child, url
end

-- Sends SIGnal to the process group of child (its whole session, as Ctrl-C at a terminal does).
function P.signal_group(child, signal)
  luassert.are.equal(0, helper.execute("kill -" .. signal .. " -" .. child:getpid()))
end

-- Waits up to seconds for child to exit; returns its exit status (the pipe reaped it).
function P.exit_status(child, seconds)
  luassert.is_true(process.wait_exit(child:getpid(), seconds), "still running after " .. seconds .. " s")
  local _, how, status = child.pipe:close()
  child.pipe = nil
  return how == "exit" and status or 128 + status
end

-- The pids of the workers of the listener pid: its children (as Linux lists them for its one
-- thread) that run the worker's Lua already, not one still on its way there (the listener's
-- copy before exec, the shell, setsid), which a slow start (make asan) shows for a while. The
-- worker's command is `lua5.4 -e CODE` (under make asan, the dynamic loader's `ld.so --preload
-- … lua5.4 -e CODE`), CODE naming --parent-pipe; the stages before it run sh, bash or setsid.
local NOT_YET = { sh = true, bash = true, setsid = true }
function P.workers(pid)
  local out = process.read_file("/proc/" .. pid .. "/task/" .. pid .. "/children") or ""
  local pids = {}
  for n in out:gmatch("%d+") do
    local cmdline = process.read_file("/proc/" .. n .. "/cmdline") or ""
    local program = cmdline:match("^[^%z]*"):match("[^/]*$")
    if not NOT_YET[program] and cmdline:find("%z%-e%z") and cmdline:find("--parent-pipe", 1, true) then
      pids[#pids + 1] = tonumber(n)
    end
  end
  return pids
end

-- The log: a list of { what, id, pid, attempt, at } in the order written.
function P.read_log(path)
  local lines = {}
  for line in (process.read_file(path) or ""):gmatch("[^\n]+") do
    local what, id, pid, attempt, at = line:match("^(%a+) (%S+) (%d+) (%d+) ([%d.]+)$")
    assert(what, "a log line: " .. line)
    lines[#lines + 1] = { what = what, id = id, pid = tonumber(pid), attempt = tonumber(attempt),
      at = tonumber(at) }
  end
  return lines
end

-- The set of ids with an "end" line in the log, and how many "end" lines each has.
function P.ended(path)
  local ids = {}
  for _, l in ipairs(P.read_log(path)) do
    if l.what == "end" then ids[l.id] = (ids[l.id] or 0) + 1 end
  end
  return ids
end

function P.count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- Waits up to seconds until the log shows pattern-matching lines for n distinct ids of what
-- ("end" by default). Returns whether it did.
function P.wait_log(path, n, seconds, what)
  return helper.wait_until(function()
    local ids = {}
    for _, l in ipairs(P.read_log(path)) do
      if l.what == (what or "end") then ids[l.id] = true end
    end
    return P.count(ids) >= n
  end, seconds)
end

-- POSTs a delivery (body, headers) to url; returns the status and the answer's body.
function P.post(url, body, headers)
  local chunks = {}
  local h = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) }
  for k, v in pairs(headers or {}) do h[k:lower()] = v end
  http.TIMEOUT = 10
  local ok, status = http.request{ url = url, method = "POST", headers = h,
    source = ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
  assert(ok, status)
  return status, table.concat(chunks)
end

-- A signed delivery of event id whose payload asks the rules' handler for behaviour.
function P.delivery(id, payload, topic)
  return engines.delivery(id, topic, payload)
end

P.sleep = socket.sleep

return P
