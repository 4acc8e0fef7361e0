-- `thinkific quests check|play|board|player|log`: a rules file checked and played without a
-- store, and a quests store (--store STORE or THINKIFIC_QUESTS) read: its levels and scope come
-- from the store. Nothing printed holds a store's password.
local argparse = require("argparse")
local common = require("thinkific.cli.common")

local _M = {}

local PROG = "thinkific quests"
local ACTIONS = { "check", "play", "board", "player", "log" }
_M.ENV_STORE = "THINKIFIC_QUESTS"

local ENVIRONMENT = "Environment:\n  " .. _M.ENV_STORE .. ": the store, when --store is not given"

local function parser(action)
  local p
  if action == "check" then
    p = argparse(PROG .. " check", "Check a rules file: each problem on one line, naming the rule "
      .. "(exit 1 when there is any).")
    p:argument("rules", "The rules file (run sandboxed, as thinkific.quests runs it).")
  elseif action == "play" then
    p = argparse(PROG .. " play", "Score events with a rules file, without a store (a dry run): "
      .. "per event, each rule that fired with its XP and badge, then the event's total.")
    p:argument("rules", "The rules file.")
    p:argument("events", "JSON files, each an event (the envelope Thinkific sends) or a list of "
      .. "them, scored in order."):args("+")
  else
    if action == "board" then
      p = argparse(PROG .. " board", "Print the leaderboard: rank, student, XP, level, name.")
      p:option("--limit", "How many, 1..10000.", "10")
      p:option("--offset", "How many to skip.", "0")
    elseif action == "player" then
      p = argparse(PROG .. " player", "Print one student's XP, level and badges.")
      p:argument("id", "The student's user id.")
    else
      p = argparse(PROG .. " log", "Print the scored events and manual awards, newest first.")
      p:option("--user", "Only this student's.")
      p:option("--limit", "How many, 1..1000.", "50")
    end
    if action ~= "log" then
      p:option("--course", "The course (under scope \"course\"; 'none': events without a course).")
    end
    p:option("--store", "The store: sqlite:PATH or postgres://user:password@host:port/db.")
    p:epilog(ENVIRONMENT)
  end
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print JSON.")
  return p
end

local function top_usage(out)
  out:write("Usage: thinkific quests <action> [options]\n\nActions:\n",
    "  check QUESTS.lua\n",
    "  play QUESTS.lua EVENT.json...\n",
    "  board [--course ID] [--limit N] [--offset N]\n",
    "  player ID [--course ID]\n",
    "  log [--user ID] [--limit N]\n",
    "\nEvery action takes --json and --help; board, player and log read --store STORE.\n\n",
    ENVIRONMENT, "\n")
end

local function output(args, value, text)
  if args.json then
    local ok, err = common.print_json(value)
    if not ok then return common.fail(PROG, err) end
  else
    io.stdout:write(text)
  end
  return 0
end

-- text on one line: control bytes escaped (a rule's name or topic is the file author's text).
local function one_line(text)
  return (text:gsub("%c", function(c) return ("\\x%02X"):format(c:byte()) end))
end

-- An id from the command line: digits as an integer, else the text.
local function id_arg(text)
  return require("thinkific.quests.facts").id(text)
end

---------------------------------------------------------------------------------------------
-- check and play: a rules file, no store.

-- The rules file's table (sandboxed), or nil and one line.
local function load_source(path)
  local runner = require("thinkific.quests.runner")
  local source, run = runner.load(path, { memory = runner.MEMORY, instructions = runner.INSTRUCTIONS })
  if source == nil and run then return nil, run end
  if run then run.state:close() end
  return source
end

