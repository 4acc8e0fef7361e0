-- Several worker processes on one store (one SQLite file; one PostgreSQL database) never run
-- one event at the same time: each handler logs its start and end with its pid.
local helper = require("spec.helper")
local engines = require("spec.inbox_engines")
local process = require("thinkific.sandbox.process")
local socket = require("socket")

local WORKER = helper.repo .. "/spec/inbox_worker.lua"

-- Reads the workers' log: { [id] = { {what = "start"|"end", pid =, at =}, … } } in order.
local function read_log(path)
  local runs = {}
  for line in (process.read_file(path) or ""):gmatch("[^\n]+") do
    local what, id, pid, at = line:match("^(%a+) (%S+) (%d+) ([%d.]+)$")
    assert(what, "a log line: " .. line)
    runs[id] = runs[id] or {}
    table.insert(runs[id], { what = what, pid = pid, at = tonumber(at) })
  end
  return runs
end

describe("inbox workers in several processes", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  engines.each(function(engine)
    it("never run one event in two workers at once", function()
      local url, log = engine.fresh(), dir .. "/" .. engine.name .. ".log"
      local inbox = engines.inbox(url)
      local function accept(i)
        local status = inbox:accept(engines.delivery(tostring(i)))
        assert.are.equal(200, status)
      end
      for i = 1, 60 do accept(i) end

      local path, cpath = helper.lua54_paths()
      local workers = {}
      finally(function()
        for _, w in ipairs(workers) do w:stop() end
        inbox:close()
      end)
      for k = 1, 3 do
        workers[k] = process.start(string.format("lua5.4 %s %s %s %s 1", process.quote(WORKER),
          process.quote(url), process.quote(log), process.quote(engines.SECRET)),
          { LUA_PATH_5_4 = path, LUA_CPATH_5_4 = cpath })
      end
      for _, w in ipairs(workers) do
        assert.are.equal("ready", w:first_line(20), w:stderr())
      end
      for i = 61, 120 do -- more arrive while they work
        accept(i)
        socket.sleep(0.002)
      end
      for _, w in ipairs(workers) do
        assert.is_true(process.wait_exit(w:getpid(), 60), "a worker did not finish")
        assert.are.equal("", w:stderr())
      end

      local runs, pids = read_log(log), {}
      for i = 1, 120 do
        local id = tostring(i)
        local r = runs[id]
        assert.is_truthy(r, "event " .. id .. " never ran")
        -- Once, start then end in one process: no other start for this id, at any time.
        assert.are.equal(2, #r, "event " .. id .. " ran " .. #r / 2 .. " times")
        assert.are.same({ "start", "end" }, { r[1].what, r[2].what })
        assert.are.equal(r[1].pid, r[2].pid)
        pids[r[1].pid] = true
      end
      local count = 0
      for _ in pairs(pids) do count = count + 1 end
      assert.is_true(count >= 2, "only one worker ran events")
      assert.are.equal(120, inbox:stats().done)
    end)
  end)
end)
