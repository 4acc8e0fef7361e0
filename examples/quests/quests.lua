-- The quests of examples/quests/hooks.lua, in a rules file of their own. thinkific.quests runs
-- it in a sandbox (its own Lua state, at most 16 MiB and a million VM instructions per event,
-- no io, os, require or load): a game designer can change it without being able to hurt the
-- receiver. Check it, and play events through it without a store, with
--   thinkific quests check examples/quests/quests.lua
--   thinkific quests play examples/quests/quests.lua examples/quests/events/*.json
return {
  -- Level n at 50·(n-1)·n/2 XP: 0, 50, 150, 300, 500, … (each level a step longer).
  levels = { curve = "snowball", base = 50, count = 10 },
  scope = "course", -- XP adds up per course
  rules = {
    { name = "joined", on = "enrollment.created", xp = 5, say = "joined the quest" },
    { name = "lesson", on = "lesson.completed", xp = 10, say = "finished a lesson", once_per = "lesson" },
    { name = "quiz", on = "lesson.completed", xp = 15, say = "passed a quiz", once_per = "lesson",
      where = { ["lesson.type"] = "Quiz" } },
    { name = "first-lesson", on = "lesson.completed", xp = 25, say = "first lesson bonus",
      once_per = "student" },
    { name = "halfway", on = "enrollment.progress", xp = 20, badge = "Halfway Hero", progress = 50 },
    { name = "conqueror", on = { "enrollment.progress", "enrollment.completed" }, xp = 50,
      badge = "Course Conqueror", progress = 100 },
    { name = "webhook-wizard", on = "enrollment.completed", badge = "Webhook Wizard",
      where = { course_id = 4 } },
    -- A condition of the designer's own: lessons finished between midnight and 6 (UTC), at
    -- most three rewarded a day (the cheat guard counts the events' created_at).
    { name = "night-owl", on = "lesson.completed", xp = 5, say = "studied at night",
      once_per = "lesson", limit = { count = 3, per = 86400 },
      when = function(event)
        local hour = tonumber(event.created_at:match("T(%d%d):"))
        return hour ~= nil and hour < 6
      end },
  },
}
