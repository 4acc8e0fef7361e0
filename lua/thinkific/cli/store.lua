-- The inbox store of the commands that use one (`listen --inbox`, `work`, `inbox …`): its URL
-- from --inbox or THINKIFIC_INBOX, the inbox options a rules file may return, and the inbox
-- opened with one clear line for each way it can fail. Nothing here shows a store's password:
-- the messages are thinkific.sql's, which show the URL with the password as ***.
local _M = {}

_M.ENV = "THINKIFIC_INBOX"

_M.HELP = "The inbox store: sqlite:PATH or postgres://user:password@host:port/db "
  .. "(default: $" .. _M.ENV .. ")."

_M.ENVIRONMENT = "Environment:\n  " .. _M.ENV .. ": the store, when --inbox is not given "
  .. "(keeps a password off the command line)"

-- The inbox options a rules file may give (its second return value).
local RULES_OPTIONS = { lease = true, max_attempts = true, backoff = true, keep = true }

-- The store URL: the option, else $THINKIFIC_INBOX. nil and a usage message when neither.
function _M.url(option, getenv)
  local url = option
  if url == nil or url == "" then url = (getenv or os.getenv)(_M.ENV) end
  if url == nil or url == "" then
    return nil, "no inbox store: pass --inbox STORE or set " .. _M.ENV
  end
  return url
end

-- Checks the inbox options of a rules file (nil: none). Returns them, or nil and a message.
function _M.rules_options(path, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    return nil, string.format("%s: its second value must be a table of inbox options, got %s",
      path, type(opts))
  end
  for k in pairs(opts) do
    if not RULES_OPTIONS[k] then
      return nil, string.format("%s: unknown inbox option '%s' (lease, max_attempts, backoff, keep)",
        path, require("thinkific.cli.common").printable(k))
    end
  end
  return opts
end

-- Opens the inbox on url with router and opts (the rules file's options). Returns the inbox,
-- or nil, a message and the exit status: 2 for a URL that names no store (a usage error),
-- 1 for a store that cannot be opened, and for options the inbox refuses (the rules file's).
-- (thinkific.sql's messages never quote a URL but with its password as ***.)
function _M.open(url, router, opts)
  local o = { store = url, router = router }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ok, inbox, err = pcall(require("thinkific.inbox").new, o)
  if not ok then
    local message = tostring(inbox)
    local reason = message:match("bad argument #1 to 'inbox' %((.*)%)$") or message
    local store_problem = reason:match("^store: (.*)$")
    if store_problem then return nil, "--inbox: " .. store_problem, 2 end
    return nil, "inbox options: " .. reason, 1
  end
  if not inbox then return nil, tostring(err), 1 end
  return inbox
end

-- For the commands that only look and repair (`thinkific inbox …`): the inbox on url without
-- a rules file (its router has a secret no one knows: these commands never accept or work).
-- A SQLite file that does not exist is not made: nil, message, 1.
function _M.open_existing(url)
  local ok, target = pcall(require("thinkific.sql").parse, url)
  if ok and target.engine == "sqlite" then
    local f = io.open(target.source, "rb")
    if not f then
      return nil, target.shown .. ": no such inbox (thinkific listen --inbox or thinkific work "
        .. "makes it)", 1
    end
    f:close()
  end
  local secret = string.format("admin-%x-%x", os.time(), math.random(0, 0x3fffffff))
  local router = require("thinkific.router").new{ secret = secret }
  return _M.open(url, router)
end

return _M
