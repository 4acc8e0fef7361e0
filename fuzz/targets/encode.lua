-- encode: Lua values to core.encode. The first byte picks the source: even, the rest is JSON
-- that a private lua-cjson decodes (its own rules, not the core's); odd, the rest drives a
-- generator of values the API's users build (sparse tables in any construction order, mixed
-- keys, marked arrays, nesting around 1000, awkward numbers, values JSON has not). Text
-- written must read back as the same value; anything else is nil, err of kind "encode".
local core = require("thinkific.core")
local cjson = require("cjson").new()
local expect = require("fuzz.expect")
local input = require("fuzz.input")

local KINDS = { encode = true }
local MAX_ITEMS = 3000 -- tables and values made per input: room for one nest of 1000, no more

cjson.decode_max_depth(1100) -- deeper than the core's limit, on purpose

local function pack(...)
  return { ... } -- a constructor with nils in it: holes in the array part
end

local build

-- A table with integer keys set in the order the bytes say (holes, gaps, keys far out).
local function keyed_table(r, depth, state)
  local t = {}
  for _ = 1, r:byte() % 8 do
    local k = r:byte()
    if k >= 200 then k = k * 1000 else k = k % 12 + 1 end
    t[k] = build(r, depth + 1, state)
  end
  if r:byte() % 4 == 0 then t[r:byte() % 12 + 1] = nil end
  return t
end

function build(r, depth, state)
  state.items = state.items + 1
  if r:left() == 0 or state.items > MAX_ITEMS then return r:number() end
  local op = r:byte() % 14
  if op == 0 then return r:number() end
  if op == 1 then return r:string() end
  if op == 2 then return r:byte() % 2 == 0 end
  if op == 3 then return core.null end
  if op == 4 or op == 5 then -- an array built in order, or an object
    local t = op == 4 and (r:byte() % 3 == 0 and core.array() or {}) or {}
    for i = 1, r:byte() % 6 do
      local v = build(r, depth + 1, state)
      if op == 4 then t[i] = v else t[r:string()] = v end
    end
    return t
  end
  if op == 6 then return keyed_table(r, depth, state) end
  if op == 7 then
    return pack(build(r, depth + 1, state), nil, build(r, depth + 1, state))
  end
  if op == 8 then -- mixed keys
    return { build(r, depth + 1, state), [r:string()] = build(r, depth + 1, state) }
  end
  if op == 9 then -- nested around the limit of 1000
    local v, levels = build(r, depth + 1, state), 990 + r:byte() % 20
    if state.items + levels > MAX_ITEMS then return v end
    state.items = state.items + levels
    for _ = 1, levels do v = { v } end
    return v
  end
  if op == 10 then -- number keys: floats, huge, negative (NaN cannot be a key)
    local k = r:number()
    return { [k == k and k or 0.5] = build(r, depth + 1, state) }
  end
  if op == 11 then
    local t = {}
    t[1] = t -- a cycle
    return r:byte() % 2 == 0 and t or { a = t }
  end
  if op == 12 then return r:byte() % 2 == 0 and print or coroutine.create(print) end
  return setmetatable({ build(r, depth + 1, state) }, { __index = function() return 1 end })
end

return function(bytes)
  local value
  if bytes:byte(1, 1) == nil or bytes:byte(1, 1) % 2 == 0 then
    local ok, v = pcall(cjson.decode, bytes:sub(2))
    if not ok then return end
    value = v
  else
    value = build(input.reader(bytes:sub(2)), 0, { items = 0 })
  end
  local text, err = core.encode(value)
  if expect.result(text, err, KINDS) == nil then return end
  if type(text) ~= "string" then expect.fail("encode returned a %s", type(text)) end
  expect.no_nul(text, "encode's output")
  local back, berr = core.decode(text)
  if back == nil then
    expect.fail("decode refused encode's output %q: %s", text:sub(1, 200), tostring(berr))
  end
  if not expect.json_equal(value, back) then
    expect.fail("encode wrote %q, which reads back as another value", text:sub(1, 200))
  end
end
