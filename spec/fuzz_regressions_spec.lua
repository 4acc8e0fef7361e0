-- The fuzzers' findings, replayed in every spec run: each saved input in
-- fuzz/regressions/<target>/ goes through that target's own function (fuzz/targets/<target>.lua,
-- the one make fuzz drives), here with the core as users build it, under Lua 5.4 and LuaJIT.
-- A target raises when one of its invariants breaks, so each input must end in a clean value or
-- nil, err. The inputs listed in fuzz/regressions/KNOWN wait for a fix in src/: each must still
-- fail, until the fix lands and its line is removed.
local helper = require("spec.helper")
local process = require("thinkific.sandbox.process")
local core = require("thinkific.core")

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or ".")
local REGRESSIONS = ROOT .. "/fuzz/regressions"
package.path = ROOT .. "/fuzz/lib/?.lua;" .. package.path

local function names(command)
  local out = {}
  local pipe = assert(io.popen(command .. " 2>/dev/null"))
  for name in pipe:lines() do out[#out + 1] = name end
  pipe:close()
  table.sort(out)
  return out
end

local function targets()
  local out = {}
  for _, file in ipairs(names("ls '" .. ROOT .. "/fuzz/targets'")) do
    out[#out + 1] = file:match("^(.*)%.lua$")
  end
  return out
end

-- KNOWN: "target/file  why" per line; # starts a comment.
local function known()
  local out = {}
  local f = io.open(REGRESSIONS .. "/KNOWN", "r")
  if not f then return out end
  for line in f:lines() do
    local path, why = line:match("^([^#%s]+)%s*(.*)$")
    if path then out[path] = why end
  end
  f:close()
  return out
end

-- A header block as the fuzzer gives it: a status line, headers in any case, a repeated one.
local BLOCK = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nX-A: 1\r\nx-a: 2\r\nno colon\r\n"

describe("fuzz regressions", function()
  local server, port, scratch
  local known_inputs = known()

  -- The header server serves a scratch copy of the headers inputs, and BLOCK as "self-test".
  helper.scratch_dir(function(dir) scratch = dir end)
  lazy_setup(function()
    os.execute("cp '" .. REGRESSIONS .. "'/headers/* '" .. scratch .. "'/ 2>/dev/null")
    helper.write(scratch, "self-test", BLOCK)
    server = process.start("lua5.4 " .. process.quote(ROOT .. "/spec/fuzz_header_server.lua") .. " "
      .. process.quote(scratch), helper.cli_env())
    port = assert(server:first_line(10))
  end)
  lazy_teardown(function()
    if port then core.send{ method = "GET", url = "http://127.0.0.1:" .. port .. "/stop", timeout = 5,
      max_response_size = 1024 } end
    if server then server:stop() end
  end)

  -- The headers target's parser: the file's header block served over loopback and read by
  -- libcurl into the core's parser (the fuzzer calls the C function directly).
  local function env_for(target, name)
    if target ~= "headers" then return {} end
    return { parse_headers = function()
      local status, headers = core.send{ method = "GET", url = "http://127.0.0.1:" .. port .. "/" .. name,
        timeout = 10, max_response_size = 1024 }
      assert(status == 200, "the header server did not answer: " .. tostring(headers))
      return headers
    end }
  end

  it("replays a header block through libcurl into the core's parser", function()
    local env = env_for("headers", "self-test")
    assert.same({ ["retry-after"] = "30", ["x-a"] = "1, 2", ["content-length"] = "0",
      connection = "close" }, env.parse_headers(BLOCK))
    dofile(ROOT .. "/fuzz/targets/headers.lua")(BLOCK, env)
  end)

  it("keeps inputs only for targets that exist, and lists only inputs that exist", function()
    local exists = {}
    for _, t in ipairs(targets()) do exists[t] = true end
    for _, dir in ipairs(names("ls '" .. REGRESSIONS .. "'")) do
      if dir ~= "KNOWN" then assert.is_true(exists[dir], "no target fuzz/targets/" .. dir .. ".lua") end
    end
    for path in pairs(known_inputs) do
      assert.is_not_nil(io.open(REGRESSIONS .. "/" .. path), "KNOWN lists a missing " .. path)
    end
  end)

  for _, target in ipairs(targets()) do
    local run = dofile(ROOT .. "/fuzz/targets/" .. target .. ".lua")
    for _, name in ipairs(names("ls '" .. REGRESSIONS .. "/" .. target .. "'")) do
      local path = target .. "/" .. name
      local why = known_inputs[path]
      it(path .. (why and (" still fails: " .. why) or " ends cleanly"), function()
        local input = helper.read(REGRESSIONS .. "/" .. path)
        local ok, err = pcall(run, input, env_for(target, name))
        if why then
          assert.is_false(ok, path .. " passes now: remove its line from fuzz/regressions/KNOWN")
        else
          assert.is_true(ok, tostring(err))
        end
      end)
    end
  end
end)
