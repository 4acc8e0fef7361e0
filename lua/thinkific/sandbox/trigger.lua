-- `thinkific sandbox trigger TOPIC [--payload FILE] [--sandbox URL]`: triggers an event in a
-- running sandbox from the shell, through its control endpoint POST /sandbox/trigger, and
-- prints the event id and the number of webhooks it goes to.
-- The request goes through libcurl as `thinkific deliver`'s does (common.send, core.send): one
-- deadline, and an https sandbox verified (chain and host name) before anything is sent.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local fixtures = require("thinkific.sandbox.fixtures")
local thinkific = require("thinkific")

local _M = {}

local PROG = "thinkific sandbox trigger"
_M.TIMEOUT = 10
_M.MAX_RESPONSE = 64 * 1024 -- bytes: the sandbox answers {"event_id": …, "webhooks": n}
_M.PATH = "/sandbox/trigger"

local function parser()
  local p = argparse(PROG, "Trigger an event in a running sandbox: it is recorded and "
    .. "delivered, signed, to every webhook of its topic.")
  p:add_help(false)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("topic", "resource.action, e.g. order.created."):argname("TOPIC")
  p:option("--payload", "A JSON file (-: standard input): a bare payload, or a whole envelope "
    .. "{resource, action, payload, ...}, sent as it is. Default: a sample payload for the "
    .. "topic."):argname("FILE")
  p:option("--sandbox", "The sandbox's URL, its root or its API base URL (default: "
    .. "$" .. common.ENV_BASE_URL .. ", which its startup lines export)."):argname("URL")
  p:option("--ca-file", "https: the CA certificates to trust (PEM), e.g. the sandbox's "
    .. "--tls-cert. Default: $" .. common.ENV_CA_FILES[1] .. ", else $" .. common.ENV_CA_FILES[2]
    .. ", else libcurl's own bundle."):argname("FILE")
  p:option("--timeout", "Seconds for the whole request.", tostring(_M.TIMEOUT)):argname("SECONDS")
  p:flag("--json", 'Print the sandbox\'s answer as it is: {"event_id": ..., "webhooks": n}.')
  return p
end

local function nonempty(v)
  if v == "" then return nil end
  return v
end

-- The sandbox's root (where the control endpoints are) from its root or its API base URL.
-- Returns the root, or nil and a message.
function _M.root(u)
  local bad = common.url_problem(u)
  if bad then return nil, bad end
  if u:find("[?#]") then return nil, "must have no query or fragment" end
  return (u:gsub("/+$", ""):gsub("/api/v2$", ""))
end

-- The request body for TOPIC and the JSON text of FILE (or the sample): an envelope as it is
-- (its topic must be TOPIC), a bare payload wrapped as {"topic": …, "payload": …}, its text
-- kept byte for byte (the sandbox keeps it without the white space around it).
-- Returns the body, or nil and a message.
function _M.body(topic, text)
  local value, err = thinkific.decode(text)
  if value == nil then return nil, tostring(err) end
  if type(value) ~= "table" or not text:find("^%s*{") then return nil, "not a JSON object" end
  if type(value.resource) == "string" and type(value.action) == "string"
      and type(value.payload) == "table" then
    local own = value.resource .. "." .. value.action
    if own ~= topic then return nil, "an envelope of " .. own .. ", not " .. topic end
    return text
  end
  return '{"topic":"' .. topic .. '","payload":' .. text .. "}"
end

-- Why the sandbox refused: its {"error": …}, or what the status says.
local function refusal(status, answer)
  local v = thinkific.decode(answer)
  local why = type(v) == "table" and type(v.error) == "string" and v.error:match("^[^\n]*")
  return string.format("%s (http %d)", why or "not a sandbox's answer", status)
end

-- argv: the arguments after "trigger". Returns the exit status: 0, 1 when the sandbox cannot
-- be reached or refuses, 2 on usage errors.
function _M.main(argv, getenv)
  getenv = getenv or os.getenv
  local p = parser()
  local args, status = common.parse(p, PROG, argv)
  if not args then return status end
  local topic = args.topic
  -- Any resource.action: the sandbox records and delivers topics it does not know as well.
  local bad_topic = require("thinkific.cli.topics").check(topic, true)
  if bad_topic then return common.usage_error(p, PROG, bad_topic) end
  local timeout = tonumber(args.timeout)
  if not timeout or timeout <= 0 or timeout == math.huge then
    return common.usage_error(p, PROG, "--timeout must be a positive number")
  end
  if args.ca_file == "" then return common.usage_error(p, PROG, "--ca-file must not be empty") end
  local from = args.sandbox and "--sandbox" or "$" .. common.ENV_BASE_URL
  local given = args.sandbox or nonempty(getenv(common.ENV_BASE_URL))
  if not given then
    return common.usage_error(p, PROG, "which sandbox? pass --sandbox URL or set "
      .. common.ENV_BASE_URL .. " (thinkific sandbox prints the line to paste)")
  end
  local root, why = _M.root(given)
  if not root then return common.usage_error(p, PROG, from .. " " .. why) end

  local text = fixtures.sample_payload(topic)
  if args.payload then
    local rerr
    text, rerr = common.read_input(args.payload)
    if not text then return common.fail(PROG, rerr) end
  end
  local body, berr = _M.body(topic, text)
  if not body then return common.fail(PROG, (args.payload or "the sample payload") .. ": " .. berr) end
  local url = root .. _M.PATH
  local code, answer, refused = common.send({ method = "POST", url = url, body = body,
    timeout = timeout, max_response_size = _M.MAX_RESPONSE, headers = {
      ["Content-Type"] = "application/json", ["User-Agent"] = "lua-thinkific sandbox trigger" } },
    args.ca_file, getenv)
  if refused then return common.usage_error(nil, PROG, answer) end
  if not code then
    if answer:find("(Connection refused)", 1, true) then
      answer = answer .. " (is the sandbox running?)"
    end
    return common.fail(PROG, answer)
  end
  local where = "POST " .. common.shown_url(url) .. ": "
  if code ~= 201 then return common.fail(PROG, where .. refusal(code, answer)) end
  local result = thinkific.decode(answer)
  if type(result) ~= "table" or type(result.event_id) ~= "string"
      or math.type(result.webhooks) ~= "integer" then
    return common.fail(PROG, where .. "not a sandbox's answer")
  end
  if args.json then
    io.stdout:write(answer, answer:sub(-1) == "\n" and "" or "\n")
  else
    io.stdout:write(string.format("event %s: delivered to %d webhook%s\n", result.event_id,
      result.webhooks, result.webhooks == 1 and "" or "s"))
  end
  return 0
end

return _M
