-- `thinkific inbox status|list|show|retry|replay|purge`: looks into an inbox and repairs it
-- (dead events run again, done ones replayed, old ones purged), on the store of --inbox or
-- THINKIFIC_INBOX. Readable text, or JSON with --json. No output shows the store's password.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local store = require("thinkific.cli.store")
local suggest = require("thinkific.cli.suggest")
local times = require("thinkific.cli.times")

local _M = {}

local PROG = "thinkific inbox"
local ACTIONS = { "status", "list", "show", "retry", "replay", "purge" }
local STATES = { "pending", "running", "retrying", "dead", "done" }
local PAGE = 1000 -- inbox:list's largest page

local TOPIC_HELP = "A topic pattern: resource.action, resource.* or *."

local function parser(action)
  local p
  if action == "status" then
    p = argparse(PROG .. " status", "Count the events in each state; the age of the oldest pending one.")
  elseif action == "list" then
    p = argparse(PROG .. " list", "List events, oldest received first: id, topic, state, attempts, "
      .. "received (UTC), the first line of the last error.")
    p:option("--state", "Only events in this state: " .. table.concat(STATES, ", ") .. ".")
    p:option("--topic", TOPIC_HELP)
    p:option("--limit", "Events at most.", "100")
  elseif action == "show" then
    p = argparse(PROG .. " show", "Show one event: its state, attempts, last error, headers and body.")
    p:argument("id", "Event id.")
  elseif action == "retry" then
    p = argparse(PROG .. " retry", "Run a dead or retrying event again now (attempts from 0): "
      .. "one by id, or every dead one with --dead.")
    p:argument("id", "Event id."):args("?")
    p:flag("--dead", "Every dead event.")
  elseif action == "replay" then
    p = argparse(PROG .. " replay", "Run done and dead events again (attempts from 0).")
    p:option("--topic", TOPIC_HELP)
    p:option("--since", "Only events received at or after this ISO 8601 time, e.g. "
      .. "2024-05-01T10:00:00Z (no zone: UTC).")
  elseif action == "purge" then
    p = argparse(PROG .. " purge", "Delete done events that became done longer ago than DURATION.")
    p:option("--older-than", "A duration: 7d, 12h, 30m, 45s, 1h30m."):count(1)
  end
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print JSON.")
  p:option("--inbox", store.HELP)
  p:epilog(store.ENVIRONMENT)
  return p
end

local function top_usage(out)
  out:write("Usage: thinkific inbox <action> [options]\n\nActions:\n",
    "  status\n",
    "  list [--state S] [--topic T] [--limit N]\n",
    "  show ID\n",
    "  retry ID | retry --dead\n",
    "  replay [--topic T] [--since ISO8601]\n",
    "  purge --older-than DURATION\n",
    "\nEvery action takes --inbox STORE, --json and --help.\n\n", store.ENVIRONMENT, "\n")
end

local function print_json(value)
  local ok, err = common.print_json(value)
  if not ok then return common.fail(PROG, err) end
  return 0
end

-- The first line of a last error, as a line may show it; "-" for none.
local function first_line(text)
  if text == nil then return "-" end
  return common.printable(tostring(text):match("^[^\n]*"))
end

local function item_line(it)
  return string.format("%s\t%s\t%s\t%d\t%s\t%s", common.printable(it.event_id),
    common.printable(it.topic), it.state, it.attempts, times.show(it.received_at),
    first_line(it.last_error))
end

-- An inbox method that may raise for a bad option: n, err as it returns them, or nil, the
-- reason of the raise and true (a usage error).
local function call(inbox, method, ...)
  local ok, a, b = pcall(inbox[method], inbox, ...)
  if ok then return a, b end
  return nil, tostring(a):match("%((.*)%)$") or tostring(a), true
end

local run = {}

function run.status(inbox, args)
  local stats, err = inbox:stats()
  if not stats then return common.fail(PROG, err) end
  if args.json then return print_json(stats) end
  local out = io.stdout
  for _, state in ipairs(STATES) do out:write(string.format("%-9s %d\n", state, stats[state])) end
  out:write("oldest pending: ", stats.pending > 0 and (times.age(stats.oldest_pending_age) .. " ago")
    or "none", "\n")
  return 0
end

