-- The Thinkific Webhooks API (/api/v2), with Thinkific's shapes, statuses and error bodies.
local json = require("thinkific.sandbox.json")
local respond = require("thinkific.http.respond")
local url = require("thinkific.http.url")
local store_mod = require("thinkific.sandbox.store")

local _M = {}

_M.PREFIX = "/api/v2"

-- The topics a webhook may have: Thinkific's 25 (anything else is its 422).
_M.TOPICS = {}
for _, t in ipairs(require("thinkific.topics")) do _M.TOPICS[t] = true end

local DEFAULT_LIMIT, MAX_LIMIT = 25, 250
local MAX_URL = 2048

local NOT_FOUND = "Record not found."

-- Real Thinkific wants https and refuses localhost; the sandbox accepts any absolute http or
-- https URL on purpose, so that deliveries can reach a test's own server on 127.0.0.1.
local function valid_target(s)
  if type(s) ~= "string" or #s > MAX_URL or s:find("[%s%c]") then return false end
  local scheme, host = s:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return false end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return false end
  host = host:gsub("^.*@", "")
  return host:find("^%[[%x:.]+%]") ~= nil or host:find("^[%w.-]+") ~= nil
end

-- Checks a create/update body. Returns topic, target_url, or nil, the answer to send.
-- list_errors: the update variant, whose messages are arrays ({"topic":["invalid format"]}).
local function webhook_fields(req, list_errors)
  local body = json.decode(req.body)
  if type(body) ~= "table" or not req.body:find("^%s*{") then
    return nil, respond.error(400, "The request body must be a JSON object.")
  end
  local keys, errors = {}, {}
  local function fail(field, message)
    keys[#keys + 1] = field
    errors[field] = list_errors and { message } or message
  end
  if type(body.topic) ~= "string" or not _M.TOPICS[body.topic] then fail("topic", "invalid format") end
  if not valid_target(body.target_url) then fail("url", "is not valid") end
  if #keys > 0 then
    return nil, respond.json(422, '{"errors":' .. json.object(keys, errors) .. "}")
  end
  return body.topic, body.target_url
end

local function parse_limit(query)
  local v = query.limit
  if v == nil then return DEFAULT_LIMIT end
  local n = v:find("^%d+$") and #v <= 6 and tonumber(v)
  if not n or n < 1 or n > MAX_LIMIT then return nil end
  return n
end

local function page_json(store, first, limit)
  local items = {}
  local list = store.webhooks
  for i = first, math.min(#list, first + limit - 1) do
    items[#items + 1] = store_mod.webhook_json(list[i])
  end
  return items, json.array_of(items)
end

local function total_pages(total, limit)
  return math.max(1, (total + limit - 1) // limit)
end

-- GET /webhooks: cursor style (next=, the default) or page style (page=).
local function list(store, req)
  local query = url.parse_query(req.query)
  local limit = parse_limit(query)
  if not limit then
    return respond.error(400, "limit must be an integer between 1 and " .. MAX_LIMIT .. ".")
  end
  local total = #store.webhooks
  if query.page ~= nil then
    if query.next ~= nil then return respond.error(400, "Use either next or page, not both.") end
    local page = query.page:find("^%d+$") and #query.page <= 9 and tonumber(query.page)
    if not page or page < 1 then return respond.error(400, "page must be a positive integer.") end
    local _, items = page_json(store, (page - 1) * limit + 1, limit)
    local pages = total_pages(total, limit)
    local meta = json.object(
      { "current_page", "next_page", "prev_page", "total_pages", "total_items" },
      { current_page = page, next_page = page < pages and page + 1 or json.null,
        prev_page = page > 1 and page - 1 or json.null, total_pages = pages, total_items = total })
    return respond.json(200, '{"items":' .. items .. ',"meta":{"pagination":' .. meta .. "}}")
  end
  local first = 1
  if query.next ~= nil and query.next ~= "" then
    first = store:cursor_index(query.next)
    if not first then return respond.error(400, "Invalid next cursor.") end
  end
  local page_items, items = page_json(store, first, limit)
  local after = store.webhooks[first + limit]
  local meta = json.object(
    { "has_next", "next_page", "page_items", "total_items", "total_pages" },
    { has_next = after ~= nil, next_page = after and store:issue_cursor(after.id) or "",
      page_items = #page_items, total_items = total, total_pages = total_pages(total, limit) })
  return respond.json(200, '{"items":' .. items .. ',"meta":{"page":' .. meta .. "}}")
end

local function create(store, req)
  local topic, target_url = webhook_fields(req, false)
  if not topic then return target_url end
  return respond.json(201, store_mod.webhook_json(store:create_webhook(topic, target_url)))
end

local function one_webhook(store, req, id)
  local wh = store:webhook(id)
  if not wh then return respond.error(404, NOT_FOUND) end
  if req.method == "GET" then
    return respond.json(200, store_mod.webhook_json(wh))
  elseif req.method == "PUT" then
    local topic, target_url = webhook_fields(req, true)
    if not topic then return target_url end
    return respond.json(200, store_mod.webhook_json(store:update_webhook(wh, topic, target_url)))
  end
  store:delete_webhook(id)
  return respond.empty(204)
end

local function event(store, id)
  local ev = store:event(id)
  if not ev then return respond.error(404, NOT_FOUND) end
  return respond.json(200, ev.text)
end

-- Is this request's bearer the API key? (Thinkific checks credentials before routing.)
local function authorized(req, api_key)
  local auth = req.headers.authorization
  local token = auth and auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(.-) *$")
  return token ~= nil and token == api_key
end

-- Handles one request whose path starts with /api/v2. ctx = { store, api_key }.
function _M.handle(ctx, req)
  if not authorized(req, ctx.api_key) then return respond.error(401, "Authentication Error") end
  -- Segments are split before they are decoded, so an encoded "/" or "?" in an id stays in
  -- that id: it can be not found, never routed elsewhere.
  local segs = url.segments(req.path:sub(#_M.PREFIX + 1))
  local store, method, n = ctx.store, req.method, #segs
  if segs[1] == "webhooks" and n == 1 then
    if method == "GET" then return list(store, req) end
    if method == "POST" then return create(store, req) end
    return respond.method_not_allowed("GET, POST")
  elseif segs[1] == "webhooks" and n == 2 and segs[2] ~= "" then
    if method == "GET" or method == "PUT" or method == "DELETE" then
      return one_webhook(store, req, segs[2])
    end
    return respond.method_not_allowed("GET, PUT, DELETE")
  elseif segs[1] == "events" and n == 2 and segs[2] ~= "" then
    if method == "GET" then return event(store, segs[2]) end
    return respond.method_not_allowed("GET")
  end
  return respond.error(404, "Not found")
end

return _M
