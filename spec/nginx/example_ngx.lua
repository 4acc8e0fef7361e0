-- examples/openresty as a user runs it: `sh examples/openresty/run`, a child process in a
-- session (and so a process group) of its own, stopped by SIGINT to that group as Ctrl-C would.
-- The script renders the example's nginx.conf against a TLS sandbox (render.lua is the one
-- home of those substitutions); here `nginx -t` checks the rendered file, the commands the
-- script prints are run as printed, the admin page lists the webhooks it registered (over TLS,
-- through the transport), the sandbox's own deliveries reach nginx, and Ctrl-C ends every
-- process, quietly, with status 130.
local helper = require("spec.helper")
local H = require("spec.nginx.harness")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")
local httpc = require("thinkific.sandbox.httpc")

local RUN = H.ROOT .. "/examples/openresty/run"
-- What the calling shell may hold: the script replaces it by the sandbox's test values.
local REAL_KEY, REAL_SECRET = "real-api-key-3391", "real-webhook-secret-8820"

-- The processes of session sid: { [pid] = command line }.
local function session(sid)
  local procs = {}
  for pid, args in H.run("ps -o pid=,args= -s " .. sid):gmatch("%s*(%d+) ([^\n]*)") do
    procs[tonumber(pid)] = args
  end
  return procs
end

-- Starts the script and waits (bounded) for its instructions. Returns the run: child (the
-- process), sid (its session), out (what it printed) and the parts of it the specs use.
local function start()
  -- setsid: a new session and process group (no fork: the popen shell leads no group);
  -- MAKEFLAGS: the script's own make must not see make test-nginx's jobserver.
  local child = process.start("setsid -w sh " .. H.quote(RUN), { THINKIFIC_API_KEY = REAL_KEY,
    THINKIFIC_WEBHOOK_SECRET = REAL_SECRET, MAKEFLAGS = false, MFLAGS = false, MAKELEVEL = false })
  local r = { child = child }
  local done = helper.wait_until(function()
    local pid = child:getpid()
    r.out = process.read_file(child.out) or ""
    return r.out:find("\nCtrl%-C stops") or (pid and not process.alive(pid))
  end, 90)
  if not (done and r.out:find("\nCtrl%-C stops")) then
    local err = process.read_file(child.err) or ""
    child:stop(10)
    error("the script printed no instructions: " .. r.out .. err)
  end
  r.sid = tonumber(H.run("ps -o sid= -p " .. child:getpid()):match("%d+"))
  r.url = r.out:match("\n  curl %-s (http://127%.0%.0%.1:%d+)/admin/webhooks\n")
  r.export, r.deliver = r.out:match("\n  (export THINKIFIC_WEBHOOK_SECRET=[^\n]*)\n"
    .. "  (echo [^\n]*thinkific deliver [^\n]*)\n")
  r.trigger = r.out:match("\n  (echo [^\n]*thinkific sandbox trigger [^\n]*)\n")
  r.log = r.out:match("\nLogs: (%S+/logs/error%.log) ")
  r.tmp = r.out:match("\nCtrl%-C stops nginx and the sandbox and removes (%S+)%.\n")
  for _, k in ipairs{ "sid", "url", "export", "deliver", "trigger", "log", "tmp" } do
    assert(r[k], "not printed: " .. k .. "\n" .. r.out)
  end
  return r
end

-- Ends a run that a failed spec left behind: TERM to its session, bounded.
local function kill(r)
  if r and r.child.pipe then
    os.execute("kill -TERM -" .. r.sid .. " 2>/dev/null")
    process.wait_exit(r.child:getpid(), 10)
    r.child.pipe:close()
    r.child.pipe = nil
  end
  if r then r.child:cleanup() end
end

-- Sends signal to target (a pid, or "-sid" for the whole session's group); checks that the
-- script exits with status, that nginx, the sandbox and every other process of its session
-- are gone with the temporary files, and that nothing came on stderr.
local function stop(r, signal, target, status)
  local procs = session(r.sid)
  local nginx, sandbox
  for pid, args in pairs(procs) do
    if args:find("^nginx: master process") then nginx = pid end
    if args:find("thinkific sandbox", 1, true) then sandbox = pid end
  end
  assert(nginx and sandbox, "nginx and the sandbox in the script's session")

  os.execute("kill -" .. signal .. " " .. target)
  assert.is_true(process.wait_exit(r.child:getpid(), 15), "the script ended")
  local _, how, code = r.child.pipe:close()
  r.child.pipe = nil
  assert.are.same({ "exit", status }, { how, code })
  for pid, args in pairs(procs) do
    assert.is_false(process.alive(pid), "still running: " .. args)
  end
  assert.are.same({}, session(r.sid))
  assert.is_true(io.open(r.tmp .. "/nginx/nginx.conf") == nil, "the temporary files are gone")
  assert.are.equal("", process.read_file(r.child.err))
end

describe("examples/openresty/run", function()
  local printed

  lazy_setup(function() printed = start() end)
  lazy_teardown(function() kill(printed) end)

  local function log() return H.read(printed.log) or "" end

  local function logged(text)
    return helper.wait_until(function() return log():find(text, 1, true) ~= nil end, 10)
  end

  it("renders a configuration that nginx -t accepts, and shows no real key", function()
    local prefix = printed.log:match("^(.*)/logs/error%.log$")
    local output, ok = H.run(table.concat({ H.quote(H.NGINX), "-t", "-p", H.quote(prefix .. "/"),
      "-c", "nginx.conf", "-e", H.quote(prefix .. "/logs/test.log") }, " "))
    assert.is_true(ok, output)
    assert.truthy(output:find("test is successful", 1, true), output)
    assert.is_nil(printed.out:find(REAL_KEY, 1, true))
    assert.is_nil(printed.out:find(REAL_SECRET, 1, true))
  end)

  it("handles the signed delivery of the printed thinkific deliver line", function()
    local output, ok = H.run(printed.export .. "\n" .. printed.deliver)
    assert.is_true(ok, output)
    assert.are.equal('200\n{"status":"ok"}\n', output)
    assert(logged("thinkific: order 1 (Intro) for 5000 cents"), "the handler's line:\n" .. log())
  end)

  it("lists the registered webhooks on the admin page, over TLS through the transport", function()
    local res = assert(httpc.request{ url = printed.url .. "/admin/webhooks", timeout = 10 })
    assert.are.equal(200, res.status, res.body)
    local topics = {}
    for _, w in ipairs(assert(thinkific.decode(res.body)).webhooks) do
      assert.are.equal(printed.url .. "/thinkific/webhooks", w.target_url)
      topics[#topics + 1] = w.topic
    end
    table.sort(topics)
    assert.are.same({ "enrollment.completed", "order.created" }, topics)
  end)

  it("receives the sandbox's own delivery of the printed sandbox trigger line", function()
    local output, ok = H.run(printed.trigger)
    assert.is_true(ok, output)
    assert.matches("^event %d+: delivered to 1 webhook\n$", output)
    assert(logged("thinkific: user 7 completed course 9"), "the handler's line:\n" .. log())
    assert.are.same({}, H.lines(log(), "error"))
  end)

  it("stops nginx, the sandbox and its files on Ctrl-C, quietly, with status 130", function()
    stop(printed, "INT", "-" .. printed.sid, 130)
  end)
end)

describe("examples/openresty/run, sent SIGTERM", function()
  local r
  lazy_teardown(function() kill(r) end)

  it("stops nginx, the sandbox and its files, with status 143", function()
    r = start()
    stop(r, "TERM", r.child:getpid(), 143)
  end)
end)
