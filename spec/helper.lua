-- Shared by every spec: paths to fixtures, a sandbox per describe block, clients for it, and
-- the forced-GC pass.
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

-- The collector under stress, so that a C pointer into a string that left the stack is used
-- after the collector freed it, which AddressSanitizer (make asan) and valgrind (make check)
-- report. Incremental (Debian's Lua 5.4 starts generational, whose minor collections these
-- parameters do not drive), and a new cycle at once after each one, in big steps. LuaJIT reads
-- the two parameters, not the mode. Returns what to put back.
local function stress_gc(stepsize)
  local saved = { pause = collectgarbage("setpause", 1) }
  saved.stepmul = collectgarbage("setstepmul", 1000)
  if _VERSION == "Lua 5.4" then saved.mode = collectgarbage("incremental", 0, 0, stepsize or 0) end
  collectgarbage() -- ends the cycle under way: the next one starts at once, as set
  return saved
end
helper.GC_STRESS = 'collectgarbage("incremental", 1, 1000) collectgarbage()' -- for a child

-- Runs fn() with every step of the collector a whole cycle (2^40-byte steps: any heap), so
-- that a string left unreferenced is freed at the next allocation, whatever the heap's size;
-- then puts the previous setting back. Slow: for a few calls into C at a time.
function helper.gc_stressed(fn)
  local saved = stress_gc(40)
  local ok, err = pcall(fn)
  collectgarbage("setpause", saved.pause)
  collectgarbage("setstepmul", saved.stepmul)
  if saved.mode then
    collectgarbage("incremental", 0, 0, 13) -- Lua 5.4's own step size, 2^13 bytes
    collectgarbage(saved.mode)
  end
  if not ok then error(err, 0) end
end

