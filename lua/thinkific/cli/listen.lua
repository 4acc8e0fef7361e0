-- `thinkific listen [--host 127.0.0.1] [--port N] RULES.lua`: loads RULES.lua (a Lua file that
-- returns a router), serves deliveries with it, prints its URL as the first line of output
-- and one line per delivery. Nothing it prints holds a secret.
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local callable = require("thinkific.args").callable

local _M = {}

local function parser()
  local p = argparse("thinkific listen",
    "Receive Thinkific deliveries on a local HTTP server and hand them to a router.")
  p:add_help(false)
  p:flag("-h --help", "Show this help and exit.")
  common.address_options(p)
  p:argument("rules", "A Lua file that returns a router (thinkific.router{...}).")
  return p
end

local function usage_error(p, message)
  return common.usage_error(p, "thinkific listen", message)
end

local function fail(message)
  return common.fail("thinkific listen", message)
end

-- Runs RULES.lua as dofile would. Returns the router, or nil, message.
function _M.load_rules(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, router = pcall(chunk)
  if not ok then
    local message = tostring(router)
    if message:sub(1, #path) ~= path then message = path .. ": " .. message end
    return nil, message
  end
  local indexable = type(router) == "table" or type(router) == "userdata"
  local found, handle = pcall(function() return router.handle end)
  if not (indexable and found and callable(handle)) then
    return nil, string.format("%s returned %s, not a router (end it with: return router)",
      path, type(router))
  end
  return router
end

-- argv: the arguments after "listen". Returns the exit status: 0 after serving, 130 after
-- Ctrl-C, 1 when the rules or the server fail, 2 on usage errors.
function _M.main(argv)
  local p = parser()
  -- --help before anything else, so that it works whatever else is (not) given.
  for _, a in ipairs(argv) do
    if a == "--help" or a == "-h" then
      io.stdout:write(p:get_help(), "\n")
      return 0
    end
    if a == "--" then break end
  end
  local ok, args = p:pparse(argv)
  if not ok then return usage_error(p, args) end
  local port, bad_port = common.port(args)
  if not port then return usage_error(p, bad_port) end

  local router, err = _M.load_rules(args.rules)
  if not router then return fail(err) end
  local out = io.stdout
  local server
  server, err = require("thinkific.listen").serve({
    router = router, host = args.host, port = port,
    log = function(line)
      out:write(line, "\n")
      out:flush()
    end,
  })
  if not server then return fail(err.message) end
  out:write(server.url, "\n")
  out:flush()
  -- Ctrl-C: 130, quietly, the socket closed.
  local status, why = require("thinkific.cli.interrupt").serve(server)
  if not status then return fail(why) end
  return status
end

return _M
