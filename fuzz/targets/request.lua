-- request: client:_build_request(method, path, id, query, body), the request every transport
-- gets. Fields: control bytes (the client's options, the id's type, how many query pairs),
-- the id text, the query keys and values (one field each, alternating), the body as JSON.
-- The id stays one path segment (only unreserved bytes and %XX), the query reads back as the
-- pairs given in sorted order, and misuse (a bad id, too many keys) raises, never more. Query
-- keys have no NUL: the C side reads them as C strings, and only the library names them.
local thinkific = require("thinkific")
local core = require("thinkific.core")
local expect = require("fuzz.expect")
local input = require("fuzz.input")

local BASES = { "https://api.thinkific.com/api/v2", "http://127.0.0.1:1/x/", "https://h" }

local function client_of(r)
  local opts = { api_key = "fuzz-key", subdomain = "fuzz", base_url = r:choose(BASES) }
  local extra = r:byte()
  if extra % 2 == 1 then opts.timeout = r:number() end
  if extra % 4 >= 2 then opts.max_response_size = r:number() end
  local ok, client = pcall(thinkific.new, opts)
  if ok then return client, opts end
  local why = tostring(client)
  if not (why:find("timeout", 1, true) or why:find("max_response_size", 1, true)) then
    expect.fail("thinkific.new raised: %s", why)
  end
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function check_url(url, base, id_text, pairs_given)
  local root = base:gsub("/+$", "") .. "/webhooks"
  if url:sub(1, #root) ~= root then expect.fail("the URL %q left %q", url, root) end
  local rest = url:sub(#root + 1)
  local segment, query = rest:match("^([^?]*)(.*)$")
  if id_text then
    if segment:sub(1, 1) ~= "/" or not segment:sub(2):find("^[%w%-_~%%]*$") then
      expect.fail("the id became %q", segment)
    end
    if unescape(segment:sub(2)) ~= id_text then expect.fail("the id %q reads back otherwise", id_text) end
  elseif segment ~= "" then
    expect.fail("a path without an id grew %q", segment)
  end
  local keys = {}
  for k in pairs(pairs_given) do keys[#keys + 1] = k end
  table.sort(keys)
  local i = 0
  for k, v in query:gmatch("[?&]([^=&]*)=([^&]*)") do
    i = i + 1
    if unescape(k) ~= keys[i] or unescape(v) ~= pairs_given[keys[i]] then
      expect.fail("query pair %d is %q=%q", i, k, v)
    end
  end
  if i ~= #keys then expect.fail("%d query pairs for %d given", i, #keys) end
end

return function(bytes)
  local f = input.fields(bytes, 6)
  local r = input.reader(f[1])
  local client, opts = client_of(r)
  if not client then return end
  local id, id_text
  local how = r:byte() % 4
  if how == 0 then
    id, id_text = f[2], f[2]
  elseif how == 1 then
    id = r:number()
  end
  -- Query keys are names the library chooses (limit, page, next), never a user's: no NUL.
  local query = {}
  local n = r:byte() % 20
  local odd, even = f[3]:gsub("%z", ""), f[4]:gsub("%z", "")
  for i = 1, n do query[i % 2 == 1 and odd .. i or even .. i] = f[5]:sub(i) end
  local body = nil
  if f[6] ~= "" then body = core.decode(f[6]) end
  local ok, req, path = pcall(client._build_request, client, "GET", "/webhooks", id,
    n > 0 and query or nil, body)
  if not ok then
    local why = tostring(req)
    if not (why:find("id must be", 1, true) or why:find("bad query", 1, true)
        or why:find("cannot encode", 1, true)) then
      expect.fail("_build_request raised: %s", why)
    end
    return
  end
  if how == 1 then
    if type(id) ~= "number" then expect.fail("id changed type") end
    id_text = (math.type and math.type(id) == "integer") and string.format("%d", id)
      or string.format("%.0f", id)
  end
  local given = {}
  for k, v in pairs(query) do given[k] = tostring(v) end
  check_url(req.url, opts.base_url, id_text, given)
  local base = opts.base_url:gsub("/+$", "")
  if req.url:sub(1, #base + #path) ~= base .. path or req.url:sub(#base + #path + 1):find("^[^?]") then
    expect.fail("path %q is not the URL's %q", path, req.url)
  end
  if body ~= nil and type(req.body) ~= "string" then
    expect.fail("the body was not encoded")
  end
  if req.headers.Authorization ~= "Bearer fuzz-key" then expect.fail("the credential header changed") end
  client:close()
end