-- The sanitizer pass (make asan) sets THINKIFIC_GC_STRESS for the specs of C-heavy code
-- (#memory): the whole run in the stress setting, and the commands they start
-- (helper.cli_env).
if os.getenv("THINKIFIC_GC_STRESS") then stress_gc() end

-- The specs run under Lua 5.4 (make test-lua54) and LuaJIT 2.1 (make test-luajit); these
-- few helpers say the same thing under both.

-- Is v an integer? Lua 5.4: of the integer subtype. LuaJIT, which has no integers: a whole
-- number (use it where the test is about the value; tests about the subtype are #lua54).
function helper.is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v % 1 == 0
end

-- math.type(v) under Lua 5.4; under LuaJIT "integer" for a whole number, "float" otherwise.
function helper.number_type(v)
  if type(v) ~= "number" then return nil end
  return helper.is_integer(v) and "integer" or "float"
end

-- Module paths for a Lua 5.4 child process (the sandbox, bin/thinkific, the examples):
-- this process's own under Lua 5.4; under LuaJIT, whose paths would load the LuaJIT core
-- into Lua 5.4, the LUA_PATH_5_4 and LUA_CPATH_5_4 this process inherited (the Makefile
-- sets them). Returns path, cpath.
function helper.lua54_paths()
  if _VERSION == "Lua 5.4" then return package.path, package.cpath end
  local path, cpath = os.getenv("LUA_PATH_5_4"), os.getenv("LUA_CPATH_5_4")
  assert(path and cpath, "LUA_PATH_5_4 and LUA_CPATH_5_4 must be set for Lua 5.4 child "
    .. "processes (make test-luajit sets them)")
  return path, cpath
end

-- Runs a shell command; returns its exit status (128 + n when killed by signal n). Lua 5.4's
-- os.execute gives true|nil, "exit"|"signal", n; LuaJIT's (without 5.2 compatibility) the
-- raw wait status.
function helper.execute(command)
  local ok, how, n = os.execute(command)
  if type(ok) == "number" then
    if ok % 256 == 0 then return math.floor(ok / 256) end
    return 128 + ok % 128
  end
  if how == "signal" then return 128 + n end
  return n
end

-- Runs a shell command and reads its standard output to the end; returns the output and the
-- exit status (128 + n when killed by signal n). The shell prints the status after the
-- output, since LuaJIT's pipe:close() does not give it.
function helper.capture(command)
  local pipe = assert(io.popen("(" .. command .. "); printf '\\n%s\\n' \"$?\"", "r"))
  local text = pipe:read("a")
  pipe:close()
  local output, status = text:match("^(.*)\n(%d+)\n$")
  assert(output, "no exit status in: " .. text)
  return output, tonumber(status)
end

-- The peak resident memory of process pid, in bytes; nil under make asan, where the sanitizer
-- keeps freed memory in quarantine for a while, so that the peak says nothing of the program's
-- own use (make test checks those bounds).
function helper.peak_rss(pid)
  if os.getenv("THINKIFIC_SPEC_LUA") == "asan" then return nil end
  local status = assert(require("thinkific.sandbox.process").read_file("/proc/" .. pid .. "/status"))
  return tonumber(status:match("VmHWM:%s*(%d+) kB")) * 1024
end

-- A sandbox child process for the current spec file; stopped by the caller's teardown.
function helper.sandbox(opts)
  return require("thinkific.sandbox").spawn(opts or { port = 0 })
end

-- A private temporary directory (mode 700) for the current describe block, handed to
-- set(path) before its first test and removed after its last.
function helper.scratch_dir(set)
  local dir
  busted.lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(helper.execute("mkdir -m 700 '" .. dir .. "'") == 0, "mkdir " .. dir)
    set(dir)
  end)
  busted.lazy_teardown(function()
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)
end

-- Writes text to dir/name and returns the path.
function helper.write(dir, name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

-- Gives the enclosing describe block a sandbox of its own: spawned before the block's first
-- test and handed to set(sb), reset before each test, stopped after the block's last test.
-- opts: spawn options ({ port = 0 } by default), and reset = false to keep the sandbox's
-- state from one test to the next.
function helper.with_sandbox(set, opts)
  local spawn, sb = { port = 0 }, nil
  for k, v in pairs(opts or {}) do
    if k ~= "reset" then spawn[k] = v end
  end
  busted.lazy_setup(function()
    sb = helper.sandbox(spawn)
    set(sb)
  end)
  busted.lazy_teardown(function()
    if sb then sb:stop() end
  end)
  if not (opts and opts.reset == false) then
    busted.before_each(function()
      assert(sb:reset())
    end)
  end
end

-- A client for a sandbox, with no real waiting between retries unless asked.
function helper.client(sb, opts)
  local thinkific = require("thinkific")
  local o = { api_key = sb.api_key or "sandbox-key", base_url = sb.url,
    sleep = function() end, timeout = 10, connect_timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(thinkific.new(o))
end

-- helper.client whose waits between retries are recorded, not slept: returns client, waits.
function helper.recording(sb, opts)
  local waits = {}
  local o = { sleep = function(s) waits[#waits + 1] = s end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return helper.client(sb, o), waits
end

-- Creates a webhook in the sandbox through a short-lived client; returns it.
function helper.create_webhook(sb, topic, target_url)
  local c = helper.client(sb)
  local w = assert(c:create_webhook{ topic = topic, target_url = target_url })
  c:close()
  return w
end

-- Expects fn() to raise the API's argument error "bad argument #n to 'name' (...)" (n = 0:
-- "calling 'name' on bad self"), located in the caller's file (the user's line, not the
-- library's). Returns the message.
function helper.argerror(n, name, fn)
  local luassert = require("luassert")
  local ok, msg = pcall(fn)
  luassert.is_false(ok, ("expected '%s' to raise"):format(name))
  luassert.are.equal("string", type(msg), "the error is a string")
  local want = n == 0 and ("calling '%s' on bad self ("):format(name)
    or ("bad argument #%d to '%s' ("):format(n, name)
  luassert.truthy(msg:find(want, 1, true), ("expected %q in: %s"):format(want, msg))
  local src = debug.getinfo(fn, "S").short_src
  luassert.are.equal(src .. ":", msg:sub(1, #src + 1), "the error points at the caller's line: " .. msg)
  return msg
end

-- A port on 127.0.0.1 that nothing listens on (bound, read back, closed).
function helper.closed_port()
  local socket = require("socket")
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Polls pred() every 20 ms for at most `seconds`; returns whether it became true.
function helper.wait_until(pred, seconds)
  local socket = require("socket")
  local deadline = socket.gettime() + seconds
  repeat
    if pred() then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return pred() and true or false
end

-- Waits at most `seconds` until the sandbox sb has no active connection, collecting garbage
-- while it waits (a client or socket an earlier test dropped is closed by its __gc); returns
-- whether it became idle. Not for a check that close() itself releases connections: the
-- collection could do that work for it.
function helper.wait_idle(sb, seconds)
  return helper.wait_until(function()
    collectgarbage()
    collectgarbage()
    return assert(sb:stats()).active_connections == 0
  end, seconds)
end

-- The ids of a list of records (webhooks, ...), in order.
function helper.ids_of(list)
  local ids = {}
  for i, w in ipairs(list) do ids[i] = w.id end
  return ids
end

-- The `thinkific` command is Lua 5.4 whatever runs the specs: bin/thinkific of this checkout.
helper.repo = SPEC_DIR .. "/.."

-- Every variable the command reads, unset unless a spec sets it: what the shell running the
-- specs has never leaks in.
local CLI_VARIABLES = { "THINKIFIC_API_KEY", "THINKIFIC_ACCESS_TOKEN", "THINKIFIC_SUBDOMAIN",
  "THINKIFIC_BASE_URL", "THINKIFIC_WEBHOOK_SECRET", "THINKIFIC_SANDBOX_API_KEY",
  "THINKIFIC_SANDBOX_SECRET", "THINKIFIC_RATE_LIMIT", "THINKIFIC_RATE_LIMIT_STORE",
  "THINKIFIC_RATE_WINDOW", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "LUA_INIT", "LUA_INIT_5_4" }

-- The environment for the command: the variables above unset, Lua 5.4's module paths, then
-- each table of ... in turn (name -> value; false unsets).
function helper.cli_env(...)
  local path, cpath = helper.lua54_paths()
  local env = { LUA_PATH_5_4 = path, LUA_CPATH_5_4 = cpath }
  for _, name in ipairs(CLI_VARIABLES) do env[name] = false end
  if os.getenv("THINKIFIC_GC_STRESS") then env.LUA_INIT_5_4 = helper.GC_STRESS end
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...) or {}) do env[k] = v end
  end
  return env
end

-- "lua5.4 bin/thinkific 'arg' 'arg'…" for a list of arguments (each quoted).
function helper.cli_command(argv)
  local quote = require("thinkific.sandbox.process").quote
  local parts = { "lua5.4", quote(helper.repo .. "/bin/thinkific") }
  for _, a in ipairs(argv) do parts[#parts + 1] = quote(a) end
  return table.concat(parts, " ")
end

-- A runner for the command: run(argv, env, stdin) runs bin/thinkific with argv (a list of
-- strings) to the end, killed after 20 s, with the environment helper.cli_env(base(), env)
-- (base: a function, read at each run, or a table), stdin from the file stdin (default
-- /dev/null). Returns the exit status, stdout and stderr. No output may contain any string
-- of the list `never` (credentials and secrets): each run checks.
function helper.cli(base, never)
  local process = require("thinkific.sandbox.process")
  local luassert = require("luassert")
  return function(argv, env, stdin)
    local vars = helper.cli_env(type(base) == "function" and base() or base, env)
    local parts = {}
    for name, value in pairs(vars) do
      parts[#parts + 1] = value and ("export " .. name .. "=" .. process.quote(value) .. ";")
        or ("unset " .. name .. ";")
    end
    local out, err = os.tmpname(), os.tmpname()
    local code = helper.execute(string.format("%s timeout 20 %s <%s >%s 2>%s",
      table.concat(parts, " "), helper.cli_command(argv),
      stdin and process.quote(stdin) or "/dev/null", process.quote(out), process.quote(err)))
    local stdout, stderr = process.read_file(out) or "", process.read_file(err) or ""
    os.remove(out)
    os.remove(err)
    for _, secret in ipairs(never or {}) do
      luassert.is_nil((stdout .. stderr):find(secret, 1, true),
        "the output of `thinkific " .. table.concat(argv, " ") .. "` shows a secret")
    end
    return code, stdout, stderr
  end
end

-- Starts the command as a child process (listen, sandbox: they serve until stopped), with
-- the environment helper.cli_env(env). Returns the process (thinkific.sandbox.process).
function helper.cli_start(argv, env)
  return require("thinkific.sandbox.process").start(helper.cli_command(argv), helper.cli_env(env))
end

-- Makes a self-signed certificate and its key (EC P-256: quick) in dir, valid for a day.
-- subject: e.g. "/CN=127.0.0.1"; san: e.g. "IP:127.0.0.1,DNS:localhost", or nil for none.
-- Returns the certificate's path, the key's path.
function helper.certificate(dir, name, subject, san)
  local quote = require("thinkific.sandbox.process").quote
  local cert, key = dir .. "/" .. name .. ".pem", dir .. "/" .. name .. "-key.pem"
  local command = string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
    .. "-nodes -days 1 -keyout %s -out %s -subj %s %s >/dev/null 2>&1", quote(key), quote(cert),
    quote(subject), san and ("-addext " .. quote("subjectAltName=" .. san)) or "")
  assert(helper.execute(command) == 0, "openssl could not make a certificate")
  return cert, key
end

-- A custom transport (the contract of API.md) over LuaSocket's socket.http, independent of
-- libcurl; every request is appended to `log` as {method =, url =} when given.
function helper.socket_transport(log)
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  return function(req)
    if log then log[#log + 1] = { method = req.method, url = req.url } end
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k:lower()] = v end
    if req.body then headers["content-length"] = tostring(#req.body) end
    local chunks = {}
    http.TIMEOUT = req.timeout or 10
    local ok, status, rheaders = http.request{
      url = req.url, method = req.method, headers = headers, redirect = false,
      source = req.body and ltn12.source.string(req.body) or nil,
      sink = ltn12.sink.table(chunks),
    }
    if not ok then
      return nil, { kind = status == "timeout" and "timeout" or "network", message = tostring(status),
        sent = status ~= "connection refused" }
    end
    return { status = status, headers = rheaders or {}, body = table.concat(chunks) }
  end
end

-- PostgreSQL for the specs: Debian's server binaries (package postgresql), a cluster of its own
-- in a temporary directory, on a free port of 127.0.0.1, with a password for TCP (scram) and
-- trust on its own socket. As root the server runs as the postgres user (runuser), which owns
-- the directory; otherwise as the current user.

-- The directory of the newest installed server's binaries, or nil.
function helper.postgres_bin()
  local listing = helper.capture("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1")
  local bin = listing:match("^(%S+)")
  if bin and helper.execute("test -x '" .. bin .. "/initdb'") == 0 then return bin end
  return nil
end

local Postgres = {}
Postgres.__index = Postgres

-- A command line run as the server's user.
function Postgres:command(line)
  if self.as_postgres then
    return "runuser -u postgres -- " .. line
  end
  return line
end

-- The end of the server's log (or of another file of its directory), for failure messages.
function Postgres:log(name)
  local text = require("thinkific.sandbox.process").read_file(self.dir .. "/" .. (name or "server.log"))
  return (text or ""):sub(-2000)
end

-- Starts the server; nothing when it runs already.
function Postgres:start()
  if self.up then return end
  local quote = require("thinkific.sandbox.process").quote
  local status = helper.execute(self:command(string.format(
    "%s/pg_ctl -D %s -l %s -o %s -w -t 60 start >/dev/null 2>&1", self.bin, quote(self.dir .. "/data"),
    quote(self.dir .. "/server.log"), quote(string.format("-k %s -p %d -c listen_addresses=127.0.0.1",
      self.dir, self.port)))))
  assert(status == 0, "PostgreSQL did not start: " .. self:log())
  self.up = true
end

-- Stops the server (fast shutdown), then by pid if it is still there.
function Postgres:stop()
  self.up = false
  local quote = require("thinkific.sandbox.process").quote
  helper.execute(self:command(string.format("%s/pg_ctl -D %s -m fast -w -t 30 stop >/dev/null 2>&1",
    self.bin, quote(self.dir .. "/data"))))
  local f = io.open(self.dir .. "/data/postmaster.pid")
  local pid = f and tonumber(f:read("*l"))
  if f then f:close() end
  if pid then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
end

-- The store URL with the given password (default: the right one).
function Postgres:url(password)
  local encoded = (password or self.password):gsub("[^%w%-._~]", function(c)
    return string.format("%%%02X", c:byte())
  end)
  return string.format("postgres://%s:%s@127.0.0.1:%d/postgres", self.user, encoded, self.port)
end

-- The URL of an empty database: every table of the last test dropped.
-- A database of its own for each call, never one emptied for reuse: a worker process that a
-- test left behind (a listener killed with SIGKILL leaves its workers until they see it gone)
-- would otherwise take the next test's events, and write what it did into the old test's log.
function Postgres:fresh()
  self.databases = (self.databases or 0) + 1
  local name = "fresh_" .. self.databases
  local db = assert(require("thinkific.sql").open(self:url()))
  assert(db:exec("CREATE DATABASE " .. name))
  db:close()
  return (self:url():gsub("/postgres$", "/" .. name))
end

-- Makes and starts a cluster; returns the server (password, user, port, dir, url(), fresh(),
-- stop(), start()).
function helper.postgres()
  local quote = require("thinkific.sandbox.process").quote
  local bin = assert(helper.postgres_bin(), "PostgreSQL's server is not installed (Debian: postgresql)")
  local dir = helper.capture("mktemp -d"):match("^(%S+)")
  local self = setmetatable({ bin = bin, dir = dir, port = helper.closed_port(),
    user = "thinkific_spec", password = "s3cr'et\\pw@x", as_postgres = helper.capture("id -u") == "0\n" },
    Postgres)
  helper.write(dir, "pwfile", self.password .. "\n")
  if self.as_postgres then
    assert(helper.execute("chown -R postgres " .. quote(dir)) == 0, "chown postgres " .. dir)
  end
  local status = helper.execute(self:command(string.format("%s/initdb -D %s -U %s --pwfile=%s "
    .. "--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C -N >%s 2>&1", bin,
    quote(dir .. "/data"), self.user, quote(dir .. "/pwfile"), quote(dir .. "/initdb.log"))))
  assert(status == 0, "initdb failed: " .. self:log("initdb.log"))
  self:start()
  return self
end

-- Gives the enclosing describe block a PostgreSQL server: started before its first test and
-- handed to set(server), stopped and removed after its last.
function helper.with_postgres(set)
  local server
  busted.lazy_setup(function()
    server = helper.postgres()
    set(server)
  end)
  busted.lazy_teardown(function()
    if server then
      server:stop()
      os.execute("rm -rf '" .. server.dir .. "'")
    end
  end)
end

package.loaded["spec.helper"] = helper
return helper
