-- Shared by the `thinkific` subcommands: usage errors (exit 2), runtime failures (one line on
-- stderr, exit 1), --help, the client from the environment, input files and output. Nothing
-- here prints a credential or a secret.
local checks = require("thinkific.args")

local _M = {}

_M.ENV_API_KEY = "THINKIFIC_API_KEY"
_M.ENV_ACCESS_TOKEN = "THINKIFIC_ACCESS_TOKEN"
_M.ENV_SUBDOMAIN = "THINKIFIC_SUBDOMAIN"
_M.ENV_BASE_URL = "THINKIFIC_BASE_URL"
_M.ENV_SECRET = "THINKIFIC_WEBHOOK_SECRET"
_M.ENV_RATE_LIMIT = "THINKIFIC_RATE_LIMIT"
_M.ENV_RATE_LIMIT_STORE = "THINKIFIC_RATE_LIMIT_STORE"
-- The rate limit's window in seconds instead of a minute: for tests (not in --help).
_M.ENV_RATE_WINDOW = "THINKIFIC_RATE_WINDOW"

-- Writes the parser's usage (p: an argparse parser, or nil) and "prog: message"; returns 2.
-- argparse's own "Did you mean" line joins the message.
function _M.usage_error(p, prog, message)
  if p then io.stderr:write(p:get_usage(), "\n\n") end
  message = tostring(message):gsub("\nDid you mean ", ": did you mean ")
  io.stderr:write(prog, ": ", message:match("^[^\n]*"), "\n")
  return 2
end

-- Writes "prog: <first line of tostring(err)>"; returns 1.
function _M.fail(prog, err)
  io.stderr:write(prog, ": ", tostring(err):match("^[^\n]*"), "\n")
  return 1
end

-- True when argv asks for help (before a "--").
function _M.wants_help(argv)
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then return true end
    if a == "--" then break end
  end
  return false
end

-- The options of a command that serves: --host and --port (0: a free port, the default).
function _M.address_options(p)
  p:option("--host", "Address to listen on.", "127.0.0.1")
  p:option("--port", "Port to listen on (0: any free port).", "0")
end

-- The port of args (from address_options), or nil and the message of a usage error.
function _M.port(args)
  local port = args.port:find("^%d+$") and tonumber(args.port)
  if not port or port > 65535 then return nil, "--port must be a number 0..65535" end
  return port
end

-- Prints p's help on stdout; returns 0.
function _M.help(p)
  io.stdout:write(p:get_help(), "\n")
  return 0
end

-- Parses argv with p: args, or nil and the exit status of a usage error (or 0 after --help).
function _M.parse(p, prog, argv)
  if _M.wants_help(argv) then return nil, _M.help(p) end
  local ok, args = p:pparse(argv)
  if not ok then return nil, _M.usage_error(p, prog, args) end
  return args
end

-- A command with actions (webhooks, inbox, quests): argv[1] is the action, one of actions
-- (help, -h, --help: top_usage(io.stdout), exit 0; none or another: top_usage on stderr and a
-- usage error with a did-you-mean), the rest parsed by parser(action). Returns action, the
-- parser and args; or nil and the exit status.
function _M.action(argv, prog, actions, top_usage, parser)
  local action = argv[1]
  if action == "--help" or action == "-h" or action == "help" then
    top_usage(io.stdout)
    return nil, 0
  end
  local known = false
  for _, a in ipairs(actions) do known = known or a == action end
  if not known then
    top_usage(io.stderr)
    if action == nil then
      return nil, _M.usage_error(nil, prog, "an action is required (" .. table.concat(actions, ", ") .. ")")
    end
    return nil, _M.usage_error(nil, prog, "unknown action '" .. _M.printable(action) .. "'"
      .. require("thinkific.cli.suggest").hint(action, actions))
  end
  local p = parser(action)
  local args, status = _M.parse(p, prog, { table.unpack(argv, 2) })
  if not args then return nil, status end
  return action, p, args
end

