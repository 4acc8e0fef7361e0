-- The fields of Thinkific's sample payloads, by topic: every dotted path ("lesson.type") of
-- the samples in spec/fixtures/payloads (variants included) and the sandbox's fixtures, which
-- spec/quests_samples_spec.lua compares with this list. `thinkific quests check` warns about a
-- `where` field that no sample of its topic has. Lists are not descended into (a `where` path
-- cannot index one).
local _M = {}

_M.TOPICS = {
  ["enrollment.created"] = {
    "activated_at", "completed_at", "course", "course.id", "course.name", "course_id", "created_at",
    "expiry_date", "free_trial", "id", "percentage_completed", "started_at", "updated_at", "user",
    "user.email", "user.first_name", "user.id", "user.last_name",
  },
  ["enrollment.progress"] = {
    "activated_at", "completed_at", "course", "course.id", "course.name", "course_id", "created_at",
    "expiry_date", "free_trial", "id", "percentage_completed", "started_at", "updated_at", "user",
    "user.email", "user.first_name", "user.id", "user.last_name",
  },
  ["lesson.completed"] = {
    "chapter", "chapter.id", "chapter.name", "course", "course.id", "course.name", "enrollment",
    "enrollment.id", "lesson", "lesson.id", "lesson.name", "lesson.position", "lesson.type", "user",
    "user.email", "user.first_name", "user.id", "user.last_name",
  },
  ["order.created"] = {
    "affiliate_referral_code", "amount_cents", "amount_dollars", "billing_name", "coupon",
    "coupon.code", "coupon.id", "coupon.promotion_id", "created_at", "id", "items", "order_number",
    "payment_type", "product_id", "product_name", "status", "user", "user.email", "user.first_name",
    "user.id", "user.last_name",
  },
  ["quiz.attempted"] = {
    "attempts", "correct_count", "grade", "incorrect_count", "quiz", "quiz.id", "quiz.name",
    "result_id", "user", "user.email", "user.first_name", "user.id", "user.last_name",
  },
  ["user.signin"] = {
    "administered_course_ids", "affiliate_code", "affiliate_commission",
    "affiliate_commission_type", "affiliate_payout_email", "avatar_url", "bio", "company",
    "created_at", "custom_profile_fields", "email", "external_source", "first_name", "headline",
    "id", "last_name", "roles",
  },
  ["user.signup"] = {
    "administered_course_ids", "affiliate_code", "affiliate_commission", "affiliate_payout_email",
    "avatar_url", "bio", "company", "created_at", "custom_profile_fields", "email",
    "external_source", "first_name", "headline", "id", "last_name", "roles",
  },
}

local SETS = {}
for topic, list in pairs(_M.TOPICS) do
  local set = {}
  for _, path in ipairs(list) do set[path] = true end
  SETS[topic] = set
end

--- samples.paths(topic) -> the set of paths its samples have, and the topic they came from;
-- for a topic without a sample of its own, the union of its resource's (enrollment.completed
-- is taken to look like the other enrollment events); nil when there is none.
function _M.paths(topic)
  if SETS[topic] then return SETS[topic], topic end
  local resource = topic:match("^([^.]+)%.")
  local union, found = {}, false
  for t, set in pairs(SETS) do
    if resource and t:match("^([^.]+)%.") == resource then
      found = true
      for path in pairs(set) do union[path] = true end
    end
  end
  if found then return union, resource .. ".*" end
  return nil
end

return _M
