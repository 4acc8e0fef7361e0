-- The events every sandbox starts with, from the sample deliveries in
-- spec/fixtures/payloads (order.created, enrollment.created, lesson.completed), with their
-- own envelope ids. Kept as compact JSON text, so that they are served byte for byte as
-- recorded (key order, nulls) and the server never reads files at run time.
local concat = table.concat

local _M = {}

_M.events = {
  -- order.created.json
  concat{
    '{"id":"20180126172320940835610","resource":"order","action":"created","tenant_id":"3",',
    '"created_at":"2018-01-26T22:23:20.808Z","payload":{"affiliate_referral_code":null,',
    '"amount_cents":5000,"amount_dollars":50,"billing_name":"Robert Smith",',
    '"coupon":{"id":12345678,"code":"discount123","promotion_id":1234567},',
    '"created_at":"2018-01-26T22:23:18.400Z","id":19796,"order_number":1010,',
    '"payment_type":"one-time","product_id":1,"product_name":"Introduction to Webhooks",',
    '"status":"Complete","items":[{"product_id":1,"product_name":"Introduction to Webhooks",',
    '"amount_dollars":50,"amount_cents":5000}],"user":{"email":"ninjas@thinkific.com",',
    '"first_name":"Robert","id":123456,"last_name":"Smith"}}}',
  },
  -- enrollment.created.json
  concat{
    '{"id":"20180126171756020665195","resource":"enrollment","action":"created","tenant_id":"3",',
    '"created_at":"2018-01-26T22:17:01.924Z",',
    '"payload":{"activated_at":"2018-01-26T22:16:52.255Z","completed_at":null,"course":{"id":4,',
    '"name":"Introduction to Webhooks"},"course_id":4,"created_at":"2018-01-26T22:16:52.285Z",',
    '"expiry_date":null,"free_trial":false,"id":97472,"percentage_completed":"0.0",',
    '"started_at":"2018-01-26T22:17:01.891Z","updated_at":"2018-01-26T22:17:01.924Z",',
    '"user":{"email":"ninjas@thinkific.com","first_name":"Robert","id":123456,',
    '"last_name":"Smith"}}}',
  },
  -- lesson.completed.json
  concat{
    '{"id":"20191029145629636106318","resource":"lesson","action":"completed",',
    '"tenant_id":"12345","tenant_global_id":"feb8d00d-8040-4382-afee-491a6c8013af",',
    '"created_at":"2019-10-29T18:56:29.474Z","payload":{"chapter":{"id":123,"name":"Chapter 1"},',
    '"course":{"id":123,"name":"Introduction to Webhooks"},"enrollment":{"id":1084282},',
    '"lesson":{"id":24220,"name":"Getting started with Webhooks","position":0,"type":"Video"},',
    '"user":{"email":"ninjas@thinkific.com","first_name":"Robert","id":123456,',
    '"last_name":"Smith"}}}',
  },
}

-- Their envelope ids, in the order above.
_M.ids = {
  "20180126172320940835610", -- order.created
  "20180126171756020665195", -- enrollment.created
  "20191029145629636106318", -- lesson.completed
}

-- Sample payloads by resource, for a trigger that brings none (`thinkific sandbox trigger
-- TOPIC`): the payloads of the events above, and the user and course they name.
local SAMPLES = {
  user = '{"email":"ninjas@thinkific.com","first_name":"Robert","id":123456,"last_name":"Smith"}',
  course = '{"id":4,"name":"Introduction to Webhooks"}',
}
for _, text in ipairs(_M.events) do
  local resource = text:match('"resource":"([^"]+)"')
  SAMPLES[resource] = text:match(',"payload":({.*})}$')
end

-- The JSON text of a sample payload for a topic ("resource.action"): that of its resource
-- when there is one, else {"id":1}.
function _M.sample_payload(topic)
  return SAMPLES[tostring(topic):match("^([^.]*)")] or '{"id":1}'
end

return _M
