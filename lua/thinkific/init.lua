-- lua-thinkific: the public facade, require("thinkific").
local core = require("thinkific.core")
local client = require("thinkific.client")

local _M = {
  _VERSION = require("thinkific.version"),
  null = core.null,
  decode = core.decode,
  encode = core.encode,
  array = core.array,
  is_error = core.is_error,
  sign = core.sign,
  verify = core.verify,
  new = client.new,
  router = require("thinkific.router").new,
  inbox = require("thinkific.inbox").new,
  quests = require("thinkific.quests").new,
  topics = require("thinkific.topics"),
}

return _M
