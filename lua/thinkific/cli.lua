-- The `thinkific` command line: a table of subcommands, each in its own module.
local suggest = require("thinkific.cli.suggest")

local _M = {}

-- name -> { summary, run = function(argv) -> exit status }.
_M.commands = {
  webhooks = {
    summary = "list, create, get, update, delete or sync webhooks",
    run = function(argv) return require("thinkific.cli.webhooks").main(argv) end,
  },
  events = {
    summary = "fetch events by id",
    run = function(argv) return require("thinkific.cli.events").main(argv) end,
  },
  sign = {
    summary = "print the HMAC-SHA256 signature of a body",
    run = function(argv) return require("thinkific.cli.sign").sign(argv) end,
  },
  verify = {
    summary = "check a delivery signature",
    run = function(argv) return require("thinkific.cli.sign").verify(argv) end,
  },
  topics = {
    summary = "list the webhook topics Thinkific documents",
    run = function(argv) return require("thinkific.cli.topics").main(argv) end,
  },
  deliver = {
    summary = "POST a signed delivery to a URL",
    run = function(argv) return require("thinkific.cli.deliver").main(argv) end,
  },
  listen = {
    summary = "receive deliveries with a router",
    run = function(argv) return require("thinkific.cli.listen").main(argv) end,
  },
  work = {
    summary = "run the handlers for the events an inbox holds",
    run = function(argv) return require("thinkific.cli.work").main(argv) end,
  },
  inbox = {
    summary = "look into an inbox: status, list, show; retry, replay, purge",
    run = function(argv) return require("thinkific.cli.inbox").main(argv) end,
  },
  sandbox = {
    summary = "run a Thinkific-compatible API server on loopback",
    run = function(argv) return require("thinkific.cli.sandbox").main(argv) end,
  },
  quests = {
    summary = "check or play a quests rules file; read a quests store",
    run = function(argv) return require("thinkific.cli.quests").main(argv) end,
  },
}

_M.ORDER = { "webhooks", "events", "topics", "sign", "verify", "deliver", "listen", "work", "inbox",
  "sandbox", "quests" }

local function usage(out)
  out:write("Usage: thinkific <command> [options]\n\nCommands:\n")
  for _, name in ipairs(_M.ORDER) do
    out:write(string.format("  %-10s %s\n", name, _M.commands[name].summary))
  end
  out:write("\nRun 'thinkific help <command>' (or 'thinkific <command> --help') for a command's "
    .. "options,\n'thinkific --version' for the version.\n")
end

-- The command called name, or nil after a usage error (exit 2) with a did-you-mean.
local function find(name)
  local command = _M.commands[name]
  if command then return command end
  local printable = require("thinkific.cli.common").printable
  io.stderr:write("thinkific: unknown command '", printable(name), "'", suggest.hint(name, _M.ORDER),
    " (see thinkific --help)\n")
  return nil
end

-- argv: the command's arguments (arg). Returns the exit status: 0 success, 1 runtime
-- failure, 2 usage error.
function _M.main(argv)
  local name = argv[1]
  if name == "--version" or name == "-V" then
    io.stdout:write("thinkific ", require("thinkific.version"), "\n")
    return 0
  end
  -- thinkific help COMMAND [ACTION]: the same as thinkific COMMAND [ACTION] --help.
  if name == "help" and argv[2] and not argv[2]:find("^%-") then
    local command = find(argv[2])
    if not command then return 2 end
    local rest = { table.unpack(argv, 3) }
    rest[#rest + 1] = "--help"
    return command.run(rest)
  end
  if name == "--help" or name == "-h" or name == "help" then
    usage(io.stdout)
    return 0
  end
  if name == nil then
    usage(io.stderr)
    return 2
  end
  local command = find(name)
  if not command then return 2 end
  return command.run({ table.unpack(argv, 2) })
end

return _M
