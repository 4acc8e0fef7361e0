-- examples/quests: hooks.lua (the rules file of `thinkific listen`) scores deliveries that an
-- inbox took in, with the sandboxed rules of quests.lua, and the board is read from the shell;
-- examples/quests/run does all of it with `thinkific listen --inbox`. #lua54: child processes.
local helper = require("spec.helper")
local process = require("thinkific.sandbox.process")

local ROOT = helper.repo
local SECRET = "quests-example-spec-secret"

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- "env LUA_PATH_5_4=… LUA_CPATH_5_4=… name=value… " for a child process.
local function env_prefix(vars)
  local path, cpath = helper.lua54_paths()
  local parts = { "env -u LUA_INIT -u LUA_INIT_5_4", "LUA_PATH_5_4=" .. process.quote(path),
    "LUA_CPATH_5_4=" .. process.quote(cpath) }
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. process.quote(v) end
  return table.concat(parts, " ") .. " "
end

-- Takes in the example's events (one of them twice) through an inbox with hooks.lua's router,
-- works them, prints "scored N".
local DRIVER = [[
local thinkific = require("thinkific")
local router = dofile("examples/quests/hooks.lua")
local inbox = assert(thinkific.inbox{ store = arg[1], router = router })
local files = {}
for f in io.popen("ls examples/quests/events/*.json"):lines() do files[#files + 1] = f end
files[#files + 1] = files[3]
for _, f in ipairs(files) do
  local body = io.open(f):read("a")
  local signature = thinkific.sign(body, os.getenv("THINKIFIC_WEBHOOK_SECRET"))
  local status = inbox:accept(body, { ["X-Thinkific-Hmac-Sha256"] = signature })
  assert(status == 200, "accept answered " .. status)
end
local n = 0
for _ = 1, 100 do
  n = n + assert(inbox:work{ wait = 0.1 })
  if n >= 8 then break end
end
print("scored " .. n)
]]

describe("examples/quests #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  it("hooks.lua scores what an inbox took in, and the shell reads the board", function()
    local store = "sqlite:" .. dir .. "/quests.db"
    local script = helper.write(dir, "driver.lua", DRIVER)
    local out, status = helper.capture("cd " .. process.quote(ROOT) .. " && "
      .. env_prefix({ THINKIFIC_WEBHOOK_SECRET = SECRET, THINKIFIC_QUESTS = store })
      .. "timeout 60 lua5.4 " .. process.quote(script) .. " "
      .. process.quote("sqlite:" .. dir .. "/inbox.db") .. " 2>&1")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("Aisha Khan reached level 2 (from 1)", 1, true), out)
    assert.truthy(out:find("scored 8\n", 1, true), out)
    local run = helper.cli({ THINKIFIC_QUESTS = store })
    local code, board = run({ "quests", "board", "--course", "4" })
    assert.are.equal(0, code)
    assert.are.same({ "1\t123457\t140\t2\tAisha Khan", "2\t123456\t40\t1\tRobert Smith" }, lines(board))
    local _, player = run({ "quests", "player", "123457", "--course", "4" })
    assert.truthy(player:find("badges\tHalfway Hero, Course Conqueror, Webhook Wizard", 1, true), player)
  end)

  it("run: the whole walk-through with thinkific listen --inbox", function()
    local help = helper.capture(env_prefix({}) .. "lua5.4 "
      .. process.quote(ROOT .. "/bin/thinkific") .. " listen --help")
    if not help:find("--inbox", 1, true) then
      pending("thinkific listen --inbox is not in this tree yet: the example runs once the inbox's "
        .. "command line is merged")
      return
    end
    local out, status = helper.capture(env_prefix({}) .. "timeout 120 sh "
      .. process.quote(ROOT .. "/examples/quests/run") .. " 2>&1")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("1\t123457\t140\t2\tAisha Khan\n2\t123456\t40\t1\tRobert Smith\n", 1, true), out)
    assert.truthy(out:find("badges\tHalfway Hero, Course Conqueror, Webhook Wizard", 1, true), out)
  end)
end)
