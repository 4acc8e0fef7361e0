-- The control endpoints under /sandbox: no credential, loopback peers only. They steer the
-- sandbox from tests (events, triggers and deliveries, faults, stats, reset) and are never
-- counted as API traffic.
local json = require("thinkific.sandbox.json")
local respond = require("thinkific.http.respond")
local faults_mod = require("thinkific.sandbox.faults")

local _M = {}

function _M.owns(path)
  return path == "/sandbox" or path:sub(1, 9) == "/sandbox/"
end

local function is_loopback(addr)
  return type(addr) == "string" and (addr:find("^127%.") ~= nil or addr == "::1"
    or addr:find("^::ffff:127%.") ~= nil)
end

local function stats_json(stats)
  return json.object({ "requests", "connections", "active_connections", "peak_connections",
    "rate_limited" }, stats)
end

local function decode_body(req)
  local v = json.decode(req.body)
  if type(v) ~= "table" or not req.body:find("^%s*{") then return nil end
  return v
end

local routes = {}

routes["/sandbox/events"] = {
  GET = function(server)
    local store = server.store
    return respond.json(200, '{"events":' .. json.array(store:event_ids()) .. ',"seeded":'
      .. json.array(store.seeded) .. "}")
  end,
  POST = function(server, req)
    local id, err = server.store:record_event(req.body)
    if not id then return respond.error(400, err) end
    return respond.json(201, json.object({ "event_id" }, { event_id = id }))
  end,
}

routes["/sandbox/faults"] = {
  GET = function(server)
    return respond.json(200, json.object({ "faults" }, { faults = server.faults:pending() }))
  end,
  POST = function(server, req)
    local spec = decode_body(req)
    if not spec then return respond.error(400, "The request body must be a JSON object.") end
    local fault, err = faults_mod.parse(spec)
    if not fault then return respond.error(400, err) end
    return respond.json(201, json.object({ "faults" }, { faults = server.faults:add(fault) }))
  end,
  DELETE = function(server)
    server.faults:clear()
    return respond.json(200, '{"faults":0}')
  end,
}

routes["/sandbox/stats"] = {
  GET = function(server) return respond.json(200, stats_json(server.stats)) end,
}

routes["/sandbox/stats/reset"] = {
  POST = function(server)
    server:reset_stats()
    return respond.json(200, stats_json(server.stats))
  end,
}

routes["/sandbox/reset"] = {
  POST = function(server)
    server:reset()
    return respond.json(200, '{"status":"ok"}')
  end,
}

routes["/sandbox/deliveries"] = {
  GET = function(server) return respond.json(200, server.deliveries:json()) end,
}

routes["/sandbox/deliveries/summary"] = {
  GET = function(server) return respond.json(200, server.deliveries:summary_json()) end,
}

routes["/sandbox/trigger"] = {
  POST = function(server, req)
    local spec = decode_body(req)
    if not spec then return respond.error(400, "The request body must be a JSON object.") end
    local result, err = server.deliveries:trigger(spec, req.body)
    if not result then return respond.error(err.status or 400, err.message) end
    return respond.json(201, json.object({ "event_id", "webhooks" }, result))
  end,
}

-- Handles one request whose path is under /sandbox. server: the server object.
function _M.handle(server, req, peer)
  if not is_loopback(peer) then return respond.error(403, "Forbidden") end
  local route = routes[req.path]
  if not route then return respond.error(404, "Not found") end
  local handler = route[req.method]
  if not handler then
    local allowed = {}
    for m in pairs(route) do allowed[#allowed + 1] = m end
    table.sort(allowed)
    return respond.method_not_allowed(table.concat(allowed, ", "))
  end
  return handler(server, req)
end

return _M
