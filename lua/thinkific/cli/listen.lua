-- `thinkific listen [--host 127.0.0.1] [--port N] RULES.lua [--inbox STORE [--workers N]]`:
-- loads RULES.lua (a Lua file that returns a router), serves deliveries with it, prints its URL
-- as the first line of output and one line per delivery. With an inbox it only stores them
-- (group commit: those read in one round of its loop in one transaction) and N worker
-- processes (thinkific.cli.workers) run the handlers. Nothing it prints holds a secret.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local store = require("thinkific.cli.store")
local interrupt = require("thinkific.cli.interrupt")
local callable = require("thinkific.args").callable

local _M = {}

local function parser()
  local p = argparse("thinkific listen",
    "Receive Thinkific deliveries on a local HTTP server and hand them to a router.")
  p:add_help(false)
  p:flag("-h --help", "Show this help and exit.")
  p:help_max_width(common.HELP_WIDTH)
  common.address_options(p)
  p:argument("rules", "A Lua file that returns a router (thinkific.router{...}) and, "
    .. "optionally, a table of inbox options (lease, max_attempts, backoff, keep).")
  p:option("--inbox", "Store each delivery in this inbox, answer once it is stored, and run the "
    .. "handlers in worker processes: sqlite:PATH or postgres://user:password@host:port/db "
    .. "(default: $" .. store.ENV .. ", when set).")
  p:option("--workers", "Worker processes with an inbox (0: none; run thinkific work).", "1")
  p:flag("--no-group-commit", "With an inbox: one transaction per delivery, not one per round "
    .. "of the loop (slower: for comparison).")
  p:epilog(store.ENVIRONMENT)
  return p
end

local function usage_error(p, message)
  return common.usage_error(p, "thinkific listen", message)
end

local function fail(message)
  return common.fail("thinkific listen", message)
end

-- Runs RULES.lua as dofile would. Returns the router and the inbox options it gave (a table,
-- maybe empty), or nil, message.
function _M.load_rules(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, router, options = pcall(chunk)
  if not ok then
    local message = tostring(router)
    if message:sub(1, #path) ~= path then message = path .. ": " .. message end
    return nil, message
  end
  local indexable = type(router) == "table" or type(router) == "userdata"
  local found, handle = pcall(function() return router.handle end)
  if not (indexable and found and callable(handle)) then
    return nil, string.format("%s returned %s, not a router (end it with: return router)",
      path, type(router))
  end
  options, err = store.rules_options(path, options)
  if not options then return nil, err end
  return router, options
end

-- Serves with an inbox on url and `workers` worker processes until Ctrl-C; then stops
-- accepting, stops the workers (each finishes its handler, within the lease) and returns 130.
local function serve_inbox(args, p, router, options, url, workers, say)
  local inbox, why, code = store.open(url, router, options)
  if not inbox then
    if code == 2 then return usage_error(p, why) end
    return fail(why)
  end
  local server, err = require("thinkific.listen").serve({
    inbox = inbox, group_commit = not args.no_group_commit, host = args.host, port = args.port,
    log = say,
  })
  if not server then
    inbox:close()
    return fail(err.message)
  end
  say(server.url)
  local pool
  local _, raised = pcall(function() -- (it only ends by an error: Ctrl-C's, or another)
    local problem
    pool, problem = require("thinkific.cli.workers").start({ n = workers, rules = args.rules,
      url = url, log = function(line) io.stderr:write("thinkific listen: ", line, "\n") end })
    if not pool then error(problem, 0) end
    while true do
      server:step(1)
      pool:tend()
    end
  end)
  server:close()
  if pool then pool:stop(inbox.lease) end
  inbox:close()
  if interrupt.is_interrupt(raised) then return interrupt.STATUS end
  return fail(raised)
end

-- argv: the arguments after "listen". Returns the exit status: 0 after serving, 130 after
-- Ctrl-C, 1 when the rules or the server fail, 2 on usage errors.
function _M.main(argv)
  local p = parser()
  -- --help before anything else, so that it works whatever else is (not) given.
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then
      io.stdout:write(p:get_help(), "\n")
      return 0
    end
    if a == "--" then break end
  end
  local ok, args = p:pparse(argv)
  if not ok then return usage_error(p, args) end
  local port, bad_port = common.port(args)
  if not port then return usage_error(p, bad_port) end

  args.port = port
  local workers = args.workers:find("^%d+$") and tonumber(args.workers)
  if not workers or workers > require("thinkific.cli.workers").MAX then
    return usage_error(p, "--workers must be a number 0..64")
  end
  local url = store.url(args.inbox)
  if not url and (args.workers ~= "1" or args.no_group_commit) then
    return usage_error(p, "--workers and --no-group-commit go with --inbox STORE")
  end

  local router, options = _M.load_rules(args.rules)
  if not router then return fail(options) end
  local out = io.stdout
  local function say(line)
    out:write(line, "\n")
    out:flush()
  end
  if url then return serve_inbox(args, p, router, options, url, workers, say) end
  local server, err = require("thinkific.listen").serve({
    router = router, host = args.host, port = port, log = say,
  })
  if not server then return fail(err.message) end
  say(server.url)
  -- Ctrl-C: 130, quietly, the socket closed.
  local status, why = interrupt.serve(server)
  if not status then return fail(why) end
  return status
end

return _M
