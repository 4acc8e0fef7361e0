-- `thinkific deliver URL --topic T --payload FILE`: POSTs one delivery as Thinkific sends it:
-- the envelope (FILE, or a bare payload in FILE wrapped in an envelope with a fresh 23-digit
-- id), signed with THINKIFIC_WEBHOOK_SECRET in X-Thinkific-Hmac-Sha256, with
-- X-Thinkific-Topic and X-Thinkific-Subdomain. Prints the answer's status and body; exit 0 on
-- 2xx, 1 otherwise. Sent by libcurl (core.send, through common.send): an https server is
-- verified (certificate chain and host name) against --ca-file, $CURL_CA_BUNDLE,
-- $SSL_CERT_FILE or libcurl's own bundle before anything is sent; one deadline, --timeout.
-- The secret and the signature are never printed.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local topics = require("thinkific.cli.topics")
local one_line = require("thinkific.args").one_line

local _M = {}

local PROG = "thinkific deliver"
_M.TIMEOUT = 10
_M.MAX_RESPONSE = 1024 * 1024 -- bytes of the answer printed; a larger one is a failure

local function parser()
  local p = argparse(PROG, "POST a signed delivery to a URL. An https server is verified "
    .. "(certificate and host name) before anything is sent.")
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print the answer as JSON {status, body}.")
  p:argument("url", "Where to POST (http or https).")
  p:option("--topic", "Topic, e.g. order.created."):count(1)
  p:option("--payload", "A JSON file: an envelope, or a bare payload to wrap."):count(1)
  p:option("--timeout", "Seconds for the whole request (connect, TLS, answer).",
    tostring(_M.TIMEOUT))
  p:option("--ca-file", common.CA_FILE_HELP)
  p:flag("--allow-unknown-topic", topics.ALLOW_HELP)
  p:epilog(string.format("Environment:\n  %s: the signing secret\n  %s: sent as "
    .. "X-Thinkific-Subdomain and tenant_id\n  %s, else %s: a CA bundle, when --ca-file is not "
    .. "given", common.ENV_SECRET, common.ENV_SUBDOMAIN, common.ENV_CA_FILES[1],
    common.ENV_CA_FILES[2]))
  return p
end

-- A fresh 23-digit event id: UTC time to the second, then 9 random digits.
function _M.fresh_id()
  math.randomseed(os.time(), math.floor(os.clock() * 1e6))
  return os.date("!%Y%m%d%H%M%S") .. string.format("%09d", math.random(0, 999999999))
end

local function is_envelope(v)
  return type(v) == "table" and v.payload ~= nil and v.id ~= nil
    and v.resource ~= nil and v.action ~= nil
end

-- The body to send: FILE's text when it is an envelope, else a new envelope around it.
function _M.body(text, topic, subdomain)
  local thinkific = require("thinkific")
  local value, err = thinkific.decode(text)
  if value == nil then return nil, err end
  if is_envelope(value) then return text end
  local resource, action = topic:match("^(.-)%.(.+)$")
  return thinkific.encode({ id = _M.fresh_id(), resource = resource or topic, action = action or "",
    tenant_id = subdomain or "1", created_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z"),
    payload = value })
end

function _M.main(argv, getenv)
  getenv = getenv or os.getenv
  local p = parser()
  local args, status = common.parse(p, PROG, argv)
  if not args then return status end
  if args.topic == "" then return common.usage_error(p, PROG, "--topic must not be empty") end
  local bad_topic = topics.check(args.topic, args.allow_unknown_topic)
  if bad_topic then return common.usage_error(p, PROG, bad_topic) end
  local timeout = tonumber(args.timeout)
  if not timeout or timeout <= 0 or timeout == math.huge then
    return common.usage_error(p, PROG, "--timeout must be a positive number")
  end
  local bad_url = common.url_problem(args.url)
  if bad_url then return common.usage_error(p, PROG, "URL " .. bad_url) end
  if args.ca_file == "" then return common.usage_error(p, PROG, "--ca-file must not be empty") end
  local secret, serr = common.secret(getenv)
  if not secret then return common.usage_error(nil, PROG, serr) end
  local text, rerr = common.read_input(args.payload)
  if not text then return common.fail(PROG, rerr) end
  local subdomain = getenv(common.ENV_SUBDOMAIN)
  if subdomain == "" then subdomain = nil end
  if subdomain and not one_line(subdomain) then
    return common.usage_error(nil, PROG, common.ENV_SUBDOMAIN .. " must not contain CR, LF or NUL")
  end
  local body, berr = _M.body(text, args.topic, subdomain)
  if not body then return common.fail(PROG, args.payload .. ": " .. tostring(berr)) end

  local code, answer, refused = common.send({
    method = "POST", url = args.url, body = body, timeout = timeout,
    max_response_size = _M.MAX_RESPONSE,
    headers = {
      ["Content-Type"] = "application/json",
      ["X-Thinkific-Topic"] = args.topic,
      ["X-Thinkific-Subdomain"] = subdomain or "",
      ["X-Thinkific-Hmac-Sha256"] = require("thinkific").sign(body, secret),
      ["User-Agent"] = "lua-thinkific deliver",
    },
  }, args.ca_file, getenv)
  if refused then return common.usage_error(nil, PROG, answer) end
  if not code then return common.fail(PROG, answer) end
  if args.json then
    common.print_json({ status = code, body = answer })
  else
    io.stdout:write(tostring(code), "\n", answer)
    if answer ~= "" and answer:sub(-1) ~= "\n" then io.stdout:write("\n") end
  end
  if code >= 200 and code < 300 then return 0 end
  return 1
end

return _M
