-- `thinkific events get ID [ID...]`: fetches events by id (several: in parallel, through
-- client:get_events). Prints every event it got; a failed id gives one line on stderr and
-- exit status 1, without affecting the others.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local rate_limit = require("thinkific.cli.rate_limit")

local _M = {}

local PROG = "thinkific events"

local function parser()
  local p = argparse(PROG .. " get", "Fetch events by id (several ids: in parallel).")
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print the decoded JSON (one array; null for an id that failed).")
  p:option("--concurrency", "Requests in flight at most, 1..64.", "8")
  p:option("--ca-file", common.CA_FILE_HELP)
  p:argument("ids", "Event ids; - reads more, separated by white space, from stdin."):args("+")
  p:epilog(common.API_ENVIRONMENT)
  return p
end

local function event_line(ev)
  local null = require("thinkific").null
  local function f(v)
    if v == nil or v == null then return "-" end
    return tostring(v)
  end
  local topic = f(ev.resource) .. "." .. f(ev.action)
  return string.format("%s\t%s\t%s", f(ev.id), topic, f(ev.created_at))
end

-- argv: the arguments after "events". Returns the exit status.
function _M.main(argv, getenv)
  local action = argv[1]
  if action == nil or action == "--help" or action == "-h" or action == "help" then
    local out = action and io.stdout or io.stderr
    out:write(parser():get_help(), "\n")
    if action == nil then return common.usage_error(nil, PROG, "an action is required (get)") end
    return 0
  end
  if action ~= "get" then
    return common.usage_error(nil, PROG, "unknown action '" .. common.printable(action) .. "'")
  end
  local p = parser()
  local args, status = common.parse(p, PROG, { table.unpack(argv, 2) })
  if not args then return status end
  local ids = {}
  for _, id in ipairs(args.ids) do
    if id == "" then return common.usage_error(p, PROG, "an event id must not be empty") end
    if id == "-" then
      for more in io.stdin:read("a"):gmatch("%S+") do ids[#ids + 1] = more end
    else
      ids[#ids + 1] = id
    end
  end
  if #ids == 0 then return common.usage_error(p, PROG, "no event id on stdin") end
  local concurrency = args.concurrency:find("^%d+$") and tonumber(args.concurrency)
  if not concurrency or concurrency < 1 or concurrency > 64 then
    return common.usage_error(p, PROG, "--concurrency must be a number 1..64")
  end
  local api, astatus = common.api(PROG, args.ca_file, getenv)
  if not api then return astatus end
  local client = api.client
  rate_limit.announce(PROG, client, #ids)
  local reporter = common.progress()
  local progress -- only when shown: it makes get_events work in slices
  if reporter.active then
    local pace = rate_limit.pace(client)
    progress = function(done, total)
      reporter.show(string.format("events fetched: %d/%d%s", done, total, pace(total - done)),
        done == total)
    end
  end
  local ok, results, errs = pcall(client.get_events, client, ids,
    { concurrency = math.tointeger(concurrency), progress = progress })
  reporter.finish()
  client:close()
  if not ok then return common.fail(PROG, results) end
  local code = 0
  local thinkific = require("thinkific")
  local all = thinkific.array()
  for i, id in ipairs(ids) do
    local ev = results[i]
    if ev then
      if args.json then all[i] = ev else io.stdout:write(event_line(ev), "\n") end
    else
      all[i] = thinkific.null
      code = 1
      io.stderr:write(PROG, ": ", common.printable(id), ": ", api.explain(errs and errs[i]),
        "\n")
    end
  end
  if args.json then
    local printed, err = common.print_json(all)
    if not printed then return common.fail(PROG, err) end
  end
  return code
end

return _M
