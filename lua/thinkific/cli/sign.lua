-- `thinkific sign [FILE]` and `thinkific verify [FILE] --signature HEX`: the HMAC-SHA256 of a
-- body (FILE, or stdin) with THINKIFIC_WEBHOOK_SECRET, as Thinkific signs deliveries. The
-- secret is never printed.
local argparse = require("argparse")
local common = require("thinkific.cli.common")

local _M = {}

local function parser(name)
  local p
  if name == "sign" then
    p = argparse("thinkific sign", "Print the HMAC-SHA256 (hex) of a body with $"
      .. common.ENV_SECRET .. ".")
  else
    p = argparse("thinkific verify", "Check a delivery signature against a body with $"
      .. common.ENV_SECRET .. ": exit 0 valid, 1 invalid.")
    p:option("--signature", "The X-Thinkific-Hmac-Sha256 value (hex)."):count(1)
  end
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print JSON.")
  p:argument("file", "The body (default: standard input)."):args("?")
  p:epilog("Environment:\n  " .. common.ENV_SECRET .. ": the signing secret")
  return p
end

local function run(name, argv, getenv)
  local prog = "thinkific " .. name
  local p = parser(name)
  local args, status = common.parse(p, prog, argv)
  if not args then return status end
  local secret, serr = common.secret(getenv)
  if not secret then return common.usage_error(nil, prog, serr) end
  local body, err = common.read_input(args.file)
  if not body then return common.fail(prog, err) end
  local thinkific = require("thinkific")
  if name == "sign" then
    local hex = thinkific.sign(body, secret)
    if args.json then common.print_json({ signature = hex }) else io.stdout:write(hex, "\n") end
    return 0
  end
  local valid = thinkific.verify(body, args.signature, secret)
  if args.json then
    common.print_json({ valid = valid })
  else
    io.stdout:write(valid and "valid" or "invalid", "\n")
  end
  return valid and 0 or 1
end

function _M.sign(argv, getenv) return run("sign", argv, getenv) end
function _M.verify(argv, getenv) return run("verify", argv, getenv) end

return _M
