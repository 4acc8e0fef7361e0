-- A bounded set of recently seen ids with the dedupe store interface of the router:
-- add(id) -> true when new (now remembered), or false, "exists"; delete(id).
-- Least recently used first out: an id seen again moves to the newest place.
local _M = {}
local LRU = {}
LRU.__index = LRU

function _M.new(capacity)
  -- A ring of ids, newest at head, and a map from id to its place in the ring. Places left
  -- by deleted or refreshed ids hold false until the ring comes round to them.
  return setmetatable({ capacity = capacity, place = {}, ring = {}, head = 0 }, LRU)
end

-- Puts id at the next place of the ring, forgetting whatever id lived there.
local function push(self, id)
  local ring, place = self.ring, self.place
  local head = self.head % self.capacity + 1
  local old = ring[head]
  if old and place[old] == head then place[old] = nil end
  ring[head], place[id], self.head = id, head, head
end

function LRU:add(id)
  local at = self.place[id]
  if at then
    self.ring[at] = false
    push(self, id)
    return false, "exists"
  end
  push(self, id)
  return true
end

function LRU:delete(id)
  local at = self.place[id]
  if at then
    self.place[id] = nil
    self.ring[at] = false
  end
  return true
end

return _M
