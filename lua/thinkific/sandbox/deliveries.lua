-- Deliveries of triggered events to the webhooks' target URLs, as Thinkific makes them: a
-- POST of the envelope's exact bytes with X-Thinkific-Topic, X-Thinkific-Hmac-Sha256 (lowercase
-- hex HMAC-SHA256 of the body with the sandbox's secret) and X-Thinkific-Subdomain.
--
-- Each attempt is a loop coroutine (httpc with the loop as its waiter: the server never
-- blocks). At most `concurrency` attempts are in flight; the others wait in a FIFO queue
-- that holds no coroutine and no socket. A failed attempt (no answer, a timeout, a non-2xx
-- status) gives up its slot, sleeps its backoff on the loop, then queues again, up to
-- `attempts` attempts in all. Every finished attempt is recorded as
-- {event_id, webhook_id, target_url, attempt, status, error, at}.
local core = require("thinkific.core")
local json = require("thinkific.sandbox.json")
local ids = require("thinkific.sandbox.ids")
local httpc = require("thinkific.sandbox.httpc")
local options = require("thinkific.sandbox.options")

local concat = table.concat

local _M = {}

_M.KEYS = { "event_id", "webhook_id", "target_url", "attempt", "status", "error", "at" }

_M.SUMMARY_KEYS = { "attempts", "succeeded", "failed", "given_up", "pending" }

-- The tenant the sandbox's envelopes name (as the seeded sample events do).
_M.TENANT_ID = "3"

-- The longest single wait between attempts, whatever the backoff doubles to.
local MAX_WAIT = options.MAX_WAIT

-- The attempt list keeps the latest this many attempts (the counts keep counting).
local MAX_RECORDS = 100000

-- The answer body of a target is read up to this size (its contents are ignored).
local MAX_ANSWER = 1024 * 1024

local USER_AGENT = "Thinkific-Webhooks (lua-thinkific sandbox " .. require("thinkific.version") .. ")"

local Deliveries = {}
Deliveries.__index = Deliveries

-- server: the server (its loop, store and secret, read when needed). opts: the delivery
-- options above. Returns the deliveries, or nil, message.
function _M.new(server, opts)
  local o, err = options.check(opts or {})
  if not o then return nil, err end
  local self = setmetatable({
    server = server,
    attempts = o.delivery_attempts,
    timeout = o.delivery_timeout,
    backoff = o.delivery_backoff,
    concurrency = o.delivery_concurrency,
    subdomain = o.subdomain,
    queue = {}, head = 1, tail = 1, -- attempts ready to run: queue[head .. tail - 1]
    running = 0,                    -- attempts in flight
    waiting = 0,                    -- deliveries sleeping before their next attempt
    gen = 0,                        -- bumped by clear(): what came before is forgotten
  }, Deliveries)
  self:clear()
  return self
end

-- Forgets every recorded attempt and every delivery not finished yet (attempts in flight
-- end on their own, bounded by the timeout, and are not recorded).
function Deliveries:clear()
  self.gen = self.gen + 1
  self.records, self.texts = {}, {}
  self.queue, self.head, self.tail = {}, 1, 1
  self.counts = { attempts = 0, succeeded = 0, failed = 0, given_up = 0 }
end

function Deliveries:close()
  self:clear()
  self.closed = true
end

function Deliveries:json()
  return json.array_of(self.texts)
end

-- {attempts, succeeded, failed, given_up, pending}: attempts made, 2xx ones, the others,
-- deliveries that failed their last attempt, deliveries not finished yet.
function Deliveries:summary()
  local c = self.counts
  return { attempts = c.attempts, succeeded = c.succeeded, failed = c.failed,
    given_up = c.given_up, pending = (self.tail - self.head) + self.running + self.waiting }
end

function Deliveries:summary_json()
  return json.object(_M.SUMMARY_KEYS, self:summary())
end

local function record(self, r)
  local n = #self.records + 1
  self.records[n], self.texts[n] = r, json.object(_M.KEYS, r)
  if n > MAX_RECORDS then
    local keep = MAX_RECORDS // 2
    self.records = table.move(self.records, n - keep + 1, n, 1, {})
    self.texts = table.move(self.texts, n - keep + 1, n, 1, {})
  end
  local c = self.counts
  c.attempts = c.attempts + 1
  if r.status ~= json.null and r.status >= 200 and r.status <= 299 then
    c.succeeded = c.succeeded + 1
  else
    c.failed = c.failed + 1
  end
end

-- A short reason for an attempt that got no answer.
local function short_error(err)
  err = tostring(err)
  if err:find("timeout", 1, true) then return "timeout" end
  if err:find("refused", 1, true) then return "connection refused" end
  return (err:gsub("[%c]", " "):sub(1, 200))
end

-- Starts queued attempts while there are free slots. Not re-entered: an attempt that ends
-- at once (a refused connection) only frees its slot, and the running loop here goes on.
function Deliveries:_pump()
  if self.pumping or self.closed then return end
  self.pumping = true
  local loop = self.server.loop
  while self.running < self.concurrency and self.head < self.tail do
    local job = self.queue[self.head]
    self.queue[self.head] = nil
    self.head = self.head + 1
    self.running = self.running + 1
    loop:spawn(self._attempt, self, job)
  end
  self.pumping = false
