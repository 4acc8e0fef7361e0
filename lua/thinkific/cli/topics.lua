-- `thinkific topics [--json]`: the webhook topics Thinkific documents (thinkific.topics), and
-- the check that the commands taking a topic make before any request.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local suggest = require("thinkific.cli.suggest")
local TOPICS = require("thinkific.topics")

local _M = {}

local PROG = "thinkific topics"

local KNOWN = {}
for _, t in ipairs(TOPICS) do KNOWN[t] = true end

-- The help line of the option that lets an unknown topic through.
_M.ALLOW_HELP = "Send a topic that is not in 'thinkific topics' (Thinkific may add topics)."

-- nil when topic may be sent, else why not (one line, without a leading name). A topic is
-- always resource.action; an unknown one passes only with allow_unknown.
function _M.check(topic, allow_unknown)
  if not topic:find("^[%w_]+%.[%w_]+$") then
    return ("topic '%s' is not resource.action (e.g. order.created)%s"):format(
      common.printable(topic), suggest.hint(topic, TOPICS))
  end
  if KNOWN[topic] or allow_unknown then return nil end
  return ("unknown topic '%s'%s (see thinkific topics; --allow-unknown-topic sends it anyway)")
    :format(common.printable(topic), suggest.hint(topic, TOPICS))
end

local function parser()
  local p = argparse(PROG, "List the webhook topics Thinkific documents, one per line.")
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print them as one JSON array.")
  return p
end

function _M.main(argv)
  local args, status = common.parse(parser(), PROG, argv)
  if not args then return status end
  if args.json then
    local ok, err = common.print_json(require("thinkific").array({ table.unpack(TOPICS) }))
    if not ok then return common.fail(PROG, err) end
  else
    io.stdout:write(table.concat(TOPICS, "\n"), "\n")
  end
  return 0
end

return _M
