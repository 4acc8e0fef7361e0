-- HTTP/1.1 messages over a stream: the server side (read a request, write a response) for
-- server.lua, and the client side (write a request, read a response) for the sandbox's own
-- client (its control calls and deliveries). Everything is bounded: line, header and body
-- sizes, and time.
local socket = require("socket")

local lower, find, match, format, sub, concat = string.lower, string.find, string.match,
  string.format, string.sub, table.concat
local gettime = socket.gettime

local _M = {}

_M.LIMITS = {
  line = 8192,              -- request line, status line, header line
  header_bytes = 65536,     -- all header lines together
  headers = 100,            -- header fields
  chunk_line = 1024,        -- chunk size line, extensions included
  body = 16 * 1024 * 1024,  -- request body (413 past it)
  request_time = 30,        -- seconds to receive a request once its first byte arrived
}

_M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [413] = "Content Too Large", [414] = "URI Too Long", [417] = "Expectation Failed",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

-- Does a comma-separated header value hold this token (case-insensitive)?
local function has_token(value, token)
  if not value then return false end
  for item in value:gmatch("[^,]+") do
    if lower(match(item, "^%s*(.-)%s*$")) == token then return true end
  end
  return false
end

-- Maps a stream error to what the reader reports: a status to answer, or a reason to close.
local function failure(err, status_if_long, message_if_long)
  if err == "too long" then return nil, status_if_long, message_if_long end
  if err == "timeout" then return nil, "timeout" end
  return nil, "closed"
end

-- Reads header lines up to the empty line. Returns a table of lower-case name -> value
-- (repeated fields joined with ", "), or nil, status | "closed" | "timeout", message.
local function read_headers(stream, limits, deadline)
  local headers, count, bytes = {}, 0, 0
  while true do
    local line, err = stream:read_line(limits.line, deadline)
    if not line then
      return failure(err, 431, format("Header line longer than %d bytes", limits.line))
    end
    if line == "" then return headers end
    count, bytes = count + 1, bytes + #line
    if count > limits.headers then
      return nil, 431, format("More than %d header fields", limits.headers)
    end
    if bytes > limits.header_bytes then
      return nil, 431, format("Header fields larger than %d bytes in all", limits.header_bytes)
    end
    local name, value = match(line, "^([%w!#$%%&'*+%-.^_`|~]+):[ \t]*(.-)[ \t]*$")
    -- NUL apart: a pattern cannot hold one in LuaJIT (the sandbox's httpc runs there too).
    if not name or find(value, "[\1-\8\10-\31\127]") or find(value, "\0", 1, true) then
      return nil, 400, "Malformed header field"
    end
    name = lower(name)
    local old = headers[name]
    if old == nil then
      headers[name] = value
    elseif name == "content-length" then
      if old ~= value then return nil, 400, "Conflicting Content-Length" end
    else
      headers[name] = old .. ", " .. value
    end
  end
end

local function too_large(max_body)
  return nil, 413, format("Request body larger than %d bytes", max_body)
end

-- A chunk size line: hex digits, then nothing or extensions (";" after optional whitespace;
-- dropped). Anything else (0x10, 5garbage, +5, control characters) is malformed: a lenient
-- reader here and a different one in a proxy in front would frame requests differently.
-- Returns the size, or nil, status, message.
local function chunk_size(line, max_body)
  local hex, ext = match(line, "^(%x+)(.*)$")
  if not hex or #hex > 16 or (ext ~= "" and (not find(ext, "^[ \t]*;")
      or find(ext, "[\1-\8\10-\31\127]") or find(ext, "\0", 1, true))) then
    return nil, 400, "Malformed chunk size"
  end
  -- Compared as a number only when exact under every Lua (below 2^52).
  if #hex > 13 then
    hex = match(hex, "^0*(.*)$")
    if #hex > 13 then return too_large(max_body) end
  end
  return tonumber(hex, 16) or 0
end

-- A body's pieces as a stack in which each piece is longer than the one above it: a new piece
-- is joined to those no longer than itself. So a million one-byte chunks make about twenty
-- pieces, not a million table slots, and each byte is copied about log2(pieces) times.
local function add_piece(pieces, s)
  local n = #pieces
  while n > 0 and #pieces[n] <= #s do
    s = pieces[n] .. s
    pieces[n] = nil
    n = n - 1
  end
  pieces[n + 1] = s
