-- Every example runs end to end as a child process (lua5.4, this tree's modules and Lua 5.4
-- build, whatever runs the specs), against the sandbox it starts itself, within a time limit;
-- its exit status and the lines that matter are checked.
local helper = require("spec.helper")

local ROOT = helper.fixtures .. "/../.."
local LIMIT = 60   -- seconds for one example, sandbox start included

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs examples/<name>.lua; returns its output (stdout and stderr) and exit status.
local function run(name)
  local path, cpath = helper.lua54_paths()
  return helper.capture(table.concat({
    "cd", quote(ROOT), "&&",
    "env -u LUA_INIT -u LUA_INIT_5_4",
    "LUA_PATH_5_4=" .. quote(path), "LUA_CPATH_5_4=" .. quote(cpath),
    "timeout -k 5", tostring(LIMIT), "lua5.4", quote("examples/" .. name .. ".lua"), "2>&1",
  }, " "))
end

local function lines(text)
  local list = {}
  for line in text:gmatch("[^\n]*") do list[#list + 1] = line end
  return list
end

local function count(text, plain)
  local n, from = 0, 1
  while true do
    local at = text:find(plain, from, true)
    if not at then return n end
    n, from = n + 1, at + #plain
  end
end

-- Fails with the whole output, so that a broken example explains itself.
local function expect_success(output, status)
  local why = status == 124 and (" (killed after %d s)"):format(LIMIT) or ""
  assert.are.equal(0, status, ("exit status %s%s; output:\n%s"):format(tostring(status), why,
    output))
end

local function expect_line(output, plain)
  assert.truthy(output:find(plain, 1, true), ("expected %q in the output:\n%s"):format(plain, output))
end

describe("examples", function()
  it("automation.lua welcomes each student and tallies the revenue", function()
    local output, status = run("automation")
    expect_success(output, status)
    expect_line(output, "Welcome, Robert, to Introduction to Webhooks!")
    expect_line(output, "Welcome, Aisha, to Introduction to Webhooks!")
    expect_line(output, "Welcome, Mateo, to Introduction to Webhooks!")
    assert.are.equal(1, count(output, "Welcome, Robert,"), "one welcome per enrollment")
    expect_line(output, "Revenue: 21400 cents ($214.00) from 3 orders")
    expect_line(output, "6 events triggered, 6 handled; 6 delivery attempts, 6 answered 2xx")
  end)

  it("automation_inbox.lua stores every delivery, retries the failed welcome, loses nothing", function()
    local output, status = run("automation_inbox")
    expect_success(output, status)
    for _, name in ipairs({ "Robert", "Aisha", "Mateo" }) do
      assert.are.equal(1, count(output, "Welcome, " .. name .. ", to Introduction to Webhooks!"),
        "one welcome for " .. name .. ":\n" .. output)
    end
    assert.are.equal(1, count(output, "(attempt 2)"), output)
    expect_line(output, "inbox                sqlite:")
    expect_line(output, "Revenue: 21000 cents from 3 orders")
    expect_line(output, "inbox: 6 done, 0 retrying, 0 dead")
    expect_line(output, "3 enrollments in 4 attempts")
  end)

  it("enrollment_quests.lua plays the week and prints the leaderboard in order", function()
    local output, status = run("enrollment_quests")
    expect_success(output, status)
    local board, after = {}, false
    for _, line in ipairs(lines(output)) do
      if line == "Leaderboard" then
        after = true
      elseif after then
        local rank, name, xp, badges = line:match("^%s*(%d+)%. (%a+)%s+(%d+) XP%s*(.*)$")
        if rank then board[#board + 1] = { tonumber(rank), name, tonumber(xp), badges } end
      end
    end
    assert.are.same({
      { 1, "Aisha", 155, "Halfway Hero, Course Conqueror, Webhook Wizard" },
      { 2, "Robert", 80, "Halfway Hero" },
      { 3, "Mateo", 40, "" },
      { 4, "Lena", 5, "" },
    }, board, output)
    -- The once-per-student bonus: three students finished a lesson, Mateo one twice.
    assert.are.equal(3, count(output, "first lesson bonus"), output)
    expect_line(output, "Mateo watches lesson 1 again\n      (nothing new)")
    -- The same delivery twice: the router's de-duplication skips the second copy.
    expect_line(output, "once more (the same event)\n      (already handled: the router skipped it)")
  end)

  it("quickstart.lua receives its deliveries and reads the event back by id", function()
    local output, status = run("quickstart")
    expect_success(output, status)
    local id = output:match("handled  (%d+)  welcome, Aisha, to Introduction to Webhooks!")
    assert.truthy(id, "the enrollment was handled:\n" .. output)
    expect_line(output, "order of 12900 cents")
    expect_line(output, "event    " .. id .. "  enrollment.created read back: Aisha")
    assert.truthy(output:find("\ndone\n$"), "ends with done:\n" .. output)
  end)
end)
