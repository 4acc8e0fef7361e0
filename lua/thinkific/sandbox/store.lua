-- The sandbox's state: webhooks in creation order, recorded events, issued list cursors.
local json = require("thinkific.sandbox.json")
local ids = require("thinkific.sandbox.ids")
local fixtures = require("thinkific.sandbox.fixtures")

local _M = {}

-- The user the sandbox says made every change (Thinkific sends it as a string).
_M.USER = "100001"

_M.WEBHOOK_KEYS = { "id", "status", "topic", "created_at", "created_by", "updated_at",
  "updated_by", "target_url" }

-- Cursors are remembered so that an unknown one can be refused; past this many the oldest
-- are forgotten (bounded memory for long-running sandboxes).
local MAX_CURSORS = 10000

local Store = {}
Store.__index = Store

function _M.new()
  local self = setmetatable({ ids = ids.generator() }, Store)
  self:reset()
  return self
end

-- Back to the start: no webhooks, only the seeded events.
function Store:reset()
  self.webhooks, self.by_id = {}, {}
  self.events, self.event_order = {}, {}
  self.cursors, self.cursor_order = {}, {}
  self.seeded = {}
  for i, text in ipairs(fixtures.events) do
    local id = assert(self:record_event(text))
    self.seeded[i] = id
  end
end

function _M.webhook_json(wh)
  return json.object(_M.WEBHOOK_KEYS, wh)
end

function Store:create_webhook(topic, target_url)
  local id = self.ids:next()
  local at = ids.time_of(id)
  local wh = { id = id, status = "active", topic = topic, target_url = target_url,
    created_at = at, created_by = _M.USER, updated_at = at, updated_by = _M.USER }
  self.webhooks[#self.webhooks + 1] = wh
  self.by_id[id] = wh
  return wh
end

function Store:webhook(id)
  return self.by_id[id]
end

function Store.update_webhook(_, wh, topic, target_url)
  wh.topic, wh.target_url = topic, target_url
  wh.updated_at, wh.updated_by = ids.now(), _M.USER
  return wh
end

function Store:delete_webhook(id)
  if not self.by_id[id] then return false end
  self.by_id[id] = nil
  for i, wh in ipairs(self.webhooks) do
    if wh.id == id then
      table.remove(self.webhooks, i)
      break
    end
  end
  return true
end

-- A cursor names the first webhook of the next page; that page starts at the first webhook
-- whose id is not below it, so deleting that webhook meanwhile does not break the walk
-- (ids grow with creation order).
function Store:issue_cursor(id)
  if not self.cursors[id] then
    local order = self.cursor_order
    if #order >= MAX_CURSORS then
      self.cursors[table.remove(order, 1)] = nil
    end
    order[#order + 1] = id
    self.cursors[id] = true
  end
  return id
end

-- Index in self.webhooks where the page of a cursor starts, or nil for an unknown cursor.
function Store:cursor_index(cursor)
  if not self.cursors[cursor] then return nil end
  for i, wh in ipairs(self.webhooks) do
    if wh.id >= cursor then return i end
  end
  return #self.webhooks + 1
end

-- Records an envelope given as JSON text, kept byte for byte (so empty arrays, key order
-- and number forms survive); an id (23 digits) and created_at are added when missing.
-- A second event with the same id replaces the first. Returns id, or nil, message.
function Store:record_event(text)
  local env = json.decode(text)
  if type(env) ~= "table" or text:match("^%s*(.)") ~= "{" then
    return nil, "the event must be a JSON object"
  end
  if type(env.resource) ~= "string" or env.resource == "" or type(env.action) ~= "string"
      or env.action == "" then
    return nil, "the event needs resource and action (strings)"
  end
  if type(env.payload) ~= "table" then return nil, "the event needs a payload (an object)" end
  local id = env.id
  if id ~= nil and (type(id) ~= "string" or id == "" or #id > 200) then
    return nil, "the event id must be a string"
  end
  local added = {}
  if id == nil then
    id = self.ids:next()
    added[#added + 1] = json.encode("id") .. ":" .. json.encode(id) .. ","
  end
  if env.created_at == nil then
    added[#added + 1] = json.encode("created_at") .. ":" .. json.encode(ids.now_ms()) .. ","
  end
  if #added > 0 then
    -- The object has members (resource, action, payload), so a comma after ours is right.
    text = text:gsub("^(%s*{)", "%1" .. table.concat(added):gsub("%%", "%%%%"), 1)
  end
  if not self.events[id] then self.event_order[#self.event_order + 1] = id end
  self.events[id] = { id = id, text = text, topic = env.resource .. "." .. env.action }
  return id
end

function Store:event(id)
  return self.events[id]
end

function Store:event_ids()
  return self.event_order
end

return _M