function run.list(inbox, args, p)
  local limit = tonumber(args.limit)
  local items = {}
  local cursor, more -- the next page's cursor; whether there is one
  repeat
    local page, next_or_err, usage = call(inbox, "list", { state = args.state, topic = args.topic,
      limit = math.min(PAGE, limit - #items), after = cursor })
    if not page then
      if usage then return common.usage_error(p, PROG, next_or_err) end
      return common.fail(PROG, next_or_err)
    end
    for _, it in ipairs(page) do items[#items + 1] = it end
    cursor = next_or_err
    more = cursor ~= nil
  until not more or #items >= limit
  if args.json then
    local out = require("thinkific").array(items)
    local code = print_json(out)
    if more then io.stderr:write(PROG, ": more events than --limit ", limit, "\n") end
    return code
  end
  for _, it in ipairs(items) do io.stdout:write(item_line(it), "\n") end
  if #items == 0 then io.stderr:write("no events\n") end
  if more then io.stderr:write(PROG, ": more events than --limit ", limit, "\n") end
  return 0
end

-- Text of several lines (an error and its traceback), whole, its control bytes but line
-- ends and tabs escaped, each line after the first indented under its label.
local function block(text)
  text = tostring(text):gsub("[%z\1-\8\11-\31\127]", function(c)
    return string.format("\\x%02X", c:byte())
  end)
  return (text:gsub("\n", "\n                "))
end

function run.show(inbox, args, p)
  if args.id == "" then return common.usage_error(p, PROG, "ID must not be empty") end
  local it, err = inbox:get(args.id)
  if not it then
    if err then return common.fail(PROG, err) end
    return common.fail(PROG, "no event " .. common.printable(args.id) .. " in " .. inbox.store)
  end
  if args.json then return print_json(it) end
  local thinkific = require("thinkific")
  local rows = {
    { "event_id", common.printable(it.event_id) }, { "topic", common.printable(it.topic) },
    { "state", it.state }, { "attempts", tostring(it.attempts) },
    { "received_at", times.show(it.received_at) },
    { "next_attempt_at", times.show(it.next_attempt_at) },
    { "finished_at", times.show(it.finished_at) },
    { "worker", it.worker and common.printable(it.worker) or "-" },
    { "last_error", it.last_error and block(it.last_error) or "-" },
    { "headers", thinkific.encode(it.headers) or "-" },
    { "event", it.event and thinkific.encode(it.event) or "-" },
  }
  for _, row in ipairs(rows) do io.stdout:write(string.format("%-16s%s\n", row[1], row[2])) end
  return 0
end

-- Prints what a change did: "<verb> n event(s)" or {"<verb>": n}.
local function changed(args, verb, n, what)
  if args.json then return print_json({ [verb] = n }) end
  io.stdout:write(string.format("%s %d %s%s\n", verb, n, what or "", n == 1 and "event" or "events"))
  return 0
end

function run.retry(inbox, args, p)
  if args.dead then
    local n, err = inbox:retry{ state = "dead" }
    if not n then return common.fail(PROG, err) end
    return changed(args, "retried", n, "dead ")
  end
  if args.id == "" then return common.usage_error(p, PROG, "ID must not be empty") end
  local n, err = inbox:retry(args.id)
  if not n then return common.fail(PROG, err) end
  if n == 0 then
    local it
    it, err = inbox:get(args.id)
    if err then return common.fail(PROG, err) end
    local id = common.printable(args.id)
    if not it then return common.fail(PROG, "no event " .. id .. " in " .. inbox.store) end
    return common.fail(PROG, string.format("event %s is %s: retry takes dead and retrying events "
      .. "(replay runs done ones again)", id, it.state))
  end
  return changed(args, "retried", n)
end

function run.replay(inbox, args, p)
  local n, err, usage = call(inbox, "replay", { topic = args.topic, since = args.since_epoch })
  if not n then
    if usage then return common.usage_error(p, PROG, err) end
    return common.fail(PROG, err)
  end
  return changed(args, "replayed", n)
end

function run.purge(inbox, args)
  local n, err = inbox:purge{ older_than = args.seconds }
  if not n then return common.fail(PROG, err) end
  return changed(args, "purged", n, "done ")
end

-- Checks the options that need no store (reading --since and --older-than into since_epoch
-- and seconds); returns nil, or the exit status of a usage error.
local function check(action, args, p)
  if action == "retry" and (args.id ~= nil) == (args.dead == true) then
    return common.usage_error(p, PROG, "retry takes an event ID or --dead, one of them")
  end
  local why
  if action == "replay" and args.since then
    args.since_epoch, why = times.iso8601(args.since)
    if not args.since_epoch then return common.usage_error(p, PROG, "--since " .. why) end
  end
  if action == "purge" then
    args.seconds, why = times.duration(args.older_than)
    if not args.seconds then return common.usage_error(p, PROG, "--older-than " .. why) end
  end
  if action == "list" and not (args.limit:find("^%d+$") and tonumber(args.limit) >= 1) then
    return common.usage_error(p, PROG, "--limit must be a number >= 1")
  end
  if action == "list" and args.state then
    for _, s in ipairs(STATES) do
      if s == args.state then return nil end
    end
    return common.usage_error(p, PROG, "unknown state '" .. common.printable(args.state) .. "'"
      .. suggest.hint(args.state, STATES) .. " (" .. table.concat(STATES, ", ") .. ")")
  end
end

-- argv: the arguments after "inbox". Returns the exit status.
function _M.main(argv, getenv)
  local action, p, args = common.action(argv, PROG, ACTIONS, top_usage, parser)
  if not action then return p end
  local status = check(action, args, p)
  if status then return status end
  local url, why = store.url(args.inbox, getenv)
  if not url then return common.usage_error(p, PROG, why) end
  local inbox, code
  inbox, why, code = store.open_existing(url)
  if not inbox then
    if code == 2 then return common.usage_error(p, PROG, why) end
    return common.fail(PROG, why)
  end
  local ok, result = pcall(run[action], inbox, args, p)
  inbox:close()
  if not ok then error(result, 0) end
  return result
end

return _M
