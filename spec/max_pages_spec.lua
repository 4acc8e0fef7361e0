-- Pagination is bounded: a server that gives a fresh next cursor for ever (spec/tiny_server.lua
-- in "pages" mode) ends client:webhooks(), client:sync_webhooks, `thinkific webhooks list` and
-- `thinkific webhooks sync` with an error of kind "limit" naming max_pages (a client option,
-- 10,000 pages by default) instead of paging for ever; a walk of exactly max_pages pages ends
-- normally (against the sandbox).
local helper = require("spec.helper")
local tiny_server = require("spec.tiny_server")
local thinkific = require("thinkific")

local API_KEY = "max-pages-api-key-4417"

-- Runs a webhooks() iterator to its end (at most `cap` steps): the items it gave, the
-- failures (each {false, err}) and whether it ended by itself.
local function drain(iter, cap)
  local items, failures = {}, {}
  for _ = 1, cap do
    local w, err = iter()
    if w == nil then return items, failures, true end
    if w then items[#items + 1] = w else failures[#failures + 1] = err end
  end
  return items, failures, false
end

local function assert_limit(err, pages)
  assert.is_true(thinkific.is_error(err), tostring(err))
  assert.are.equal("limit", err.kind)
  assert.are.equal("GET", err.method)
  assert.are.equal("/webhooks", err.path)
  local text = tostring(err)
  assert.truthy(text:find(("stopped after %d pages"):format(pages), 1, true), text)
  assert.truthy(text:find("max_pages", 1, true), text)
  assert.is_nil(text:find("\n", 1, true), text)
end

describe("max_pages", function()
  it("is an integer >= 1 (thinkific.new raises otherwise)", function()
    for _, bad in ipairs({ 0, -1, 1.5, 0 / 0, math.huge }) do
      local msg = helper.argerror(1, "new", function()
        thinkific.new{ api_key = "k", max_pages = bad }
      end)
      assert.truthy(msg:find("max_pages", 1, true), msg)
      assert.is_nil(msg:find("unknown option", 1, true), msg)
    end
    helper.argerror(1, "new", function() thinkific.new{ api_key = "k", max_pages = "10" } end)
    thinkific.new{ api_key = "k", max_pages = 1 }:close()
  end)

  describe("against a server that never stops giving a next page", function()
    local server, url
    lazy_setup(function()
      server, url = tiny_server.start("pages")
      url = url .. "/api/v2"
    end)
    lazy_teardown(function()
      if server then server:stop() end
    end)

    it("webhooks() gives max_pages pages, then false, err of kind limit once, then ends", function()
      local c = thinkific.new{ api_key = API_KEY, base_url = url, max_pages = 5 }
      local items, failures, ended = drain(c:webhooks{ limit = 1 }, 100)
      c:close()
      assert.is_true(ended)
      assert.are.equal(5, #items)
      assert.are.same({ "1", "2", "3", "4", "5" }, helper.ids_of(items))
      assert.are.equal(1, #failures)
      assert_limit(failures[1], 5)
    end)

    it("by default stops after 10,000 pages", function()
      local c = thinkific.new{ api_key = API_KEY, base_url = url }
      local items, failures, ended = drain(c:webhooks(), 20000)
      c:close()
      assert.is_true(ended, "still paging after 20000 steps")
      assert.are.equal(10000, #items)
      assert.are.equal(1, #failures)
      assert_limit(failures[1], 10000)
    end)

    it("sync_webhooks returns nil, err of kind limit with the report, before any change", function()
      local c = thinkific.new{ api_key = API_KEY, base_url = url, max_pages = 3 }
      local report, err = c:sync_webhooks({ { topic = "order.created",
        target_url = "https://example.com/new" } }, { prune = true })
      c:close()
      assert.is_nil(report)
      assert_limit(err, 3)
      assert.are.same({}, err.report.created)
      assert.are.same({}, err.report.deleted)
    end)

    describe("the command line #lua54", function()
      local run = helper.cli(function()
        return { THINKIFIC_API_KEY = API_KEY, THINKIFIC_BASE_URL = url }
      end, { API_KEY })

      it("webhooks list prints the 10,000 pages, then exits 1 with one line", function()
        local code, out, err = run({ "webhooks", "list", "--limit", "1" })
        assert.are.equal(1, code)
        local lines = select(2, out:gsub("\n", "\n"))
        assert.are.equal(10000, lines)
        assert.matches("^thinkific webhooks: GET /webhooks: stopped after 10000 pages[^\n]*"
          .. "max_pages[^\n]*%(limit%)\n$", err)
      end)

      it("webhooks sync exits 1 before any change", function()
        local dir = os.tmpname()
        local f = assert(io.open(dir, "w"))
        f:write('[{"topic":"order.created","target_url":"https://example.com/new"}]')
        f:close()
        local code, out, err = run({ "webhooks", "sync", "--prune", dir })
        os.remove(dir)
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.matches("^thinkific webhooks: GET /webhooks: stopped after 10000 pages[^\n]*"
          .. "max_pages[^\n]*%(limit%)\n$", err)
      end)
    end)
  end)

  describe("against the sandbox", function()
    local sb
    helper.with_sandbox(function(s) sb = s end, { api_key = API_KEY })

    it("a walk of exactly max_pages pages ends normally; one page more is a limit", function()
      for i = 1, 5 do helper.create_webhook(sb, "order.created", "https://example.com/" .. i) end
      -- limit 2: pages of 2, 2 and 1.
      local c = helper.client(sb, { max_pages = 3 })
      local items, failures, ended = drain(c:webhooks{ limit = 2 }, 100)
      c:close()
      assert.is_true(ended)
      assert.are.equal(5, #items)
      assert.are.same({}, failures)

      c = helper.client(sb, { max_pages = 2 })
      assert(sb:reset_stats())
      items, failures, ended = drain(c:webhooks{ limit = 2 }, 100)
      c:close()
      assert.is_true(ended)
      assert.are.equal(4, #items)
      assert.are.equal(1, #failures)
      assert_limit(failures[1], 2)
      assert.are.equal(2, assert(sb:stats()).requests) -- the third page is never asked for
    end)
  end)
end)
