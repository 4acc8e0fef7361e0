-- Shared by every spec: paths to fixtures, a sandbox per spec file, and the forced-GC pass.
local busted = require("busted")

local helper = {}

local SPEC_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
helper.fixtures = SPEC_DIR .. "/fixtures"

function helper.read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

function helper.fixture(name)
  return helper.read(helper.fixtures .. "/" .. name)
end

-- The memory pass (make check) sets THINKIFIC_FORCE_GC: collect after every test so that
-- valgrind sees objects freed while the specs run, not only at exit.
-- (.busted loads this file once as busted's helper; specs then find it in package.loaded.)
if os.getenv("THINKIFIC_FORCE_GC") then
  busted.subscribe({ "test", "end" }, function()
    collectgarbage()
    collectgarbage()
    return nil, true
  end)
end

-- A sandbox child process for the current spec file; stopped by the caller's teardown.
function helper.sandbox(opts)
  return require("thinkific.sandbox").spawn(opts or { port = 0 })
end

-- A client for a sandbox, with no real waiting between retries unless asked.
function helper.client(sb, opts)
  local thinkific = require("thinkific")
  local o = { api_key = sb.api_key or "sandbox-key", base_url = sb.url,
    sleep = function() end, timeout = 10, connect_timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(thinkific.new(o))
end

package.loaded["spec.helper"] = helper
return helper
