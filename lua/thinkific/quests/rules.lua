-- The rules of thinkific.quests: what a rule may say, checked when quests starts (raising on
-- the first problem) and by `thinkific quests check` (every problem, plus what looks wrong
-- against Thinkific's topics and sample payloads), and compiled into what scoring needs.
local null = require("thinkific.core").null
local integer = require("thinkific.integer")
local intake = require("thinkific.intake")
local levels = require("thinkific.quests.levels")
local samples = require("thinkific.quests.samples")
local suggest = require("thinkific.cli.suggest")
local TOPICS = require("thinkific.topics")

local type, pairs, ipairs, tostring, next = type, pairs, ipairs, tostring, next
local format = string.format

local _M = {}

_M.KEYS = { "name", "on", "xp", "badge", "say", "once_per", "progress", "where", "when", "limit" }
_M.ONCE_PER = { "event", "student", "course", "lesson" }
_M.SCOPES = { "course", "site" }
local SOURCE_KEYS = { "rules", "levels", "scope" }

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end
local KEY_SET, ONCE_SET, SCOPE_SET = set_of(_M.KEYS), set_of(_M.ONCE_PER), set_of(_M.SCOPES)
local KNOWN_TOPICS = set_of(TOPICS)
local KNOWN_RESOURCES = {}
for _, t in ipairs(TOPICS) do KNOWN_RESOURCES[t:match("^[^.]+")] = true end

local MAX_XP = 1e9       -- XP one rule (or one manual award) may give or take
local MAX_TEXT = 200     -- bytes of a name or a badge

local function text(v, max)
  return type(v) == "string" and v ~= "" and #v <= max and not v:find("%z")
end

-- The label of rule i in messages: its name, or its position.
local function label(rule, i)
  if type(rule) == "table" and text(rule.name, MAX_TEXT) then return format("rule '%s'", rule.name) end
  return format("rule #%d", i)
end
_M.label = label

local function well_formed_topic(t)
  return type(t) == "string"
    and (t == "*" or t:match("^[%w_]+%.%*$") or t:match("^[%w_]+%.[%w_]+$")) and true or false
end

local function where_value(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean" or v == null
end

-- Compiles rule i; problems are appended to `problems` as { rule = label, message = … }.
local function compile(rule, i, is_function, problems)
  local who = label(rule, i)
  local function bad(message) problems[#problems + 1] = { rule = who, index = i, message = message } end
  if type(rule) ~= "table" then
    bad("is not a table (a rule is { name = …, on = …, xp = … })")
    return nil
  end
  for k in pairs(rule) do
    if not KEY_SET[k] then
      bad(format("unknown key '%s'%s", tostring(k), type(k) == "string" and suggest.hint(k, _M.KEYS) or ""))
    end
  end
  local c = { name = rule.name, xp = 0 }
  if rule.name == nil then
    bad("has no name (name = \"…\": it keys the awards, so it must be there and unique)")
  elseif not text(rule.name, MAX_TEXT) then
    bad("name must be a non-empty string of at most " .. MAX_TEXT .. " bytes")
  end
  local on = rule.on
  if on == nil then
    bad("has no 'on' (the topic, e.g. on = \"lesson.completed\", or a list of them)")
  else
    local list = type(on) == "table" and on or { on }
    c.topics = {}
    if #list == 0 then bad("'on' lists no topic") end
    for _, t in ipairs(list) do
      if well_formed_topic(t) then
        c.topics[#c.topics + 1] = intake.canonical(t)
      else
        bad(format("topic %s is not \"resource.action\", \"resource.*\" or \"*\"",
          type(t) == "string" and format("'%s'", t) or "of type " .. type(t)))
      end
    end
  end
  if rule.xp ~= nil then
    if not (integer.is_integer(rule.xp) and rule.xp >= -MAX_XP and rule.xp <= MAX_XP) then
      bad("xp must be a whole number of points")
    else
      c.xp = rule.xp
    end
  end
  if rule.badge ~= nil then
    if text(rule.badge, MAX_TEXT) then c.badge = rule.badge
    else bad("badge must be a non-empty string of at most " .. MAX_TEXT .. " bytes") end
  end
  if (c.xp == 0 or rule.xp == nil) and rule.badge == nil then bad("gives nothing: give xp or a badge") end
  if rule.say ~= nil then
    if type(rule.say) == "string" then c.say = rule.say else bad("say must be a string") end
  end
  if rule.progress ~= nil then
    local p = rule.progress
    if type(p) == "number" and p > 0 and p <= 100 then c.progress = p
    else bad("progress must be a percentage above 0, at most 100") end
  end
  -- A progress rule fires when the student's progress in a course first reaches it.
  c.once_per = rule.once_per or (c.progress and "course") or "event"
  if not ONCE_SET[c.once_per] then
    bad(format("once_per must be \"event\", \"student\", \"course\" or \"lesson\", got %s",
      tostring(rule.once_per)))
  end
  if rule.where ~= nil then
    if type(rule.where) ~= "table" then
      bad("where must be a table of field = value")
    else
      c.where = {}
      for path, want in pairs(rule.where) do
        if type(path) ~= "string" or path == "" or path:find("^%.") or path:find("%.$")
            or path:find("%.%.") then
          bad(format("where: '%s' is not a field name or a dotted path", tostring(path)))
        elseif not where_value(want) then
          bad(format("where: the value of '%s' must be a string, number, boolean or null", path))
        else
          local parts = {}
          for part in path:gmatch("[^.]+") do parts[#parts + 1] = part end
          c.where[#c.where + 1] = { path = path, parts = parts, value = want }
        end
      end
      table.sort(c.where, function(a, b) return a.path < b.path end)
    end
  end
  if rule.when ~= nil then
    if is_function(rule.when) then c.when = rule.when
    else bad("when must be a function(event, player)") end
  end
  if rule.limit ~= nil then
    local l = rule.limit
    local ok = type(l) == "table" and integer.is_integer(l.count) and l.count >= 1 and l.count <= 1000
      and type(l.per) == "number" and l.per > 0 and l.per < math.huge
    if ok then
      for k in pairs(l) do if k ~= "count" and k ~= "per" then ok = false end end
    end
    if ok then c.limit = { count = l.count, per = l.per }
    else bad("limit must be { count = 1..1000 awards, per = seconds > 0 }") end
  end
  return c
end

-- The parts of a source: a list of rules, or { rules = list, levels = …, scope = … }.
local function parts(source, problems)
  if type(source) ~= "table" then
    problems[#problems + 1] = { message = "rules must be a list of rules (or { rules = …, levels = …, "
      .. "scope = … }), got " .. type(source) }
    return nil
  end
  if source.rules == nil then
    for k in pairs(source) do
      if not (integer.is_integer(k) and k >= 1 and k <= #source) then
        problems[#problems + 1] = { message = format("a list of rules has no key '%s' (settings go in "
          .. "{ rules = …, levels = …, scope = … })", tostring(k)) }
      end
    end
    return source
  end
  for k in pairs(source) do
    if type(k) ~= "string" or not set_of(SOURCE_KEYS)[k] then
      problems[#problems + 1] = { message = format("unknown key '%s' beside rules (rules, levels, scope)",
        tostring(k)) }
    end
  end
  if type(source.rules) ~= "table" then
    problems[#problems + 1] = { message = "rules must be a list of rules" }
    return nil
  end
  return source.rules, source.levels, source.scope
end

--- rules.read(source, is_function) -> { rules, levels, scope, topics }, problems
-- rules: the compiled list (nil when any problem was found); levels: the thresholds when the
-- source sets levels; scope: when it sets one; topics: every topic the rules use, in order.
-- is_function(v): whether v may be a rule's `when`.
function _M.read(source, is_function)
  local problems = {}
  local list, level_spec, scope = parts(source, problems)
  local out = { topics = {} }
  if level_spec ~= nil then
    local thresholds, why = levels.thresholds(level_spec)
    if thresholds then out.levels = thresholds
    else problems[#problems + 1] = { message = "levels: " .. why } end
  end
  if scope ~= nil then
    if SCOPE_SET[scope] then out.scope = scope
    else
      problems[#problems + 1] = { message = "scope must be \"course\" or \"site\", got " .. tostring(scope) }
    end
  end
  if not list then return out, problems end
  local compiled, names, seen = {}, {}, {}
  if #list == 0 and next(list) == nil then problems[#problems + 1] = { message = "there are no rules" } end
  for i, rule in ipairs(list) do
    local c = compile(rule, i, is_function, problems)
    if c and text(c.name, MAX_TEXT) then
      if names[c.name] then
        problems[#problems + 1] = { rule = format("rule #%d ('%s')", i, c.name), index = i,
          message = format("has the name of rule #%d: names key the awards and must be unique",
            names[c.name]) }
      end
      names[c.name] = names[c.name] or i
    end
    compiled[i] = c
    for _, t in ipairs(c and c.topics or {}) do
      if not seen[t] then
        seen[t] = true
        out.topics[#out.topics + 1] = t
      end
    end
  end
  if #problems == 0 then out.rules = compiled end
  return out, problems
end

-- What `quests check` adds: topics Thinkific does not document, where fields and once_per ids
-- no sample payload of the topic has, progress on a topic without progress.
local function lint(rule, i, problems)
  local who = label(rule, i)
  local function warn(message) problems[#problems + 1] = { rule = who, index = i, message = message } end
  local list = type(rule.on) == "table" and rule.on or { rule.on }
  for _, t in ipairs(list) do
    if type(t) == "string" and well_formed_topic(t) and t ~= "*" then
      local topic = intake.canonical(t)
      local resource = topic:match("^([%w_]+)%.%*$")
      if resource and not KNOWN_RESOURCES[resource] then
        warn(format("unknown topic '%s': Thinkific has no %s.* topics (see thinkific topics)", t, resource))
      elseif not resource and not KNOWN_TOPICS[topic] then
        warn(format("unknown topic '%s'%s (see thinkific topics)", t, suggest.hint(t, TOPICS)))
      else
        -- ("x.*" has no sample of its own: samples.paths gives the resource's.)
        local paths, from = samples.paths(topic)
        if paths then
          local names = {}
          for p in pairs(paths) do names[#names + 1] = p end
          table.sort(names)
          for path in pairs(type(rule.where) == "table" and rule.where or {}) do
            if type(path) == "string" and not paths[path] then
              warn(format("where field '%s' is in no sample payload of %s%s", path, from,
                suggest.hint(path, names)))
            end
          end
          if rule.once_per == "lesson" and not paths["lesson.id"] then
            warn(format("once_per = \"lesson\" but no sample payload of %s has lesson.id: it "
              .. "never fires there", from))
          end
          if rule.once_per == "course" and not (paths.course_id or paths["course.id"]) then
            warn(format("once_per = \"course\" but no sample payload of %s has a course id: it "
              .. "never fires there", from))
          end
          if rule.progress ~= nil and topic ~= "enrollment.completed"
              and not paths.percentage_completed then
            warn(format("progress on %s, whose sample payloads have no percentage_completed: it "
              .. "never fires there", from))
          end
        end
      end
    end
  end
end

--- rules.check(source, is_function) -> problems: read's and lint's, in rule order (settings
-- first). Each: { rule = "rule 'name'" | nil, message = … }.
function _M.check(source, is_function)
  local _, problems = _M.read(source, is_function)
  local list = type(source) == "table" and (type(source.rules) == "table" and source.rules or source) or {}
  local linted = {}
  for i, rule in ipairs(list) do
    if type(rule) == "table" then lint(rule, i, linted) end
  end
  for _, p in ipairs(linted) do problems[#problems + 1] = p end
  -- In rule order: settings (no rule) first, then by position.
  for i, p in ipairs(problems) do p.n = i end
  table.sort(problems, function(a, b)
    if (a.index or 0) ~= (b.index or 0) then return (a.index or 0) < (b.index or 0) end
    return a.n < b.n
  end)
  for _, p in ipairs(problems) do p.n, p.index = nil, nil end
  return problems
end

--- rules.message(problem) -> "rule 'x': message"
function _M.message(p)
  return p.rule and (p.rule .. ": " .. p.message) or p.message
end

--- rules.summary(problems) -> the first problem's message, and how many more there are.
function _M.summary(problems)
  local text1 = _M.message(problems[1])
  if #problems > 1 then
    text1 = text1 .. format(" (and %d more: run thinkific quests check)", #problems - 1)
  end
  return text1
end

return _M