-- The value of the variable `name`, nil when unset or empty.
local function nonempty(getenv, name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end
_M.nonempty = nonempty

-- The CA bundle variables, in the order the curl tool reads them (libcurl itself reads none).
_M.ENV_CA_FILES = { "CURL_CA_BUNDLE", "SSL_CERT_FILE" }

-- The CA bundle to trust: --ca-file (option), else $CURL_CA_BUNDLE, else $SSL_CERT_FILE.
-- Returns a readable path and where it came from, false when none is given (libcurl's own
-- bundle then), or nil and a message naming where the path came from.
function _M.ca_file(option, getenv)
  getenv = getenv or os.getenv
  local path, from = option, "--ca-file"
  if not path or path == "" then
    path = nil
    for _, name in ipairs(_M.ENV_CA_FILES) do
      path, from = nonempty(getenv, name), "$" .. name
      if path then break end
    end
  end
  if not path then return false end
  local f, err = io.open(path, "rb")
  if not f then
    local hint = from == "--ca-file" and "" or " (install ca-certificates, or pass --ca-file FILE)"
    return nil, string.format("%s: cannot read %s%s", from, tostring(err), hint)
  end
  f:close()
  return path, from
end

-- The --ca-file option of every command that talks to the API.
_M.CA_FILE_HELP = "The CA certificates to trust (PEM) over https: a private CA, or a test "
  .. "server's self-signed certificate. Default: $CURL_CA_BUNDLE, else $SSL_CERT_FILE, else "
  .. "libcurl's own bundle."

-- The variables a command that talks to the API reads, for its --help.
_M.API_ENVIRONMENT = string.format("Environment:\n  %s or %s: the credential\n"
  .. "  %s: sent as X-Auth-Subdomain\n  %s: default https://api.thinkific.com/api/v2\n"
  .. "  %s, else %s: a CA bundle, when --ca-file is not given\n"
  .. "  %s: requests per minute, or off (default 120 against Thinkific's API)\n"
  .. "  %s: a budget shared with other processes (sqlite:PATH or postgres://...)",
  _M.ENV_API_KEY, _M.ENV_ACCESS_TOKEN, _M.ENV_SUBDOMAIN, _M.ENV_BASE_URL, _M.ENV_CA_FILES[1],
  _M.ENV_CA_FILES[2], _M.ENV_RATE_LIMIT, _M.ENV_RATE_LIMIT_STORE)

-- The width command help is wrapped to.
_M.HELP_WIDTH = 80

-- A URL as it may be shown: no user information, no query, no fragment. The user info is
-- everything up to the last '@': RFC 3986's reading of every URL args.userinfo_problem lets
-- through (one '@', before the host), and the cautious one of the others.
function _M.shown_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then scheme, rest = "", url end
  rest = rest:match("^.*@(.*)$") or rest
  return scheme .. rest:gsub("[?#].*$", "")
end

-- Why a command cannot send to url (nil when it can), to follow its name ("URL", "--sandbox"):
-- http or https, a host, one line, and user information that reads one way only.
function _M.url_problem(url)
  if not checks.one_line(url) then return "must not contain CR, LF or NUL" end
  local scheme, _, host = checks.url_parts(url)
  scheme = scheme and scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return "must be http:// or https://" end
  if host == "" then return "has no host" end
  return checks.userinfo_problem(url)
end

-- s as a message may quote it: on one line (control bytes as \r, \n, \0, \xNN), at most
-- PRINTABLE_MAX bytes of it ("..." after a longer one). A value from the user never reaches
-- the terminal raw.
_M.PRINTABLE_MAX = 100
local ESCAPES = { ["\r"] = "\\r", ["\n"] = "\\n", ["\t"] = "\\t", ["\0"] = "\\0" }

function _M.printable(s)
  s = tostring(s)
  local long = #s > _M.PRINTABLE_MAX
  if long then s = s:sub(1, _M.PRINTABLE_MAX) end
  s = s:gsub("%c", function(c) return ESCAPES[c] or ("\\x%02X"):format(c:byte()) end)
  return long and s .. "..." or s
end

-- Why thinkific.new refused the settings, in words that name the variable to fix. raised: the
-- error it raised. Its reasons are built from option names, never values; should one ever
-- quote a secret, the variables are named instead.
local function settings_error(raised, secrets, ca_from)
  local reason = tostring(raised):match("bad argument #%d+ to 'new' %((.*)%)$")
  local quoted = not reason
  for _, secret in ipairs(secrets) do quoted = quoted or reason:find(secret, 1, true) end
  if quoted then
    return string.format("invalid client settings: check %s/%s, %s and %s", _M.ENV_API_KEY,
      _M.ENV_ACCESS_TOKEN, _M.ENV_SUBDOMAIN, _M.ENV_BASE_URL)
  end
  local option = reason:match("^'([%w_]+)'")
  local where = ({ base_url = _M.ENV_BASE_URL, subdomain = _M.ENV_SUBDOMAIN,
    api_key = _M.ENV_API_KEY, access_token = _M.ENV_ACCESS_TOKEN, ca_file = ca_from,
    rate_limit_store = _M.ENV_RATE_LIMIT_STORE })[option]
  return where and (where .. ": " .. reason) or reason
end

-- What to do about a TLS failure (libcurl's message), "" when there is no hint: ca_from: where
-- the CA bundle came from (nil: libcurl's own); host_source: what gave the host name, for a
-- certificate of another host (nil: no hint).
local function tls_hint(message, ca_from, host_source)
  if tostring(message):find("host name", 1, true) then
    return host_source and "; the certificate does not name the host of " .. host_source or ""
  elseif ca_from then
    return string.format("; the CA bundle from %s cannot verify this server: pass its CA (or its "
      .. "own certificate) as --ca-file FILE, in PEM", ca_from)
  end
  return "; for a private CA or a self-signed test certificate pass --ca-file FILE"
end

-- Hints for an API failure of a client made from the environment: what to check.
-- credential_used: the variable that gave the credential; ca_from: where the CA bundle came
-- from (nil: libcurl's own).
local function explainer(credential_used, base_url, ca_from)
  local other = credential_used == _M.ENV_API_KEY and _M.ENV_ACCESS_TOKEN or _M.ENV_API_KEY
  local without_v2 = base_url and not base_url:find("/api/v2", 1, true)
    and _M.shown_url(base_url)
  return function(err)
    local text = tostring(err):match("^[^\n]*")
    if type(err) ~= "table" then return text end
    if err.status == 401 then
      text = text .. string.format(": check %s (or %s)", credential_used, other)
    elseif err.status == 404 and without_v2 then
      text = text .. string.format(" (is %s right? it is %s, without /api/v2)", _M.ENV_BASE_URL,
        without_v2)
    elseif err.kind == "tls" then
      text = text .. tls_hint(err.message, ca_from, _M.ENV_BASE_URL)
    end
    return text
  end
end

-- One request of a command that sends on its own (deliver, sandbox trigger) through
-- core.send: opts as core.send takes them; over https the CA bundle from --ca-file or the
-- environment (_M.ca_file, read before anything is sent). Returns the status and the body of
-- the answer; or nil and one line: the CA file's problem, or "POST URL: why" with the URL as
-- _M.shown_url gives it, naming --timeout when it ran out and --ca-file as the fix of a
-- certificate that cannot be verified; or nil, one line and true for a value that cannot be
-- sent (CR, LF or NUL in a header or the URL): a usage error.
function _M.send(opts, ca_option, getenv)
  -- Checked here, where the request is built: no header value may add a header. core.send
  -- checks them and the URL again, and raises: what it refuses is the user's, a usage error.
  for name, value in pairs(opts.headers or {}) do
    if not (checks.one_line(name) and checks.one_line(value)) then
      return nil, "header '" .. _M.printable(name) .. "' must not contain CR, LF or NUL", true
    end
  end
  local ca_from
  if opts.url:lower():find("^https:") then
    local ca_file
    ca_file, ca_from = _M.ca_file(ca_option, getenv)
    if ca_file == nil then return nil, ca_from end
    opts.ca_file = ca_file or nil
  end
  local ok, status, err, body = pcall(require("thinkific.core").send, opts)
  if not ok then return nil, tostring(status):match("%((.*)%)$") or "invalid request", true end
  if status then return status, body end
  local why = err.message
  if err.kind == "timeout" then
    why = string.format("no answer within %g s (--timeout)", opts.timeout)
  elseif err.kind == "tls" then
    why = why .. tls_hint(why, ca_from)
  end
  return nil, string.format("%s %s: %s", opts.method, _M.shown_url(opts.url), why)
end

-- The API session of a command: a client from THINKIFIC_API_KEY or THINKIFIC_ACCESS_TOKEN,
-- THINKIFIC_SUBDOMAIN, THINKIFIC_BASE_URL and the CA bundle (_M.ca_file), as
-- { client = c, explain = function(err) -> one line with a hint, fail = function(err) -> 1 }.
-- Or nil and the exit status, the message printed: 2 for settings to mend (naming variables,
-- never their values), 1 for a CA file that cannot be read.
function _M.api(prog, ca_option, getenv)
  getenv = getenv or os.getenv
  if ca_option == "" then return nil, _M.usage_error(nil, prog, "--ca-file must not be empty") end
  local api_key = nonempty(getenv, _M.ENV_API_KEY)
  local token = nonempty(getenv, _M.ENV_ACCESS_TOKEN)
  if not api_key and not token then
    return nil, _M.usage_error(nil, prog, string.format("no credential: set %s or %s",
      _M.ENV_API_KEY, _M.ENV_ACCESS_TOKEN))
  end
  if api_key and token then
    return nil, _M.usage_error(nil, prog, string.format("both %s and %s are set: unset one",
      _M.ENV_API_KEY, _M.ENV_ACCESS_TOKEN))
  end
  local ca_file, ca_from = _M.ca_file(ca_option, getenv)
  if ca_file == nil then return nil, _M.fail(prog, ca_from) end
  local base_url = nonempty(getenv, _M.ENV_BASE_URL)
  local rate, bad_rate = require("thinkific.cli.rate_limit").options(getenv, base_url)
  if not rate then return nil, _M.usage_error(nil, prog, bad_rate) end
  local opts = { subdomain = nonempty(getenv, _M.ENV_SUBDOMAIN), base_url = base_url,
    ca_file = ca_file or nil, api_key = api_key, access_token = token,
    rate_limit = rate.limit, rate_limit_store = rate.store, rate_window = rate.window }
  local ok, client = pcall(require("thinkific").new, opts)
  if not ok then
    local secrets = { api_key or token }
    -- Everything up to the last '@' may be user info (a password can hold '/', '?', '#').
    for _, url in ipairs{ base_url or "", rate.store or "" } do
      local userinfo = url:match("^%a[%w+.-]*://(.*)@")
      if userinfo and userinfo ~= "" then secrets[#secrets + 1] = userinfo end
    end
    return nil, _M.usage_error(nil, prog, settings_error(client, secrets, ca_from))
  end
  local explain = explainer(api_key and _M.ENV_API_KEY or _M.ENV_ACCESS_TOKEN, base_url,
    ca_file and ca_from or nil)
  return {
    client = client,
    explain = explain,
    fail = function(err)
      io.stderr:write(prog, ": ", explain(err), "\n")
      return 1
    end,
  }
end

-- The signing secret from THINKIFIC_WEBHOOK_SECRET, or nil and a message.
function _M.secret(getenv)
  local secret = nonempty(getenv or os.getenv, _M.ENV_SECRET)
  if not secret then return nil, "no signing secret: set " .. _M.ENV_SECRET end
  return secret
end

-- The bytes of path, or of stdin when path is nil or "-". Returns text, or nil, message.
function _M.read_input(path)
  if path == nil or path == "-" then return io.stdin:read("a") or "" end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text or ""
end

-- Prints value as JSON on stdout. Returns true, or nil, err.
function _M.print_json(value)
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
function _M.webhook_line(w)
  return string.format("%s\t%s\t%s", field(w.id), field(w.topic), field(w.target_url))
end

-- Is file descriptor fd (1: stdout, 2: stderr) a terminal?
function _M.is_tty(fd)
  local ok, code = pcall(os.execute, "test -t " .. fd)
  if not ok then return false end
  return code == true or code == 0
end

-- Progress of a long run: nothing until it has taken PROGRESS_DELAY seconds (short runs stay
-- quiet), then one stderr line rewritten at most every PROGRESS_EVERY seconds.
_M.PROGRESS_DELAY = 1
_M.PROGRESS_EVERY = 0.1

-- Returns a reporter { active = boolean, show = function(line, final), finish = function() };
-- inactive (both do nothing) when stderr is not a terminal, or when `quiet`. `final` shows
-- the last figures even between two ticks.
function _M.progress(quiet)
  local reporter = { active = false, show = function() end, finish = function() end }
  if quiet or not _M.is_tty(2) then return reporter end
  reporter.active = true
  local now = require("thinkific.core").now
  local start, last, width, shown = now(), -math.huge, 0, nil
  function reporter.show(line, final)
    local t = now()
    if t - start < _M.PROGRESS_DELAY or (not final and t - last < _M.PROGRESS_EVERY)
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

return _M
