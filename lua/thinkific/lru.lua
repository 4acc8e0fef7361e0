-- The router's default claim store (dedupe = N): at most N keys in this process, each with an
-- expiry, behind the store contract of API.md part two: add(key, value, ttl) -> true |
-- false, "exists"; set(key, value, ttl) -> true; get(key) -> value | nil; delete(key) -> true.
-- ttl: seconds (fractions allowed), nil or 0 for none. Once full, a new key pushes out the
-- key written least recently.
local now = require("thinkific.core").now -- monotonic: a clock set back expires nothing early

local setmetatable = setmetatable

local _M = {}
local LRU = {}
LRU.__index = LRU

function _M.new(capacity)
  -- A ring list through a sentinel: sentinel.next is the newest node, sentinel.prev the oldest.
  local sentinel = {}
  sentinel.next, sentinel.prev = sentinel, sentinel
  return setmetatable({ capacity = capacity, size = 0, nodes = {}, list = sentinel }, LRU)
end

local function unlink(node)
  node.prev.next, node.next.prev = node.next, node.prev
end

local function remove(self, node)
  unlink(node)
  self.nodes[node.key] = nil
  self.size = self.size - 1
end

-- The node of key while it lives; an expired one is removed.
local function find(self, key)
  local node = self.nodes[key]
  if node and node.expires and now() >= node.expires then
    remove(self, node)
    return nil
  end
  return node
end

-- Writes key as the newest node, pushing out the oldest when full.
local function write(self, key, value, ttl)
  local node = self.nodes[key]
  if node then
    unlink(node)
  else
    if self.size >= self.capacity then remove(self, self.list.prev) end
    node = { key = key }
    self.nodes[key], self.size = node, self.size + 1
  end
  node.value = value
  node.expires = (ttl and ttl > 0) and now() + ttl or nil
  local list = self.list
  node.next, node.prev = list.next, list
  list.next.prev = node
  list.next = node
end

function LRU:add(key, value, ttl)
  if find(self, key) then return false, "exists" end
  write(self, key, value, ttl)
  return true
end

function LRU:set(key, value, ttl)
  write(self, key, value, ttl)
  return true
end

function LRU:get(key)
  local node = find(self, key)
  if node then return node.value end
  return nil
end

function LRU:delete(key)
  local node = self.nodes[key]
  if node then remove(self, node) end
  return true
end

return _M
