-- Shared by the inbox and SQL specs: one spec body run once per engine (SQLite in a scratch
-- directory, PostgreSQL started for the spec file), and signed deliveries.
local busted = require("busted")
local luassert = require("luassert")
local helper = require("spec.helper")
local thinkific = require("thinkific")

local engines = {}

engines.SECRET = "inbox-spec-secret"

-- Runs body(engine) inside a describe block per engine. engine.name is "sqlite" or
-- "postgres"; engine.fresh() gives the URL of an empty store (call it in a test or a setup);
-- engine.server() the PostgreSQL server (nil for SQLite); engine.secrets the strings that no
-- error or output may show.
function engines.each(body)
  busted.describe("on SQLite", function()
    local dir, n = nil, 0
    helper.scratch_dir(function(d) dir = d end)
    body({
      name = "sqlite",
      fresh = function()
        n = n + 1
        return "sqlite:" .. dir .. "/store" .. n .. ".db"
      end,
      server = function() return nil end,
      secrets = {},
    })
  end)
  busted.describe("on PostgreSQL", function()
    local server
    helper.with_postgres(function(s) server = s end)
    local engine = {
      name = "postgres",
      fresh = function() return server:fresh() end,
      server = function() return server end,
      secrets = {},
    }
    busted.lazy_setup(function()
      engine.secrets[1] = server.password
      engine.secrets[2] = server:url():match("^[^:]+://[^:]+:([^@]+)@")
    end)
    body(engine)
  end)
end

-- A signed delivery of an event: body, headers. payload defaults to {}, topic to
-- "order.created"; the envelope's id is id as given (a string or a number).
function engines.delivery(id, topic, payload, secret)
  topic = topic or "order.created"
  local resource, action = topic:match("^(.-)%.([^.]*)$")
  local body = assert(thinkific.encode({ id = id, resource = resource, action = action,
    created_at = "2024-05-01T10:00:00.000Z", payload = payload or { id = 1 } }))
  return body, { ["X-Thinkific-Hmac-Sha256"] = thinkific.sign(body, secret or engines.SECRET),
    ["X-Thinkific-Topic"] = topic, ["X-Thinkific-Subdomain"] = "acme" }
end

-- A router with the spec's secret.
function engines.router(opts)
  local o = { secret = engines.SECRET }
  for k, v in pairs(opts or {}) do o[k] = v end
  return thinkific.router(o)
end

-- An inbox on url with router (a fresh one by default) and quick retries; raises on failure.
function engines.inbox(url, router, opts)
  local o = { store = url, router = router or engines.router(), backoff = { base = 0.05, max = 1 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  local inbox, err = thinkific.inbox(o)
  return inbox or error(tostring(err))
end

-- Asserts that text shows none of the strings in list.
function engines.shows_none(text, list)
  for _, s in ipairs(list) do
    luassert.is_nil(tostring(text):find(s, 1, true), "shows a secret: " .. tostring(text))
  end
end

return engines