end

local BATCH = 64 -- chunks joined at once before they become a piece

-- Reads a chunked body, at most max_body bytes. Returns body, or nil, status | reason, message.
local function read_chunked(stream, limits, max_body, deadline)
  local pieces, batch, nbatch, total = {}, {}, 0, 0
  while true do
    local line, err = stream:read_line(limits.chunk_line, deadline, true)
    if not line then
      if err == "bare LF" then return nil, 400, "Malformed chunk" end
      return failure(err, 400, format("Chunk size line longer than %d bytes", limits.chunk_line))
    end
    local size, status, message = chunk_size(line, max_body)
    if not size then return nil, status, message end
    if size == 0 then break end
    total = total + size
    if total > max_body then return too_large(max_body) end
    local data
    data, err = stream:read_exact(size + 2, deadline)
    if not data then return failure(err) end
    if sub(data, -2) ~= "\r\n" then return nil, 400, "Malformed chunk" end
    nbatch = nbatch + 1
    batch[nbatch] = sub(data, 1, -3)
    if nbatch == BATCH then
      add_piece(pieces, concat(batch, "", 1, nbatch))
      nbatch = 0
    end
  end
  -- Trailer fields are read and dropped.
  local trailers, status, message = read_headers(stream, limits, deadline)
  if not trailers then return nil, status, message end
  add_piece(pieces, concat(batch, "", 1, nbatch))
  return concat(pieces)
end

-- Reads the body the headers announce (none, Content-Length or chunked).
-- on_body_expected() is called just before reading one (for 100-continue).
local function read_body(stream, headers, limits, max_body, deadline, on_body_expected)
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if te then
    -- Both framing headers at once is how requests get smuggled: refuse.
    if cl then return nil, 400, "Both Transfer-Encoding and Content-Length" end
    if lower(te) ~= "chunked" then return nil, 501, "Unsupported Transfer-Encoding" end
    if on_body_expected then on_body_expected() end
    return read_chunked(stream, limits, max_body, deadline)
  elseif cl then
    if not find(cl, "^%d+$") or #cl > 15 then return nil, 400, "Malformed Content-Length" end
    local n = tonumber(cl)
    if n > max_body then return too_large(max_body) end
    if n == 0 then return "" end
    if on_body_expected then on_body_expected() end
    local body, err = stream:read_exact(n, deadline)
    if not body then return failure(err) end
    return body
  end
  return ""
end

-- Splits a request target into raw path and raw query (no decoding here).
local function split_target(target)
  local path, query = match(target, "^([^?#]*)%??([^#]*)")
  return path, query
end

