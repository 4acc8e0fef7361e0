-- `thinkific sandbox`: parses the options, starts the server, prints its URL as the first
-- line of output, and serves until killed or, with --parent-pipe, until stdin closes.
local argparse = require("argparse")
local common = require("thinkific.cli.common")

local M = {}

-- Where `spawn` puts the credentials, so they never appear in a process listing.
M.ENV_API_KEY = "THINKIFIC_SANDBOX_API_KEY"
M.ENV_SECRET = "THINKIFIC_SANDBOX_SECRET"

local function parser()
  local p = argparse("thinkific sandbox",
    "Run a Thinkific-compatible Webhooks API server for tests, on loopback.")
  p:add_help(false)
  p:flag("-h --help", "Show this help and exit.")
  p:option("--host", "Address to listen on.", "127.0.0.1")
  p:option("--port", "Port to listen on (0: any free port).", "0")
  p:option("--api-key", "API key clients must send as the bearer credential (default "
    .. "$" .. M.ENV_API_KEY .. " or sandbox-key).")
  p:option("--secret", "Secret that signs deliveries (default $" .. M.ENV_SECRET
    .. " or the API key).")
  p:option("--tls-cert", "PEM certificate file: serve https.")
  p:option("--tls-key", "PEM private key file for --tls-cert.")
  p:option("--subdomain", "X-Thinkific-Subdomain of deliveries.", "sandbox")
  p:option("--delivery-attempts", "Attempts per delivery, the first included.", "5")
  p:option("--delivery-timeout", "Seconds for one delivery attempt.", "5")
  p:option("--delivery-backoff", "Seconds before the second attempt; doubles each time.", "0.25")
  p:option("--delivery-concurrency", "Delivery attempts in flight at once.", "32")
  p:flag("--parent-pipe", "Also stop when standard input closes.")
  return p
end

local function usage_error(p, message)
  return common.usage_error(p, "thinkific sandbox", message)
end

-- argv: the arguments after "sandbox". env: a getenv function (os.getenv by default).
-- Returns the exit status: 0 after serving, 1 when the server cannot start, 2 on usage errors.
function M.main(argv, getenv)
  getenv = getenv or os.getenv
  local p = parser()
  local ok, args = p:pparse(argv)
  if not ok then return usage_error(p, args) end
  if args.help then
    io.stdout:write(p:get_help(), "\n")
    return 0
  end
  local port = args.port:find("^%d+$") and tonumber(args.port)
  if not port or port > 65535 then return usage_error(p, "--port must be a number 0..65535") end
  if (args.tls_cert == nil) ~= (args.tls_key == nil) then
    return usage_error(p, "--tls-cert and --tls-key go together")
  end
  local api_key = args.api_key or getenv(M.ENV_API_KEY) or "sandbox-key"
  if api_key == "" then return usage_error(p, "the API key must not be empty") end
  local secret = args.secret or getenv(M.ENV_SECRET)
  if secret == "" then secret = nil end
  -- A value that is no number becomes false, which the check refuses (nil would mean: default).
  local delivery = {
    subdomain = args.subdomain,
    delivery_attempts = math.tointeger(tonumber(args.delivery_attempts)) or false,
    delivery_timeout = tonumber(args.delivery_timeout) or false,
    delivery_backoff = tonumber(args.delivery_backoff) or false,
    delivery_concurrency = math.tointeger(tonumber(args.delivery_concurrency)) or false,
  }
  local checked, why = require("thinkific.sandbox.deliveries").options(delivery)
  if not checked then
    return usage_error(p, "--" .. why:gsub("^(%S+)", function(name) return (name:gsub("_", "-")) end))
  end

  local server_mod = require("thinkific.sandbox.server")
  local server, err = server_mod.new({
    host = args.host, port = port, api_key = api_key, secret = secret,
    tls_cert = args.tls_cert, tls_key = args.tls_key,
    subdomain = checked.subdomain, delivery_attempts = checked.delivery_attempts,
    delivery_timeout = checked.delivery_timeout, delivery_backoff = checked.delivery_backoff,
    delivery_concurrency = checked.delivery_concurrency,
  })
  if not server then
    io.stderr:write("thinkific sandbox: ", err, "\n")
    return 1
  end
  io.stdout:write(server.url, "\n")
  io.stdout:flush()
  if args.parent_pipe then server:watch_stdin() end
  server:run()
  return 0
end

return M
