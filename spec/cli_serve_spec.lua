-- The two commands that serve until stopped, as child processes: `thinkific listen` (where
-- --host and --port say, its URL first, one line per delivery) and `thinkific sandbox` (its
-- URL first, then the API with its key, deliveries signed with its secret, https).
-- The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local thinkific = require("thinkific")
local process = require("thinkific.sandbox.process")

local API_KEY = "cli-serve-api-key-8862"
local SECRET = "cli-serve-secret-9973"

-- A free port on host (bound, read back, closed).
local function free_port(host)
  local s = assert(socket.bind(host, 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A plain HTTP request from this process: status, body.
local function request(method, url, body)
  local chunks = {}
  local headers = body and { ["content-type"] = "application/json",
    ["content-length"] = tostring(#body) }
  http.TIMEOUT = 5
  local ok, status = http.request{ url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
  assert(ok, status)
  return status, table.concat(chunks)
end

-- Runs fn(child, ...) with children started, and always stops them (last first).
local function with_children(starts, fn)
  local children = {}
  local ok, why = pcall(function()
    for i, start in ipairs(starts) do children[i] = helper.cli_start(start[1], start[2]) end
    fn(table.unpack(children))
  end)
  for i = #children, 1, -1 do children[i]:stop() end
  assert(ok, why)
end

local function lines_of(child)
  local lines = {}
  for line in (process.read_file(child.out) or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

describe("thinkific listen and thinkific sandbox #lua54", function()
  local dir
  helper.scratch_dir(function(d) dir = d end)

  local run = helper.cli({ THINKIFIC_WEBHOOK_SECRET = SECRET }, { API_KEY, SECRET })

  local function rules()
    return helper.write(dir, "rules.lua", [[
      local router = require("thinkific").router{ secret = os.getenv("THINKIFIC_WEBHOOK_SECRET") }
      router:on("*", function() end)
      return router
    ]])
  end

  it("listen: where --host and --port say, its URL first, then one line per delivery", function()
    -- 127.0.0.2 is loopback too, and not the default: the URL shows that --host was used.
    local port = free_port("127.0.0.2")
    with_children({ { { "listen", "--host", "127.0.0.2", "--port", tostring(port), rules() },
      { THINKIFIC_WEBHOOK_SECRET = SECRET } } }, function(listen)
      local url = listen:first_line(10)
      assert.are.equal("http://127.0.0.2:" .. port .. "/", url)
      local status, body = request("GET", url)
      assert.are.equal(200, status)
      assert.are.equal("thinkific listen: ready\n", body)

      local deliveries = {
        { "order.created", "20240101000000000000001", SECRET, 200 },
        { "user.signup", "20240101000000000000002", SECRET, 200 },
        { "order.created", "20240101000000000000003", "another-secret", 401 },
      }
      for i, d in ipairs(deliveries) do
        local resource, action = d[1]:match("^(.-)%.(.*)$")
        local file = helper.write(dir, "envelope" .. i .. ".json", assert(thinkific.encode({
          id = d[2], resource = resource, action = action, tenant_id = "3",
          created_at = "2024-01-01T00:00:00.000Z", payload = { id = i } })))
        local code, out = run({ "deliver", url, "--topic", d[1], "--payload", file },
          { THINKIFIC_WEBHOOK_SECRET = d[3] })
        assert.are.equal(d[4] == 200 and 0 or 1, code)
        assert.matches("^" .. d[4] .. "\n", out)
      end
      assert.is_true(helper.wait_until(function() return #lines_of(listen) >= 4 end, 5))
      local lines = lines_of(listen)
      assert.are.equal(4, #lines)
      assert.are.equal(url, lines[1])
      assert.matches("^order%.created 20240101000000000000001 200 %d+%.%d ms$", lines[2])
      assert.matches("^user%.signup 20240101000000000000002 200 %d+%.%d ms$", lines[3])
      assert.matches("^order%.created %- 401 %d+%.%d ms$", lines[4])
      assert.are.equal("", listen:stderr())
      assert.is_nil(table.concat(lines, "\n"):find(SECRET, 1, true))
    end)
  end)

  it("listen: 127.0.0.1 and a free port by default", function()
    with_children({ { { "listen", rules() }, { THINKIFIC_WEBHOOK_SECRET = SECRET } } }, function(listen)
      local url = listen:first_line(10)
      local port = tonumber(url:match("^http://127%.0%.0%.1:(%d+)/$"))
      assert.is_true(port ~= nil and port > 0, url)
      assert.are.equal(200, (request("GET", url)))
    end)
  end)

  it("sandbox: its URL first, the API with its key, deliveries signed with its secret", function()
    local port = free_port("127.0.0.1")
    with_children({
      { { "sandbox", "--host", "127.0.0.1", "--port", tostring(port), "--api-key", API_KEY,
        "--secret", SECRET } },
      { { "listen", rules() }, { THINKIFIC_WEBHOOK_SECRET = SECRET } },
    }, function(sandbox, listen)
      local url = sandbox:first_line(10)
      assert.are.equal("http://127.0.0.1:" .. port .. "/api/v2", url)
      local hooks = listen:first_line(10)
      assert.matches("^http://", hooks)

      local env = { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = url }
      local code, out = run({ "webhooks", "create", "--topic", "order.created", "--target-url",
        hooks .. "thinkific" }, env)
      assert.are.equal(0, code)
      local id = out:match("^(%d+)\t")
      code, out = run({ "webhooks", "list" }, env)
      assert.are.equal(0, code)
      assert.are.equal(id .. "\torder.created\t" .. hooks .. "thinkific\n", out)
      code = run({ "webhooks", "list" }, { THINKIFIC_API_KEY = "not-the-key",
        THINKIFIC_BASE_URL = url })
      assert.are.equal(1, code)

      -- A trigger on the control endpoint: delivered, signed with --secret, to the receiver.
      local status, body = request("POST", url:gsub("/api/v2$", "") .. "/sandbox/trigger",
        '{"topic":"order.created","payload":{"id":1}}')
      assert.are.equal(201, status)
      local event_id = assert(thinkific.decode(body)).event_id
      assert.is_true(helper.wait_until(function() return #lines_of(listen) >= 2 end, 5))
      assert.matches("^order%.created " .. event_id .. " 200 ", lines_of(listen)[2])

      assert.are.same({ url }, lines_of(sandbox))
      local seen = (process.read_file(sandbox.out) or "") .. sandbox:stderr()
      assert.is_nil(seen:find(API_KEY, 1, true))
      assert.is_nil(seen:find(SECRET, 1, true))
    end)
  end)

  it("sandbox: https with --tls-cert and --tls-key", function()
    local cert, key = helper.certificate(dir, "sandbox", "/CN=127.0.0.1", "IP:127.0.0.1")
    with_children({ { { "sandbox", "--tls-cert", cert, "--tls-key", key } } }, function(sandbox)
      local url = sandbox:first_line(10)
      assert.matches("^https://127%.0%.0%.1:%d+/api/v2$", url)
      local c = assert(thinkific.new{ api_key = "sandbox-key", base_url = url, ca_file = cert,
        retries = 0 })
      local page = assert(c:list_webhooks())
      assert.are.same({}, page.items)
      c:close()
    end)
  end)
end)
