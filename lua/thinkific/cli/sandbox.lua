-- `thinkific sandbox`: parses the options, starts the server, prints its URL as the first
-- line of output (then the credentials it accepts when they are its defaults, and the
-- environment to paste), and serves until killed, Ctrl-C or, with --parent-pipe, until stdin
-- closes. `thinkific sandbox trigger …` is sandbox/trigger.lua's.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local options = require("thinkific.sandbox.options")

local _M = {}

local function parser()
  local p = argparse("thinkific sandbox",
    "Run a Thinkific-compatible Webhooks API server for tests, on loopback.")
  p:add_help(false)
  p:flag("-h --help", "Show this help and exit.")
  common.address_options(p)
  p:option("--api-key", "API key clients must send as the bearer credential (default "
    .. "$" .. options.ENV_API_KEY .. " or sandbox-key).")
  p:option("--secret", "Secret that signs deliveries (default $" .. options.ENV_SECRET
    .. " or the API key).")
  p:option("--tls-cert", "PEM certificate file: serve https.")
  p:option("--tls-key", "PEM private key file for --tls-cert.")
  p:option("--subdomain", "X-Thinkific-Subdomain of deliveries.", "sandbox")
  p:option("--delivery-attempts", "Attempts per delivery, the first included.", "5")
  p:option("--delivery-timeout", "Seconds for one delivery attempt.", "5")
  p:option("--delivery-backoff", "Seconds before the second attempt; doubles each time.", "0.25")
  p:option("--delivery-concurrency", "Delivery attempts in flight at once.", "32")
  p:option("--rate-limit", "Thinkific's rate limit, e.g. 120/min: each site's API requests "
    .. "beyond it in a minute get 429 with RateLimit-Reset (default: no limit).")
  p:option("--rate-window", "Seconds the --rate-limit counts in, instead of a minute (for "
    .. "tests).")
  p:flag("-v --verbose", "Log one line per request on stderr: method, path, status, ms.")
  p:flag("--parent-pipe", "Also stop when standard input closes.")
  p:epilog("Commands:\n"
    .. "   trigger TOPIC [--payload FILE] [--sandbox URL]\n"
    .. "                         Trigger an event in a running sandbox (see\n"
    .. "                         'thinkific sandbox trigger --help').")
  return p
end

local function usage_error(p, message)
  return common.usage_error(p, "thinkific sandbox", message)
end

-- A value for an export line: as it is when the shell reads it so, else quoted.
local function shell_word(s)
  if s:find("^[%w%-%._/:,+=@]+$") then return s end
  return require("thinkific.sandbox.process").quote(s)
end

-- The lines after the URL: the API key and the signing secret when they are the defaults
-- (given ones are never printed), and the variables the other commands read.
function _M.startup_lines(url, key_given, secret_given)
  local key = options.DEFAULT_API_KEY
  local export = "export " .. common.ENV_BASE_URL .. "=" .. shell_word(url)
  local lines = {}
  if key_given then
    lines[1] = "API key: the one given (not shown)"
  else
    lines[1] = "API key: " .. key .. " (the default)"
    export = export .. " " .. common.ENV_API_KEY .. "=" .. key
  end
  if secret_given then
    lines[2] = "signing secret: the one given (not shown)"
  elseif key_given then
    lines[2] = "signing secret: the API key given (not shown)"
  else
    lines[2] = "signing secret: " .. key .. " (the default: the API key)"
    export = export .. " " .. common.ENV_SECRET .. "=" .. key
  end
  lines[3] = export
  return lines
end

-- argv: the arguments after "sandbox". env: a getenv function (os.getenv by default).
-- Returns the exit status: 0 after serving, 130 after Ctrl-C, 1 when the server cannot start,
-- 2 on usage errors.
function _M.main(argv, getenv)
  getenv = getenv or os.getenv
  if argv[1] == "trigger" then
    return require("thinkific.sandbox.trigger").main({ table.unpack(argv, 2) }, getenv)
  end
  local p = parser()
  local ok, args = p:pparse(argv)
  if not ok then return usage_error(p, args) end
  if args.help then
    io.stdout:write(p:get_help(), "\n")
    return 0
  end
  local port, bad_port = common.port(args)
  if not port then return usage_error(p, bad_port) end
  if (args.tls_cert == nil) ~= (args.tls_key == nil) then
    return usage_error(p, "--tls-cert and --tls-key go together")
  end
  local api_key = args.api_key or getenv(options.ENV_API_KEY)
  if api_key == "" then return usage_error(p, "the API key must not be empty") end
  local secret = args.secret or getenv(options.ENV_SECRET)
  if secret == "" then secret = nil end
  local rate_limit, rate_window = nil, nil
  if args.rate_limit then
    local n = args.rate_limit:match("^(%d+)/min$") or args.rate_limit:match("^(%d+)$")
    rate_limit = math.tointeger(tonumber(n)) or false
    if not rate_limit then
      return usage_error(p, "--rate-limit must read N/min, e.g. 120/min")
    end
  end
  if args.rate_window then rate_window = tonumber(args.rate_window) or false end
  -- A value that is no number becomes false, which the check refuses (nil would mean: default).
  local delivery = {
    rate_limit = rate_limit, rate_window = rate_window,
    subdomain = args.subdomain,
    delivery_attempts = math.tointeger(tonumber(args.delivery_attempts)) or false,
    delivery_timeout = tonumber(args.delivery_timeout) or false,
    delivery_backoff = tonumber(args.delivery_backoff) or false,
    delivery_concurrency = math.tointeger(tonumber(args.delivery_concurrency)) or false,
  }
  local checked, why = options.check(delivery)
  if not checked then
    return usage_error(p, "--" .. why:gsub("^(%S+)", function(name) return (name:gsub("_", "-")) end))
  end

  -- This process is the server's alone: a collection starts once garbage reaches half the live
  -- data, not all of it (Lua's default), so that a large request's churn (a million one-byte
  -- chunks, spec/http_reader_spec.lua) peaks under four times its body whatever the size of
  -- the code loaded (measured at the default: 3.5 to 4.3 times, by where a cycle falls).
  collectgarbage("incremental", 150)
  local server_mod = require("thinkific.sandbox.server")
  local server, err = server_mod.new({
    host = args.host, port = port, api_key = api_key or options.DEFAULT_API_KEY, secret = secret,
    tls_cert = args.tls_cert, tls_key = args.tls_key,
    subdomain = checked.subdomain, delivery_attempts = checked.delivery_attempts,
    delivery_timeout = checked.delivery_timeout, delivery_backoff = checked.delivery_backoff,
    delivery_concurrency = checked.delivery_concurrency,
    rate_limit = checked.rate_limit, rate_window = checked.rate_window,
    log = args.verbose and function(line) io.stderr:write(line, "\n") end or nil,
  })
  if not server then return common.fail("thinkific sandbox", err.message) end
  -- The URL first: spawn and scripts read that line.
  io.stdout:write(server.url, "\n", table.concat(_M.startup_lines(server.url, api_key ~= nil,
    secret ~= nil), "\n"), "\n")
  io.stdout:flush()
  if args.parent_pipe then server:watch_stdin() end
  local status
  status, err = require("thinkific.cli.interrupt").serve(server)
  if not status then return common.fail("thinkific sandbox", err) end
  return status
end

return _M
