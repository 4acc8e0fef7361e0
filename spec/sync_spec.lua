-- client:sync_webhooks against the sandbox: creating what is missing, idempotent re-runs, dry
-- runs, prune, argument errors before any request, failures half-way (err.report) and
-- listings of more than one page.
local helper = require("spec.helper")

local PATH = "/api/v2/webhooks"

local function url(n) return "https://example.com/hooks/" .. n end

-- {topic, target_url} pairs of a list of webhooks (or desired entries), in order.
local function pairs_of(list)
  local out = {}
  for i, w in ipairs(list) do out[i] = { topic = w.topic, target_url = w.target_url } end
  return out
end

describe("client:sync_webhooks #memory", function()
  local sb, c
  helper.with_sandbox(function(s) sb = s end)

  before_each(function()
    c = helper.client(sb)
  end)

  after_each(function()
    if c then c:close() end
  end)

  -- Every webhook in the sandbox, in listing order.
  local function listing()
    local all = {}
    for w, err in c:webhooks{ limit = 250 } do
      assert.is_truthy(w, tostring(err))
      all[#all + 1] = w
    end
    return all
  end

  local function create(topic, target_url)
    return assert(c:create_webhook{ topic = topic, target_url = target_url })
  end

  local DESIRED = {
    { topic = "order.created", target_url = url(1) },
    { topic = "enrollment.created", target_url = url(2) },
    { topic = "user.signup", target_url = url(3) },
  }

  local function assert_empty(report, ...)
    for _, name in ipairs{ ... } do
      assert.are.same({}, report[name], name .. " is empty")
    end
  end

  it("creates what is missing, in desired order, and keeps what is there", function()
    local kept = create("enrollment.created", url(2))
    local report = assert(c:sync_webhooks(DESIRED))
    assert.are.same({ DESIRED[1], DESIRED[3] }, pairs_of(report.created))
    for _, w in ipairs(report.created) do
      assert.are.equal("string", type(w.id))
    end
    assert.are.same({ kept }, report.unchanged)
    assert_empty(report, "deleted", "extra", "duplicates")
    local now = listing()
    assert.are.same({ DESIRED[2], DESIRED[1], DESIRED[3] }, pairs_of(now))
    assert.are.same({ kept.id, report.created[1].id, report.created[2].id }, helper.ids_of(now))
  end)

  it("a second run has everything unchanged and makes no change", function()
    local first = assert(c:sync_webhooks(DESIRED))
    assert(sb:reset_stats())
    local second = assert(c:sync_webhooks(DESIRED, { prune = true }))
    assert_empty(second, "created", "deleted", "extra", "duplicates")
    assert.are.same(helper.ids_of(first.created), helper.ids_of(second.unchanged))
    assert.are.same(DESIRED, pairs_of(second.unchanged))
    assert.are.equal(1, assert(sb:stats()).requests, "one GET")
  end)

  it("an empty desired list without prune changes nothing", function()
    local a = create("order.created", url(9))
    local report = assert(c:sync_webhooks({}))
    assert.are.same({ a }, report.extra)
    assert_empty(report, "created", "deleted", "unchanged", "duplicates")
    assert.are.same({ a }, listing())
  end)

  it("a dry run makes only GETs and reports what would happen", function()
    local log = {}
    local dc = helper.client(sb, { transport = helper.socket_transport(log) })
    local kept = create("order.created", url(1))
    local dup = create("order.created", url(1))
    local extra = create("lesson.completed", url(7))
    local before = listing()
    local report = assert(dc:sync_webhooks(DESIRED, { dry_run = true, prune = true }))
    dc:close()
    assert.are.same({ DESIRED[2], DESIRED[3] }, report.created)
    for _, w in ipairs(report.created) do assert.is_nil(w.id) end
    assert.are.same({ kept }, report.unchanged)
    assert.are.same({ dup }, report.duplicates)
    assert.are.same({}, report.extra) -- with prune, not left alone: in deleted
    assert.are.same({ dup, extra }, report.deleted)
    assert.is_true(#log >= 1)
    for _, r in ipairs(log) do assert.are.equal("GET", r.method) end
    assert.are.same(before, listing())
  end)

  it("prune deletes extras and duplicates, in listing order", function()
    local extra1 = create("lesson.completed", url(7))
    local kept = create("order.created", url(1))
    local dup = create("order.created", url(1))
    local extra2 = create("order.created", url(8))
    local report = assert(c:sync_webhooks(DESIRED, { prune = true }))
    assert.are.same({ DESIRED[2], DESIRED[3] }, pairs_of(report.created))
    assert.are.same({ kept }, report.unchanged)
    assert.are.same({}, report.extra)
    assert.are.same({ dup }, report.duplicates)
    assert.are.same({ extra1, dup, extra2 }, report.deleted)
    local now = listing()
    assert.are.same({ kept.id, report.created[1].id, report.created[2].id }, helper.ids_of(now))
    local again = assert(c:sync_webhooks(DESIRED, { prune = true }))
    assert_empty(again, "created", "deleted", "extra", "duplicates")
  end)

  it("reports progress: each webhook read (of the total the server gives), then each change", function()
    create("order.created", url(1))
    create("lesson.completed", url(7))
    local calls = {}
    local function progress(done, total, stage)
      calls[#calls + 1] = ("%s %d/%s"):format(stage, done, tostring(total))
    end
    assert(c:sync_webhooks(DESIRED, { prune = true, dry_run = true, progress = progress }))
    assert.are.same({ "read 1/2", "read 2/2" }, calls)
    calls = {}
    assert(c:sync_webhooks(DESIRED, { prune = true, progress = progress }))
    assert.are.same({ "read 1/2", "read 2/2", "apply 1/3", "apply 2/3", "apply 3/3" }, calls)
  end)

  it("without prune, extras and duplicates are reported and kept", function()
    local kept = create("order.created", url(1))
    local extra = create("lesson.completed", url(7))
    local dup = create("order.created", url(1))
    local report = assert(c:sync_webhooks(DESIRED, { prune = false }))
    assert.are.same({ kept }, report.unchanged)
    assert.are.same({ extra }, report.extra)
    assert.are.same({ dup }, report.duplicates)
    assert_empty(report, "deleted")
    assert.are.equal(2, #report.created)
    assert.are.equal(5, #listing())
  end)

  describe("argument errors, raised before any request", function()
    local function raises(n, fn)
      assert(sb:reset_stats())
      local msg = helper.argerror(n, "sync_webhooks", fn)
      assert.are.equal(0, assert(sb:stats()).requests, "no request")
      return msg
    end

    it("desired must be a list of {topic, target_url} with non-empty strings", function()
      raises(1, function() c:sync_webhooks() end)
      raises(1, function() c:sync_webhooks("order.created") end)
      raises(1, function() c:sync_webhooks{ topic = "order.created", target_url = url(1) } end)
      raises(1, function() c:sync_webhooks{ [1] = DESIRED[1], [3] = DESIRED[3] } end)
      raises(1, function() c:sync_webhooks{ DESIRED[1], "x" } end)
      raises(1, function() c:sync_webhooks{ { topic = "order.created" } } end)
      raises(1, function() c:sync_webhooks{ { topic = "", target_url = url(1) } } end)
      raises(1, function() c:sync_webhooks{ { topic = "order.created", target_url = 5 } } end)
      raises(1, function()
        c:sync_webhooks{ { topic = "order.created", target_url = url(1), id = "1" } }
      end)
    end)

    it("the same pair twice", function()
      local msg = raises(1, function()
        c:sync_webhooks{ DESIRED[1], DESIRED[2],
          { topic = "order.created", target_url = url(1) } }
      end)
      assert.truthy(msg:find("entry 3 repeats entry 1", 1, true), msg)
    end)

    it("unknown or mistyped options", function()
      raises(2, function() c:sync_webhooks(DESIRED, { prnue = true }) end)
      raises(2, function() c:sync_webhooks(DESIRED, { dry_run = "yes" }) end)
      raises(2, function() c:sync_webhooks(DESIRED, { progress = true }) end)
      raises(2, function() c:sync_webhooks(DESIRED, true) end)
      raises(0, function() c.sync_webhooks({}, DESIRED) end)
    end)
  end)

  describe("faults it rides out", function()
    it("a 429 storm on the listing and the creations, then a dropped DELETE", function()
      local extra = create("lesson.completed", url(7))
      local rc, waits = helper.recording(sb)
      local limited = { status = 429, headers = { ["Retry-After"] = "2" },
        body = { error = "Too many requests" } }
      assert(sb:fault{ path = PATH, method = "GET", count = 2, status = limited.status,
        headers = limited.headers, body = limited.body })
      assert(sb:fault{ path = PATH, method = "POST", count = 2, status = limited.status,
        headers = limited.headers, body = limited.body })
      -- A dropped DELETE is retried (idempotent): the retry sees it done or does it.
      assert(sb:fault{ path = PATH .. "/", method = "DELETE", drop = true, count = 1 })
      local report = assert(rc:sync_webhooks(DESIRED, { prune = true }))
      rc:close()
      assert.are.same(DESIRED, pairs_of(report.created))
      assert.are.same({ extra }, report.deleted)
      assert.are.same(DESIRED, pairs_of(listing()))
      -- Four waits of the server's 2 s, and one short one for the dropped DELETE.
      assert.are.equal(5, #waits)
      for i = 1, 4 do assert.are.equal(2, waits[i]) end
    end)
  end)

  describe("a failure half-way", function()
    it("the 2nd POST answers 422: nil, err with the first creation in err.report", function()
      assert(sb:fault{ path = PATH, method = "POST", delay_ms = 0, count = 1 })
      assert(sb:fault{ path = PATH, method = "POST", status = 422, count = 1,
        body = { errors = { target_url = { "is invalid" } } } })
      local report, err = c:sync_webhooks(DESIRED)
      assert.is_nil(report)
      assert.are.equal(422, err.status)
      assert.are.equal("table", type(err.report))
      assert.are.same({ DESIRED[1] }, pairs_of(err.report.created))
      assert.are.equal("string", type(err.report.created[1].id))
      assert_empty(err.report, "deleted", "unchanged", "extra", "duplicates")
      -- What failed: the creation of desired entry 2.
      assert.are.same({ index = 2, topic = DESIRED[2].topic, target_url = DESIRED[2].target_url },
        err.entry)
      assert.is_nil(err.webhook)
      -- Running it again finishes the job.
      local again = assert(c:sync_webhooks(DESIRED))
      assert.are.same({ DESIRED[2], DESIRED[3] }, pairs_of(again.created))
      assert.are.same({ err.report.created[1] }, again.unchanged)
      local final = assert(c:sync_webhooks(DESIRED))
      assert_empty(final, "created", "deleted")
      assert.are.same(DESIRED, pairs_of(final.unchanged))
    end)

    it("the 2nd POST is dropped: not retried, nil, err; a re-run finishes", function()
      local log = {}
      local lc = helper.client(sb, { transport = helper.socket_transport(log) })
      assert(sb:fault{ path = PATH, method = "POST", delay_ms = 0, count = 1 })
      assert(sb:fault{ path = PATH, method = "POST", drop = true, count = 1 })
      local report, err = lc:sync_webhooks(DESIRED)
      assert.is_nil(report)
      assert.are.equal("table", type(err))
      assert.are.same({ DESIRED[1] }, pairs_of(err.report.created))
      local posts = 0
      for _, r in ipairs(log) do if r.method == "POST" then posts = posts + 1 end end
      assert.are.equal(2, posts, "the dropped POST is not retried")
      local again = assert(lc:sync_webhooks(DESIRED))
      lc:close()
      assert.are.equal(2, #again.created)
      assert.are.same(DESIRED, pairs_of(listing()))
    end)

    it("a failing DELETE under prune reports the creations and deletions done", function()
      local e1 = create("lesson.completed", url(7))
      local e2 = create("lesson.completed", url(8))
      assert(sb:fault{ path = PATH .. "/", method = "DELETE", delay_ms = 0, count = 1 })
      assert(sb:fault{ path = PATH .. "/", method = "DELETE", status = 403, count = 1 })
      local report, err = c:sync_webhooks(DESIRED, { prune = true })
      assert.is_nil(report)
      assert.are.equal(403, err.status)
      assert.are.equal(3, #err.report.created)
      assert.are.same({ e1 }, err.report.deleted)
      -- What failed: the deletion of the second extra webhook, as listed.
      assert.are.same(e2, err.webhook)
      assert.is_nil(err.entry)
      local again = assert(c:sync_webhooks(DESIRED, { prune = true }))
      assert_empty(again, "created")
      assert.are.equal(1, #again.deleted)
      assert.are.same(DESIRED, pairs_of(listing()))
    end)

    it("a failing listing: nil, err with an empty report, nothing changed", function()
      assert(sb:fault{ path = PATH, method = "GET", status = 500, count = 10 })
      local report, err = c:sync_webhooks(DESIRED)
      assert.is_nil(report)
      assert.are.equal(500, err.status)
      assert_empty(err.report, "created", "deleted", "unchanged", "extra", "duplicates")
      assert.is_nil(err.entry)
      assert.is_nil(err.webhook)
      assert(sb:clear_faults())
      assert.are.same({}, listing())
    end)
  end)
end)

describe("client:sync_webhooks over more than one page", function()
  local sb, c
  helper.with_sandbox(function(s) sb = s end)

  before_each(function()
    c = helper.client(sb)
  end)

  after_each(function()
    if c then c:close() end
  end)

  it("reads every page (260 existing webhooks)", function()
    local made = {}
    for i = 1, 260 do
      made[i] = assert(c:create_webhook{ topic = "order.created", target_url = url(i) })
    end
    -- Desired: the last one (on the second page) and one new one; everything else is extra.
    local desired = { { topic = "order.created", target_url = url(260) },
      { topic = "order.created", target_url = url(261) } }
    assert(sb:reset_stats())
    local dry = assert(c:sync_webhooks(desired, { dry_run = true, prune = true }))
    assert.are.equal(2, assert(sb:stats()).requests, "two GETs: two pages")
    assert.are.same({ made[260] }, dry.unchanged)
    assert.are.same({ desired[2] }, dry.created)
    assert.are.equal(259, #dry.deleted)
    assert.are.equal(0, #dry.extra)
    assert.are.equal(made[1].id, dry.deleted[1].id)
    assert.are.equal(made[259].id, dry.deleted[259].id)
    local report = assert(c:sync_webhooks(desired, { prune = true }))
    assert.are.equal(259, #report.deleted)
    local again = assert(c:sync_webhooks(desired, { prune = true }))
    assert.are.same({}, again.created)
    assert.are.same({}, again.deleted)
    assert.are.equal(2, #again.unchanged)
  end)
end)
