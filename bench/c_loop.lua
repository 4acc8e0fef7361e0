-- Driving a C baseline (bench/curl_loop.c, bench/curl_multi_loop.c) from a Lua bench, with the
-- very headers the library sends. Loaded with dofile, like stats.lua.
local _M = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The headers the library sends for GET path/id, read from the request it builds (an internal
-- method); the documented defaults when that is not available. Returns headers, sorted names.
function _M.library_headers(client, path, id, api_key, version)
  local headers
  if type(client._build_request) == "function" then
    local ok, request = pcall(client._build_request, client, "GET", path, id)
    if ok and type(request) == "table" and type(request.headers) == "table" then
      headers = request.headers
    end
  end
  headers = headers or {
    ["Authorization"] = "Bearer " .. api_key,
    ["Accept"] = "application/json",
    ["User-Agent"] = "lua-thinkific/" .. version,
  }
  local names = {}
  for name in pairs(headers) do names[#names + 1] = name end
  table.sort(names)
  return headers, names
end

-- Starts `binary args... "Name: value"...`. The C loop reads counts on its standard input
-- (our pipe) and answers "<done> <seconds>" on a FIFO that we read: Lua's io.popen goes one
-- way only. Returns an object with batch(n) -> done, seconds and close().
function _M.start(binary, args, headers, names)
  local fifo = binary .. ".fifo"
  os.remove(fifo)
  assert(os.execute("mkfifo " .. shell_quote(fifo)), "mkfifo failed")
  local words = { shell_quote(binary) }
  for _, a in ipairs(args) do words[#words + 1] = shell_quote(a) end
  for _, name in ipairs(names) do words[#words + 1] = shell_quote(name .. ": " .. headers[name]) end
  words[#words + 1] = ">" .. shell_quote(fifo)
  local c_in = assert(io.popen(table.concat(words, " "), "w"))
  local c_out = assert(io.open(fifo, "r")) -- waits until the C loop opens its end
  c_in:setvbuf("line")
  return {
    batch = function(n)
      c_in:write(n, "\n")
      local line = c_out:read("l")
      local done, seconds = (line or ""):match("^(%d+) (%S+)$")
      if not done then error(binary .. " failed (see its message above)") end
      return tonumber(done), tonumber(seconds)
    end,
    close = function()
      c_in:write("0\n")
      c_in:close()
      c_out:close()
      os.remove(fifo)
    end,
  }
end

return _M
