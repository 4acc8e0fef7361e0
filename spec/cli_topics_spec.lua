-- `thinkific topics [--json]` prints thinkific.topics, Thinkific's 25 webhook topics in their
-- documented order; thinkific.cli.suggest gives the "did you mean" of the commands' usage
-- errors. The command is Lua 5.4 whatever runs the specs (#lua54: one run is enough).
local helper = require("spec.helper")
local thinkific = require("thinkific")

-- Thinkific's webhook topics, grouped by resource as its documentation lists them.
local DOCUMENTED = {
  "lead.created", "order.created", "order_transaction.succeeded", "order_transaction.failed",
  "order_transaction.refunded", "subscription.cancelled", "subscription.past_due",
  "subscription.unpaid", "user.signup", "user.signin", "user.updated", "enrollment.trial",
  "enrollment.created", "enrollment.completed", "enrollment.progress", "course.created",
  "course.deleted", "course.updated", "lesson.completed", "quiz.attempted", "app.uninstalled",
  "product.created", "product.deleted", "product.updated", "plan.updated",
}

describe("thinkific topics #lua54", function()
  local run = helper.cli({})

  it("thinkific.topics is the documented list, in order, and loads on its own", function()
    assert.are.same(DOCUMENTED, thinkific.topics)
    assert.are.equal(25, #thinkific.topics)
    assert.are.equal(require("thinkific.topics"), thinkific.topics)
  end)

  it("prints one topic per line, or one JSON array with --json, needing no credential", function()
    local code, out, err = run({ "topics" })
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.are.equal(table.concat(DOCUMENTED, "\n") .. "\n", out)
    code, out, err = run({ "topics", "--json" })
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.are.same(DOCUMENTED, assert(thinkific.decode(out)))
  end)

  it("suggests the closest word within a third of its length in edits", function()
    local suggest = require("thinkific.cli.suggest")
    assert.are.equal(0, suggest.distance("list", "list"))
    assert.are.equal(1, suggest.distance("lsit", "list"))     -- a swap is one edit
    assert.are.equal(1, suggest.distance("webhook", "webhooks"))
    assert.are.equal(3, suggest.distance("", "abc"))
    assert.are.equal("order.created", suggest.closest("order.creatd", DOCUMENTED))
    assert.are.equal("order.created", suggest.closest("ordercreated", DOCUMENTED))
    assert.are.equal("subscription.cancelled", suggest.closest("subscription.canceled", DOCUMENTED))
    assert.is_nil(suggest.closest("invoice.paid", DOCUMENTED))
    assert.is_nil(suggest.closest("x", { "sign", "listen" }))
    assert.are.equal(": did you mean 'events'?", suggest.hint("evnets", { "webhooks", "events" }))
    assert.are.equal("", suggest.hint("nosuch", { "webhooks", "events" }))
  end)
end)