-- Reads one request. The first byte must come before idle_deadline; the rest within
-- limits.request_time. Returns a request table
--   { method, target, path, query, minor, headers, body, keep_alive }
-- or nil, status (a number: answer it, then close), message; or nil, "closed" | "timeout"
-- (close without answering).
function _M.read_request(stream, limits, idle_deadline)
  limits = limits or _M.LIMITS
  local ok, err = stream:await(idle_deadline)
  if not ok then return failure(err) end
  -- From the first byte on, the whole request (its first line too) has request_time.
  local deadline = gettime() + limits.request_time
  local line
  -- A stray empty line before a request is allowed (RFC 9112, 2.2).
  for _ = 1, 4 do
    line, err = stream:read_line(limits.line, deadline)
    if line ~= "" then break end
  end
  if not line then
    return failure(err, 414, format("Request line longer than %d bytes", limits.line))
  end
  if line == "" then return nil, 400, "Malformed request line" end
  local method, target, major, minor = match(line, "^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return nil, 400, "Malformed request line" end
  if major ~= "1" then return nil, 505, "HTTP version not supported" end
  if target:sub(1, 1) ~= "/" then return nil, 400, "Malformed request target" end
  local headers, status, message = read_headers(stream, limits, deadline)
  if not headers then return nil, status, message end
  minor = tonumber(minor)
  local expect = headers.expect
  if expect and lower(expect) ~= "100-continue" then
    return nil, 417, "Unsupported Expect"
  end
  local continue_ok = true
  local function on_body_expected()
    if expect and minor >= 1 then
      continue_ok = stream:write("HTTP/1.1 100 Continue\r\n\r\n", deadline)
    end
  end
  local body
  body, status, message = read_body(stream, headers, limits, limits.body, deadline, on_body_expected)
  if not body then return nil, status, message end
  if not continue_ok then return nil, "closed" end
  local conn = headers.connection
  local keep_alive
  if minor >= 1 then
    keep_alive = not has_token(conn, "close")
  else
    keep_alive = has_token(conn, "keep-alive") and not has_token(conn, "close")
  end
  local path, query = split_target(target)
  return {
    method = method, target = target, path = path, query = query, minor = minor,
    headers = headers, body = body, keep_alive = keep_alive,
  }
end

-- Framing headers are ours to write: a fault's headers can never break the framing.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

local function date()
  return os.date("!%a, %d %b %Y %H:%M:%S GMT")
end

-- Writes a response. res = { status, headers = { Name = value }, body = string|nil }.
-- keep_alive: whether the connection stays open; minor: the request's HTTP minor version;
-- server: the Server header ("thinkific" by default); head: the answer to a HEAD request
-- (the body's Content-Length, no body: one would be read as the next answer). Returns true,
-- or nil, err.
function _M.write_response(stream, res, keep_alive, deadline, minor, server, head)
  local status = res.status
  local lines = { format("HTTP/1.1 %d %s", status, _M.REASONS[status] or "Status"),
    "Date: " .. date(), "Server: " .. (server or "thinkific") }
  local names = {}
  for name in pairs(res.headers or {}) do
    if not FRAMING[lower(name)] then names[#names + 1] = name end
  end
  table.sort(names)
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. tostring(res.headers[name]) end
  local body = res.body or ""
  if status == 204 or status == 304 or status < 200 then
    body = ""
  else
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  if not keep_alive then
    lines[#lines + 1] = "Connection: close"
  elseif minor == 0 then
    lines[#lines + 1] = "Connection: keep-alive"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = head and "" or body
  return stream:write(concat(lines, "\r\n"), deadline)
end

-- Client side ---------------------------------------------------------------------------

-- Writes a request. headers: { Name = value }; a body gets its Content-Length.
function _M.write_request(stream, method, target, headers, body, deadline)
  local lines = { format("%s %s HTTP/1.1", method, target) }
  for name, value in pairs(headers or {}) do lines[#lines + 1] = name .. ": " .. value end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body or ""
  return stream:write(concat(lines, "\r\n"), deadline)
end

-- Reads a response of at most max_body bytes. Returns { status, headers, body, keep_alive }
-- or nil, message.
function _M.read_response(stream, method, max_body, deadline, limits)
  limits = limits or _M.LIMITS
  local too_long = format("response larger than %d bytes", max_body)
  while true do
    local line, err = stream:read_line(limits.line, deadline)
    if not line then return nil, err end
    local minor, status = match(line, "^HTTP/1%.(%d) (%d%d%d)")
    if not status then return nil, "malformed status line" end
    status = tonumber(status)
    local headers, herr, hmessage = read_headers(stream, limits, deadline)
    if not headers then
      if not hmessage then return nil, herr end
      return nil, (herr == 431 and "response headers too large: " or "malformed response: ")
        .. lower(hmessage)
    end
    if status >= 200 then
      local body
      local keep_alive = minor == "1" and not has_token(headers.connection, "close")
      if method == "HEAD" or status == 204 or status == 304 then
        body = ""
      elseif headers["transfer-encoding"] or headers["content-length"] then
        local berr, bmessage
        body, berr, bmessage = read_body(stream, headers, limits, max_body, deadline)
        if berr == 413 then return nil, too_long end
        if not body then
          return nil, bmessage and "malformed response: " .. lower(bmessage) or berr
        end
      else
        keep_alive = false
        local berr
        body, berr = stream:read_all(max_body, deadline)
        if not body then return nil, berr == "too long" and too_long or berr end
      end
      return { status = status, headers = headers, body = body, keep_alive = keep_alive }
    end
  end
end

return _M
