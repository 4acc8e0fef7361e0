-- client:sync_webhooks(desired, opts): make the account's webhooks match a desired list of
-- (topic, target_url) pairs. Reads every page, then creates what is missing and, with prune,
-- deletes what is not desired and extra copies of a desired pair. Idempotent: a run that fails
-- half-way returns what it did in err.report, and the change that failed in err.entry (a
-- creation) or err.webhook (a deletion); running it again finishes the job.
local core = require("thinkific.core")
local args = require("thinkific.args")
local integer = require("thinkific.integer")
local argerror, callable, webhook_fields = args.error, args.callable, args.webhook_fields
local is_integer, is_id = integer.is_integer, integer.is_id

local make_error = core.error
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local FNAME = "sync_webhooks"
local OPTIONS = { dry_run = "boolean", prune = "boolean", progress = "function" }

-- The comparison key of a pair; nil for a webhook whose fields are not both strings.
local function key_of(topic, target_url)
  if type(topic) ~= "string" or type(target_url) ~= "string" then return nil end
  return topic .. "\0" .. target_url
end

-- desired: a list (keys 1..n, no holes, nothing else) of {topic =, target_url =} with
-- non-empty strings and no other fields, no pair twice. Returns a checked copy.
local function check_desired(desired)
  if type(desired) ~= "table" then
    argerror(1, FNAME, "table expected, got " .. type(desired))
  end
  local n = #desired
  for k in pairs(desired) do
    if not is_integer(k) or k < 1 or k > n then
      argerror(1, FNAME, "a list of {topic =, target_url =} expected (key " .. tostring(k) .. ")")
    end
  end
  local list, seen = {}, {}
  for i = 1, n do
    local entry = webhook_fields(desired[i], 1, FNAME, ("entry %d: "):format(i))
    local key = key_of(entry.topic, entry.target_url)
    if seen[key] then
      argerror(1, FNAME, ("entry %d repeats entry %d (topic '%s', target_url '%s')"):format(
        i, seen[key], entry.topic, entry.target_url))
    end
    seen[key] = i
    entry.key, entry.index = key, i -- entry is a fresh copy
    list[i] = entry
  end
  return list
end

-- Returns dry_run, prune, progress (a function or nil).
local function check_opts(opts)
  if opts == nil then return false, false, nil end
  if type(opts) ~= "table" then argerror(2, FNAME, "table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then argerror(2, FNAME, "unknown option '" .. tostring(k) .. "'") end
    if not (type(v) == want or (want == "function" and callable(v))) then
      argerror(2, FNAME, ("option '%s' must be a %s, got %s"):format(k, want, type(v)))
    end
  end
  return opts.dry_run == true, opts.prune == true, opts.progress
end

-- nil, err with err.report attached (err made a table if a transport gave something else),
-- and what failed: entry (a desired entry, for a creation) or webhook (for a deletion).
local function fail(err, report, entry, webhook)
  if type(err) ~= "table" then
    err = make_error{ kind = "network", message = tostring(err) }
  end
  err.report = report
  if entry then
    err.entry = { index = entry.index, topic = entry.topic, target_url = entry.target_url }
  end
  err.webhook = webhook
  return nil, err
end

return function(client, desired, opts)
  local want = check_desired(desired)
  local dry_run, prune, progress = check_opts(opts)
  local report = { created = {}, deleted = {}, unchanged = {}, extra = {}, duplicates = {} }

  -- Every page, in listing order: the first copy of a desired pair is kept, later copies are
  -- duplicates (also deleted with prune); the rest is extra (left alone), or deleted with prune.
  local wanted = {}
  for _, d in ipairs(want) do wanted[d.key] = true end
  local present, remove, read = {}, {}, 0
  for webhook, err, total in client:webhooks{ limit = 250 } do
    if not webhook then return fail(err, report) end
    read = read + 1
    if progress then progress(read, total, "read") end
    local key = key_of(webhook.topic, webhook.target_url)
    if key and wanted[key] then
      if present[key] then
        report.duplicates[#report.duplicates + 1] = webhook
        remove[#remove + 1] = webhook
      else
        present[key] = webhook
      end
    elseif prune then
      remove[#remove + 1] = webhook -- not left alone: reported in deleted
    else
      report.extra[#report.extra + 1] = webhook
    end
  end

  local missing = {}
  for _, d in ipairs(want) do
    local found = present[d.key]
    if found then
      report.unchanged[#report.unchanged + 1] = found
    else
      missing[#missing + 1] = d
    end
  end

  -- Creations first (in desired order), then deletions (in listing order): a failure
  -- half-way never leaves fewer desired webhooks than before.
  local changes, changed = #missing + (prune and #remove or 0), 0
  local function applied()
    changed = changed + 1
    if progress and not dry_run then progress(changed, changes, "apply") end
  end
  for _, d in ipairs(missing) do
    if dry_run then
      report.created[#report.created + 1] = { topic = d.topic, target_url = d.target_url }
    else
      local webhook, err = client:create_webhook{ topic = d.topic, target_url = d.target_url }
      if not webhook then return fail(err, report, d) end
      report.created[#report.created + 1] = webhook
      applied()
    end
  end
  if prune then
    for _, webhook in ipairs(remove) do
      if not dry_run then
        local id = webhook.id
        if not is_id(id) then
          return fail(make_error{ kind = "decode", message = "a listed webhook has no id",
            method = "GET", path = "/webhooks" }, report, nil, webhook)
        end
        local ok, err = client:delete_webhook(id)
        if not ok then return fail(err, report, nil, webhook) end
      end
      report.deleted[#report.deleted + 1] = webhook
      applied()
    end
  end
  return report
end
