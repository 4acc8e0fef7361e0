-- Shared by the `thinkific` subcommands: usage errors (exit 2), runtime failures (one line on
-- stderr, exit 1), --help, the client from the environment, input files and output. Nothing
-- here prints a credential or a secret.
local M = {}

M.ENV_API_KEY = "THINKIFIC_API_KEY"
M.ENV_ACCESS_TOKEN = "THINKIFIC_ACCESS_TOKEN"
M.ENV_SUBDOMAIN = "THINKIFIC_SUBDOMAIN"
M.ENV_BASE_URL = "THINKIFIC_BASE_URL"
M.ENV_SECRET = "THINKIFIC_WEBHOOK_SECRET"
M.ENV_CA_FILE = "SSL_CERT_FILE"

-- Writes the parser's usage (p: an argparse parser, or nil) and "prog: message"; returns 2.
function M.usage_error(p, prog, message)
  if p then io.stderr:write(p:get_usage(), "\n\n") end
  io.stderr:write(prog, ": ", tostring(message):match("^[^\n]*"), "\n")
  return 2
end

-- Writes "prog: <first line of tostring(err)>"; returns 1.
function M.fail(prog, err)
  io.stderr:write(prog, ": ", tostring(err):match("^[^\n]*"), "\n")
  return 1
end

-- True when argv asks for help (before a "--").
function M.wants_help(argv)
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then return true end
    if a == "--" then break end
  end
  return false
end

-- Prints p's help on stdout; returns 0.
function M.help(p)
  io.stdout:write(p:get_help(), "\n")
  return 0
end

-- Parses argv with p: args, or nil and the exit status of a usage error (or 0 after --help).
function M.parse(p, prog, argv)
  if M.wants_help(argv) then return nil, M.help(p) end
  local ok, args = p:pparse(argv)
  if not ok then return nil, M.usage_error(p, prog, args) end
  return args
end

local function nonempty(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

-- A client from THINKIFIC_API_KEY or THINKIFIC_ACCESS_TOKEN, THINKIFIC_SUBDOMAIN and
-- THINKIFIC_BASE_URL; https to the API trusts the CA file SSL_CERT_FILE names when it is set
-- (a private CA, a sandbox's self-signed certificate), as `deliver` does. Returns the client,
-- or nil and a message (a usage error) that names variables, never their values.
function M.client(getenv)
  getenv = getenv or os.getenv
  local api_key = nonempty(getenv, M.ENV_API_KEY)
  local token = nonempty(getenv, M.ENV_ACCESS_TOKEN)
  if not api_key and not token then
    return nil, string.format("no credential: set %s or %s", M.ENV_API_KEY, M.ENV_ACCESS_TOKEN)
  end
  local opts = { subdomain = nonempty(getenv, M.ENV_SUBDOMAIN),
    base_url = nonempty(getenv, M.ENV_BASE_URL), ca_file = nonempty(getenv, M.ENV_CA_FILE) }
  if api_key then opts.api_key = api_key else opts.access_token = token end
  local ok, client = pcall(require("thinkific").new, opts)
  if not ok then
    -- The message could quote a value; say which variables to check instead.
    return nil, string.format("invalid client settings: check %s/%s, %s and %s",
      M.ENV_API_KEY, M.ENV_ACCESS_TOKEN, M.ENV_SUBDOMAIN, M.ENV_BASE_URL)
  end
  return client
end

-- The signing secret from THINKIFIC_WEBHOOK_SECRET, or nil and a message.
function M.secret(getenv)
  local secret = nonempty(getenv or os.getenv, M.ENV_SECRET)
  if not secret then return nil, "no signing secret: set " .. M.ENV_SECRET end
  return secret
end

-- The bytes of path, or of stdin when path is nil or "-". Returns text, or nil, message.
function M.read_input(path)
  if path == nil or path == "-" then return io.stdin:read("a") or "" end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text or ""
end

-- Prints value as JSON on stdout. Returns true, or nil, err.
function M.print_json(value)
  local text, err = require("thinkific").encode(value)
  if not text then return nil, err end
  io.stdout:write(text, "\n")
  return true
end

local function field(v)
  if v == nil or v == require("thinkific").null then return "-" end
  return tostring(v)
end

-- One readable line for a webhook: id, topic, target_url.
function M.webhook_line(w)
  return string.format("%s\t%s\t%s", field(w.id), field(w.topic), field(w.target_url))
end

-- Is file descriptor fd (1: stdout, 2: stderr) a terminal?
function M.is_tty(fd)
  local ok, code = pcall(os.execute, "test -t " .. fd)
  if not ok then return false end
  return code == true or code == 0
end

-- Progress of a long run: nothing until it has taken PROGRESS_DELAY seconds (short runs stay
-- quiet), then one stderr line rewritten at most every PROGRESS_EVERY seconds.
M.PROGRESS_DELAY = 1
M.PROGRESS_EVERY = 0.1

-- Returns a reporter { active = boolean, show = function(line, final), finish = function() };
-- inactive (both do nothing) when stderr is not a terminal, or when `quiet`. `final` shows
-- the last figures even between two ticks.
function M.progress(quiet)
  local reporter = { active = false, show = function() end, finish = function() end }
  if quiet or not M.is_tty(2) then return reporter end
  reporter.active = true
  local now = require("thinkific.core").now
  local start, last, width, shown = now(), -math.huge, 0, nil
  function reporter.show(line, final)
    local t = now()
    if t - start < M.PROGRESS_DELAY or (not final and t - last < M.PROGRESS_EVERY)
        or line == shown then
      return
    end
    last, shown = t, line
    io.stderr:write("\r", line, string.rep(" ", width - #line))
    if #line > width then width = #line end
  end
  function reporter.finish()
    if width > 0 then io.stderr:write("\n") end
    width = 0
  end
  return reporter
end

return M