local function check(args)
  local rules = require("thinkific.quests.rules")
  local source, err = load_source(args.rules)
  if err then return common.fail(PROG, err) end
  local problems = rules.check(source, require("thinkific.quests.runner").is_function)
  local list = type(source) == "table" and (type(source.rules) == "table" and source.rules or source) or {}
  if args.json then
    local out = {}
    for i, p in ipairs(problems) do out[i] = { rule = p.rule, message = p.message } end
    common.print_json({ file = args.rules, rules = #list, problems = require("thinkific").array(out) })
  elseif #problems == 0 then
    io.stdout:write(("%s: %d rules, no problems\n"):format(args.rules, #list))
  else
    for _, p in ipairs(problems) do io.stdout:write(args.rules, ": ", one_line(rules.message(p)), "\n") end
  end
  return #problems == 0 and 0 or 1
end

-- The events of the files, in order; or nil, exit status (a usage error: a file that is not
-- an event or a list of events).
local function read_events(p, files)
  local thinkific = require("thinkific")
  local events = {}
  for _, path in ipairs(files) do
    local text, err = common.read_input(path)
    if not text then return nil, common.usage_error(p, PROG, path .. ": " .. tostring(err)) end
    local value
    value, err = thinkific.decode(text)
    if value == nil then
      return nil, common.usage_error(p, PROG, path .. ": invalid JSON: " .. tostring(err))
    end
    local list = (type(value) == "table" and value.resource == nil) and value or { value }
    for i, e in ipairs(list) do
      if type(e) ~= "table" or type(e.resource) ~= "string" or type(e.action) ~= "string"
          or type(e.payload) ~= "table" or e.id == nil then
        return nil, common.usage_error(p, PROG, ("%s: entry %d is not an event (id, resource, action, "
          .. "payload)"):format(path, i))
      end
      events[#events + 1] = e
    end
  end
  return events
end

local function result_text(r)
  local lines = { ("%s\t%s\tuser %s\tcourse %s\n"):format(r.event_id, r.topic, tostring(r.user_id or "-"),
    tostring(r.course_id or "-")) }
  if not r.scored then
    lines[#lines + 1] = "  (scored before: the same event id)\n"
    return table.concat(lines)
  end
  for _, a in ipairs(r.awards) do
    lines[#lines + 1] = ("  %-20s %+5d XP%s%s\n"):format(a.rule, a.xp,
      a.badge and ("  badge " .. a.badge) or "", a.say and ("  " .. a.say) or "")
  end
  local level = r.level and r.old_level and r.level ~= r.old_level
    and ("  level %d -> %d"):format(r.old_level, r.level) or ""
  lines[#lines + 1] = ("  %-20s %+5d XP%s\n"):format("total", r.xp, level)
  return table.concat(lines)
end

local function play(p, args)
  local events, status = read_events(p, args.events)
  if not events then return status end
  local ok, quests = pcall(require("thinkific").quests, { store = "sqlite::memory:", rules = args.rules })
  if not ok then return common.fail(PROG, tostring(quests):match("%((.*)%)$") or tostring(quests)) end
  local results, texts = {}, {}
  for i, e in ipairs(events) do
    local r, err = quests:score(e)
    if not r then
      quests:close()
      return common.fail(PROG, ("event %d (%s): %s"):format(i, tostring(e.id), tostring(err)))
    end
    results[i], texts[i] = r[1], result_text(r[1])
  end
  quests:close()
  return output(args, require("thinkific").array(results), table.concat(texts))
end

---------------------------------------------------------------------------------------------
-- board, player, log: a store.

local function open_store(p, args, getenv)
  local url = args.store
  if url == nil or url == "" then url = (getenv or os.getenv)(_M.ENV_STORE) end
  if url == nil or url == "" then
    return nil, common.usage_error(p, PROG, "no store: pass --store STORE or set " .. _M.ENV_STORE)
  end
  local ok, quests, err = pcall(require("thinkific").quests, { store = url })
  if not ok then
    return nil, common.usage_error(p, PROG, tostring(quests):match("%((.*)%)$") or tostring(quests))
  end
  if not quests then return nil, common.fail(PROG, err) end
  local settled
  settled, err = quests:_settle(false)
  if not settled then
    quests:close()
    return nil, common.fail(PROG, err)
  end
  return quests
end

-- The course_id argument for the store's scope, or nil, message.
local function course_of(quests, args)
  if quests.scope == "site" then
    if args.course then return nil, "--course: the store's scope is \"site\" (one board for every course)" end
    return nil
  end
  if not args.course or args.course == "" then
    return nil, "--course ID required: the store's scope is \"course\" ('--course none': events "
      .. "without a course)"
  end
  if args.course == "none" then return require("thinkific").null end
  return id_arg(args.course)
end

local function number_arg(text, lo, hi)
  local n = text:match("^%d+$") and tonumber(text)
  return n and n >= lo and n <= hi and n or nil
end

local function board(p, args, quests)
  local course, why = course_of(quests, args)
  if why then return common.usage_error(p, PROG, why) end
  local limit, offset = number_arg(args.limit, 1, 10000), number_arg(args.offset, 0, 2 ^ 53)
  if not limit then return common.usage_error(p, PROG, "--limit must be a number 1..10000") end
  if not offset then return common.usage_error(p, PROG, "--offset must be a number >= 0") end
  local rows, err = quests:leaderboard{ course_id = course, limit = limit, offset = offset }
  if not rows then return common.fail(PROG, err) end
  if #rows == 0 and not args.json then io.stderr:write("no players\n") end
  local lines = {}
  for i, r in ipairs(rows) do
    lines[i] = ("%d\t%s\t%d\t%d\t%s\n"):format(r.rank, tostring(r.user_id), r.xp, r.level, r.name or "")
  end
  return output(args, require("thinkific").array(rows), table.concat(lines))
end

local function player(p, args, quests)
  local course, why = course_of(quests, args)
  if why then return common.usage_error(p, PROG, why) end
  if args.id == "" then return common.usage_error(p, PROG, "ID must not be empty") end
  local pl, err = quests:player(id_arg(args.id), course)
  if not pl then return common.fail(PROG, err) end
  return output(args, pl, ("user_id\t%s\nname\t%s\nxp\t%d\nlevel\t%d\nnext_level_at\t%s\nbadges\t%s\n")
    :format(tostring(pl.user_id), pl.name or "", pl.xp, pl.level, tostring(pl.next_level_at or "-"),
      table.concat(pl.badges, ", ")))
end

local function log(p, args, quests)
  local limit = number_arg(args.limit, 1, 1000)
  if not limit then return common.usage_error(p, PROG, "--limit must be a number 1..1000") end
  if args.user == "" then return common.usage_error(p, PROG, "--user must not be empty") end
  local entries, err = quests:log{ user_id = args.user and id_arg(args.user), limit = limit }
  if not entries then return common.fail(PROG, err) end
  local lines = {}
  for i, e in ipairs(entries) do
    local at = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(e.at))
    local what
    if e.kind == "manual" then
      what = ("manual\t%+d XP%s\t%s"):format(e.xp, e.badge and (", badge " .. e.badge) or "", e.reason or "")
    else
      local given = {}
      for j, a in ipairs(e.awards) do
        given[j] = a.rule .. (a.xp ~= 0 and (" " .. ("%+d"):format(a.xp)) or "")
          .. (a.badge and (" badge " .. a.badge) or "")
      end
      what = ("%s %s\t%+d XP\t%s"):format(e.event_id, e.topic, e.xp, table.concat(given, ", "))
    end
    lines[i] = ("%s\tuser %s\tcourse %s\t%s\n"):format(at, tostring(e.user_id or "-"),
      tostring(e.course_id or "-"), what)
  end
  return output(args, require("thinkific").array(entries), table.concat(lines))
end

function _M.main(argv, getenv)
  local action, p, args = common.action(argv, PROG, ACTIONS, top_usage, parser)
  if not action then return p end
  if action == "check" then return check(args) end
  if action == "play" then return play(p, args) end
  local quests, status = open_store(p, args, getenv)
  if not quests then return status end
  local ok, result = pcall(({ board = board, player = player, log = log })[action], p, args, quests)
  quests:close()
  if not ok then return common.fail(PROG, result) end
  return result
end

return _M