end

function Deliveries:_enqueue(job)
  self.queue[self.tail] = job
  self.tail = self.tail + 1
  self:_pump()
end

-- One attempt of one delivery, in its own loop coroutine.
function Deliveries:_attempt(job)
  local at = ids.now_ms()
  local called, res, err = pcall(httpc.request, {
    url = job.url, method = "POST", body = job.body, timeout = self.timeout,
    waiter = self.server.loop, max_body = MAX_ANSWER,
    headers = {
      ["Content-Type"] = "application/json",
      ["User-Agent"] = USER_AGENT,
      ["X-Thinkific-Topic"] = job.topic,
      ["X-Thinkific-Hmac-Sha256"] = job.signature,
      ["X-Thinkific-Subdomain"] = self.subdomain,
    },
  })
  if not called then res, err = nil, res end -- e.g. no socket left: a failed attempt
  self.running = self.running - 1
  if job.gen ~= self.gen then
    self:_pump()
    return
  end
  local status = res and res.status
  local ok = status and status >= 200 and status <= 299
  record(self, {
    event_id = job.event_id, webhook_id = job.webhook_id, target_url = job.url,
    attempt = job.attempt, status = status or json.null,
    error = res and json.null or short_error(err), at = at,
  })
  self:_pump()
  if ok then return end
  if job.attempt >= self.attempts or not self.server.store:webhook(job.webhook_id) then
    self.counts.given_up = self.counts.given_up + 1
    return
  end
  self.waiting = self.waiting + 1
  self.server.loop:sleep(math.min(MAX_WAIT, self.backoff * 2 ^ (job.attempt - 1)))
  self.waiting = self.waiting - 1
  if job.gen ~= self.gen then return end
  job.attempt = job.attempt + 1
  self:_enqueue(job)
end

-- Thinkific writes both spellings for one topic.
local function canonical(topic)
  return (topic:gsub("%.canceled$", ".cancelled"))
end

local function bad(message)
  return nil, { status = 400, message = message }
end

local function optional_string(spec, key)
  local v = spec[key]
  return v == nil or (type(v) == "string" and v ~= "" and #v <= 200)
end

-- Inserts members at the start of an object's text (which has members already).
local function prepend(text, members)
  if #members == 0 then return text end
  local added = concat(members, ",") .. ","
  return (text:gsub("^(%s*{)", function(open) return open .. added end, 1))
end

-- The envelope text of a trigger: {"topic": t, "payload": {…}} (optionally with id,
-- tenant_id, created_at) becomes Thinkific's envelope {id, resource, action, tenant_id,
-- created_at, payload} with the payload's text kept as sent; a whole envelope is kept as
-- sent, with tenant_id added when missing (the store adds id and created_at).
-- store: for a new id. Returns text, or nil, err.
local function envelope_text(spec, text, store)
  for _, key in ipairs({ "id", "tenant_id", "created_at" }) do
    if not optional_string(spec, key) then
      return bad(key .. " must be a non-empty string")
    end
  end
  local members = json.members(text)
  if not members then return bad("The request body must be a JSON object.") end
  if spec.topic ~= nil then
    local resource, action
    if type(spec.topic) == "string" then
      resource, action = spec.topic:match("^([%w_]+)%.([%w_]+)$")
    end
    if not resource then return bad('topic must be "resource.action", e.g. "order.created"') end
    if spec.resource ~= nil or spec.action ~= nil then
      return bad("give topic, or resource and action, not both")
    end
    local payload = members.payload
    if not payload or not payload:find("^{") then return bad("payload must be a JSON object") end
    local enc = json.encode
    return concat({
      '{"id":', enc(spec.id or store.ids:next()),
      ',"resource":', enc(resource), ',"action":', enc(action),
      ',"tenant_id":', enc(spec.tenant_id or _M.TENANT_ID),
      ',"created_at":', enc(spec.created_at or ids.now_ms()),
      ',"payload":', payload, "}",
    })
  end
  if type(spec.payload) ~= "table" or not (members.payload or ""):find("^{") then
    return bad("payload must be a JSON object")
  end
  if spec.tenant_id == nil then
    return prepend(text, { '"tenant_id":' .. json.encode(_M.TENANT_ID) })
  end
  return text
end

-- Records the event and queues one delivery per webhook of its topic.
-- spec: the decoded request body; text: its raw text.
-- Returns { event_id, webhooks }, or nil, { status, message }.
function Deliveries:trigger(spec, text)
  local store = self.server.store
  local envelope, err = envelope_text(spec, text, store)
  if not envelope then return nil, err end
  local id, rerr = store:record_event(envelope)
  if not id then return bad(rerr) end
  local event = store:event(id)
  local signature = core.sign(event.text, self.server.secret)
  local topic = canonical(event.topic)
  local n = 0
  for _, wh in ipairs(store.webhooks) do
    if canonical(wh.topic) == topic then
      n = n + 1
      self:_enqueue({
        gen = self.gen, event_id = id, webhook_id = wh.id, url = wh.target_url,
        topic = event.topic, body = event.text, signature = signature, attempt = 1,
      })
    end
  end
  return { event_id = id, webhooks = n }
end

return _M
