-- A loopback server for spec/fuzz_regressions_spec.lua: answers "GET /<name>" with the header
-- block of the file dir/<name> (a saved input of the fuzz target "headers"), so that the
-- core's header parser reads it through a real libcurl transfer. Prints its port, then serves
-- until "GET /stop" or 30 s without a connection.
--   lua5.4 spec/fuzz_header_server.lua DIR
local socket = require("socket")

local dir = assert(arg[1], "usage: fuzz_header_server.lua DIR")

-- The input's lines after its first (the parser skips the status line), up to the first empty
-- one, under a status line libcurl takes: without the framing headers, and without the lines
-- that libcurl refuses and the parser skips (no colon).
local function wire(raw)
  local lines = { "HTTP/1.1 200 OK" }
  local first = true
  for line in (raw .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r+$", "")
    if first then
      first = false
    elseif line == "" then
      break
    elseif line:find(":", 1, true) and not line:find("^HTTP/")
        and not line:lower():find("^%s*content%-length") and not line:lower():find("^%s*transfer%-encoding")
        and not line:lower():find("^%s*connection") then
      lines[#lines + 1] = line
    end
  end
  lines[#lines + 1] = "Content-Length: 0"
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
print(port)
io.stdout:flush()
server:settimeout(30)
while true do
  local c = server:accept()
  if not c then break end
  c:settimeout(5)
  local name = (c:receive("*l") or ""):match("^GET /([%w%-_.]+) ")
  repeat
    local line = c:receive("*l")
  until not line or line == ""
  if name == "stop" then
    c:close()
    break
  end
  local f = name and io.open(dir .. "/" .. name, "rb")
  c:send(wire(f and f:read("a") or ""))
  if f then f:close() end
  c:close()
end
