-- The sandbox's two pagination styles over real HTTP: next= cursors (meta.page) and page=
-- numbers (meta.pagination), limits, and a cursor whose webhook was deleted.
local helper = require("spec.helper")
local wire = require("spec.sandbox_wire")
local core = require("thinkific.core")

local api, connect = wire.api, wire.connect

describe("sandbox", function()
  local sb
  helper.with_sandbox(function(s) sb = s end)

  describe("pagination", function()
    local created

    before_each(function()
      created = {}
      local c = connect(sb)
      for i = 1, 60 do
        local status, _, body = c:request("POST", "/api/v2/webhooks", { body = {
          topic = "order.created", target_url = "https://example.com/" .. i } })
        assert.are.equal(201, status)
        created[i] = core.decode(body).id
      end
      c:close()
    end)

    it("walks every webhook once with next= cursors, in creation order", function()
      local seen, cursor, pages = {}, nil, 0
      repeat
        local path = "/webhooks?limit=7" .. (cursor and "&next=" .. cursor or "")
        local status, _, _, page = api(sb, "GET", path)
        assert.are.equal(200, status)
        pages = pages + 1
        local meta = page.meta.page
        assert.are.equal(#page.items, meta.page_items)
        assert.are.equal(60, meta.total_items)
        assert.are.equal(9, meta.total_pages)
        for _, wh in ipairs(page.items) do seen[#seen + 1] = wh.id end
        assert.are.equal(meta.has_next, meta.next_page ~= "")
        cursor = meta.has_next and meta.next_page or nil
      until not cursor or pages > 20
      assert.are.equal(9, pages)
      assert.are.same(created, seen)
    end)

    it("walks every webhook once with page=", function()
      local seen, page_no = {}, 1
      while page_no do
        local status, _, _, page = api(sb, "GET", "/webhooks?limit=7&page=" .. page_no)
        assert.are.equal(200, status)
        local p = page.meta.pagination
        assert.are.equal(page_no, p.current_page)
        assert.are.equal(60, p.total_items)
        assert.are.equal("integer", helper.number_type(p.total_items))
        assert.are.equal(9, p.total_pages)
        if page_no == 1 then assert.are.equal(core.null, p.prev_page) else
          assert.are.equal(page_no - 1, p.prev_page) end
        for _, wh in ipairs(page.items) do seen[#seen + 1] = wh.id end
        page_no = p.next_page ~= core.null and p.next_page or nil
        assert.is_true(#seen <= 60)
      end
      assert.are.same(created, seen)
    end)

    it("defaults to 25 and refuses bad limits and unknown cursors with 400", function()
      local _, _, _, page = api(sb, "GET", "/webhooks")
      assert.are.equal(25, #page.items)
      local _, _, _, second = api(sb, "GET", "/webhooks?next=" .. page.meta.page.next_page)
      assert.are.equal(created[26], second.items[1].id)
      for _, q in ipairs({ "limit=0", "limit=251", "limit=abc", "limit=-1", "limit=2.5",
        "next=nonsense", "page=0", "page=x" }) do
        local status, _, _, body = api(sb, "GET", "/webhooks?" .. q)
        assert.are.equal(400, status, q)
        assert.are.equal("string", type(body.error), q)
      end
      assert.are.equal(60, #select(4, api(sb, "GET", "/webhooks?limit=250")).items)
    end)

    it("keeps a cursor walk going when the next page's first webhook was deleted", function()
      local _, _, _, page = api(sb, "GET", "/webhooks?limit=10")
      local cursor = page.meta.page.next_page
      assert.are.equal(204, (api(sb, "DELETE", "/webhooks/" .. created[11])))
      local status, _, _, nextp = api(sb, "GET", "/webhooks?limit=10&next=" .. cursor)
      assert.are.equal(200, status)
      assert.are.equal(created[12], nextp.items[1].id)
    end)
  end)
end)
