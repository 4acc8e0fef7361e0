-- A tiny HTTP/1.1 server for specs, run as a child process (lua5.4 spec/tiny_server.lua MODE
-- [FILE]): it listens on 127.0.0.1, a free port, printed as its first line, and serves one
-- keep-alive connection at a time.
--   record FILE: answers 200 {"status":"ok"} and appends each request as it arrived (head and
--     body, bytes as they are) to FILE;
--   pages: answers a list page of one webhook with a fresh next cursor, for ever.
-- Bounded: it exits after MAX_REQUESTS requests or LIFETIME seconds.
-- Required as a module (require("spec.tiny_server")), it gives start(mode, file): the child
-- process (thinkific.sandbox.process: stop it in teardown) and the server's http://host:port.
local socket = require("socket")

if ... == "spec.tiny_server" then
  local helper = require("spec.helper")
  local process = require("thinkific.sandbox.process")
  return {
    start = function(mode, file)
      local p = process.start(string.format("lua5.4 %s %s %s",
        process.quote(helper.repo .. "/spec/tiny_server.lua"), mode,
        file and process.quote(file) or ""), helper.cli_env())
      local port, why = p:first_line(10)
      if not port then
        p:stop()
        error("tiny_server did not start: " .. tostring(why))
      end
      return p, "http://127.0.0.1:" .. port
    end,
  }
end

local MAX_REQUESTS, LIFETIME = 100000, 300

local mode, file = arg[1], arg[2]
assert(mode == "pages" or (mode == "record" and file), "usage: tiny_server.lua record FILE | pages")

local server = assert(socket.bind("127.0.0.1", 0))
io.stdout:write(select(2, server:getsockname()), "\n")
io.stdout:flush()
local deadline = socket.gettime() + LIFETIME

-- One request from c: its head (lines joined with "\r\n", as sent) and body, or nil.
local function read_request(c)
  local lines, length = {}, 0
  repeat
    local line = c:receive("*l")
    if not line then return nil end
    lines[#lines + 1] = line
    local n = line:match("^[Cc][Oo][Nn][Tt][Ee][Nn][Tt]%-[Ll][Ee][Nn][Gg][Tt][Hh]:%s*(%d+)")
    if n then length = tonumber(n) end
  until line == ""
  local body = ""
  if length > 0 then
    body = c:receive(length)
    if not body then return nil end
  end
  return table.concat(lines, "\r\n"), body
end

local served = 0

local function answer(head, body)
  served = served + 1
  if mode == "record" then
    local f = assert(io.open(file, "ab"))
    f:write(head, "\r\n", body, "\n--\n")
    f:close()
    return '{"status":"ok"}'
  end
  return string.format('{"items":[{"id":"%d","topic":"order.created",'
    .. '"target_url":"https://example.com/hooks/%d"}],"meta":{"page":{"has_next":true,'
    .. '"next_page":"cursor-%d","page_items":1,"total_items":1000000000}}}', served, served, served)
end

server:settimeout(1)
while served < MAX_REQUESTS and socket.gettime() < deadline do
  local c = server:accept()
  if c then
    c:settimeout(10)
    while served < MAX_REQUESTS and socket.gettime() < deadline do
      local head, body = read_request(c)
      if not head then break end
      local text = answer(head, body)
      if not c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
          .. #text .. "\r\n\r\n" .. text) then
        break
      end
    end
    c:close()
  end
end
