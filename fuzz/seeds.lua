-- Writes the seed corpus of every target into DIR/<target>/ (make fuzz: build/fuzz/corpus):
-- the spec fixtures (sample payloads, API examples) in each target's input format, and a few
-- made by hand for the corners the fixtures do not reach. Plain Lua 5.4, nothing required.
--   lua5.4 fuzz/seeds.lua DIR
local dir = assert(arg[1], "usage: lua5.4 fuzz/seeds.lua DIR")
local SEP = "\254\255" -- fuzz.input's field separator

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function files(path, pattern)
  local out = {}
  local p = assert(io.popen('ls "' .. path .. '"'))
  for name in p:lines() do
    if name:find(pattern) then out[#out + 1] = path .. "/" .. name end
  end
  p:close()
  table.sort(out)
  return out
end

local payloads = files("spec/fixtures/payloads", "%.json$")
for _, v in ipairs(files("spec/fixtures/payloads/variants", "%.json$")) do payloads[#payloads + 1] = v end
local examples = files("spec/fixtures/api-examples", "%.json$")
local json = {}
for _, path in ipairs(payloads) do json[#json + 1] = read(path) end
for _, path in ipairs(examples) do json[#json + 1] = read(path) end
for _, text in ipairs({
  "9007199254740993", "-9007199254740992", "[1e400]", '"\\ud83d\\ude00\\u0000"', "[[[[[[]]]]]]",
  '{"a":1}\0xyz', "  null  ", '{"id":1.5e3,"n":-0}', "[" .. ("[" ):rep(999) .. ("]"):rep(1000),
}) do json[#json + 1] = text end

local seeds = { decode = {}, encode = {}, sign_verify = {}, response = {}, headers = {},
  request = {}, router = {} }

local function add(target, text) table.insert(seeds[target], text) end

for _, text in ipairs(json) do
  add("decode", text)
  add("encode", "\0" .. text)
  add("sign_verify", text .. SEP .. "my-api-key" .. SEP .. "old-key" .. SEP .. ("0"):rep(64))
end
for i = 1, 16 do add("encode", string.char(2 * i - 1) .. ("\6\9\4\1\0\2\1\7"):rep(i)) end

-- response: control bytes (status, want_object, header spelling and shape), the two wait
-- headers, the body
local waits = { { "", "" }, { "120", "" }, { "", "1500" }, { "Wed, 21 Oct 2015 07:28:00 GMT", "" },
  { "", "1700000000" }, { "", "1700000000000" }, { "1e400", "nan" }, { "-5", "-1" } }
for i, path in ipairs(examples) do
  local w = waits[i % #waits + 1]
  local status = path:match("_(%d%d%d)") and tonumber(path:match("_(%d%d%d)")) or 200
  local a, b = (status - 100) // 256, (status - 100) % 256
  add("response", string.char(1, a, b, i % 2, i % 3, 3) .. SEP .. w[1] .. SEP .. w[2] .. SEP .. read(path))
end
add("response", "\1\1\66\0\0\0" .. SEP .. SEP .. SEP .. '{"errors":{"' .. ("f"):rep(1020) .. '":54321}}')
add("response", "\1\1\61\0\0\0" .. SEP .. SEP .. SEP .. '{"message":"' .. ("m"):rep(1001) .. '"}')

for _, block in ipairs({
  "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nRateLimit-Reset: 1500\r\n",
  "HTTP/2 503\r\nretry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-A: 1\r\nx-a: 2\r\n",
  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 x\r\nRateLimit-Reset:   1700000000000  \r\n",
  "HTTP/1.1 200 OK\r\n: empty\r\nno colon\r\n" .. ("n"):rep(130) .. ": long\r\n",
}) do add("headers", block) end

for _, id in ipairs({ "123", "../admin", "a/b?c#d", "%2e%2e", "" }) do
  add("request", "\0\0\0\3" .. SEP .. id .. SEP .. "page" .. SEP .. "limit" .. SEP .. "1&x=2"
    .. SEP .. '{"topic":"order.created","target_url":"https://example.com/h"}')
end
add("request", "\1\1\1\0\1\0\0\0\1" .. SEP .. SEP .. "k" .. SEP .. "v" .. SEP .. "x" .. SEP)

for _, path in ipairs(payloads) do
  local text = read(path)
  local topic = text:match('"resource":%s*"([^"]*)"') .. "." .. text:match('"action":%s*"([^"]*)"')
  add("router", "\3" .. SEP .. SEP .. topic .. SEP .. text)
  add("router", "\15" .. SEP .. SEP .. "order.canceled" .. SEP .. text)
end
add("router", "\0" .. SEP .. ("0"):rep(64) .. SEP .. SEP .. '{"id":1}')
add("router", "\1" .. SEP .. SEP .. SEP .. '{"id":1,"resource":"a","action":"b","payload":{}}\0xyz')

for target, list in pairs(seeds) do
  os.execute('mkdir -p "' .. dir .. "/" .. target .. '"')
  for i, text in ipairs(list) do
    local f = assert(io.open(string.format("%s/%s/seed-%03d", dir, target, i), "wb"))
    f:write(text)
    f:close()
  end
end
