-- The rules file of `thinkific listen` (it returns a router) for the quests example: the
-- game's rules in quests.lua beside it, the scores in the store THINKIFIC_QUESTS names.
--   THINKIFIC_WEBHOOK_SECRET=… THINKIFIC_QUESTS=sqlite:/var/lib/app/quests.db \
--     thinkific listen examples/quests/hooks.lua --inbox sqlite:/var/lib/app/inbox.db
-- With --inbox, each delivery is stored and acknowledged first; workers score it after, and a
-- rule that fails (or is stopped by the sandbox) sends its event through the inbox's retries.
local thinkific = require("thinkific")

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local secret = os.getenv("THINKIFIC_WEBHOOK_SECRET")
if not secret or secret == "" then error("set THINKIFIC_WEBHOOK_SECRET", 0) end
local store = os.getenv("THINKIFIC_QUESTS")
if not store or store == "" then error("set THINKIFIC_QUESTS (e.g. sqlite:/var/lib/app/quests.db)", 0) end

local router = thinkific.router{ secret = secret }
local quests = assert(thinkific.quests{ store = store, rules = here .. "quests.lua" })
quests:attach(router)
quests:on_level_up(function(player, old_level)
  io.stderr:write(("%s reached level %d (from %d)\n"):format(player.name or player.user_id,
    player.level, old_level))
end)
return router
