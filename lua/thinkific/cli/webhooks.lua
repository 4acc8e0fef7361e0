-- `thinkific webhooks list|create|get|update|delete|sync`: the webhooks of an account, with
-- the credentials from the environment (see thinkific.cli.common).
local argparse = require("argparse")
local common = require("thinkific.cli.common")
local rate_limit = require("thinkific.cli.rate_limit")
local sync_file = require("thinkific.cli.sync_file")
local topics = require("thinkific.cli.topics")

local _M = {}

local PROG = "thinkific webhooks"
local ACTIONS = { "list", "create", "get", "update", "delete", "sync" }

local function parser(action)
  local p
  if action == "list" then
    p = argparse(PROG .. " list", "List every webhook of the account (all pages).")
    p:option("--limit", "Page size, 1..250.", "250")
  elseif action == "create" then
    p = argparse(PROG .. " create", "Create a webhook.")
    p:option("--topic", "Topic, e.g. order.created (see thinkific topics)."):count(1)
    p:option("--target-url", "URL the deliveries go to."):count(1)
    p:flag("--allow-unknown-topic", topics.ALLOW_HELP)
  elseif action == "get" then
    p = argparse(PROG .. " get", "Show one webhook.")
    p:argument("id", "Webhook id.")
  elseif action == "delete" then
    p = argparse(PROG .. " delete", "Delete one webhook.")
    p:argument("id", "Webhook id.")
  elseif action == "update" then
    p = argparse(PROG .. " update", "Change a webhook's topic and target URL.")
    p:argument("id", "Webhook id.")
    p:option("--topic", "Topic, e.g. order.created (see thinkific topics)."):count(1)
    p:option("--target-url", "URL the deliveries go to."):count(1)
    p:flag("--allow-unknown-topic", topics.ALLOW_HELP)
  elseif action == "sync" then
    p = argparse(PROG .. " sync", "Make the account's webhooks match FILE: prints the plan "
      .. "(a dry run), then applies it unless --dry-run.")
    p:argument("file", "A JSON array of {topic, target_url}, or a Lua file (.lua) returning one.")
    p:flag("--dry-run", "Print the plan only; change nothing.")
    p:flag("--prune", "Also delete webhooks that FILE does not list, and duplicates.")
    p:flag("--allow-unknown-topic", "Accept topics that are not in 'thinkific topics' "
      .. "(Thinkific may add topics).")
  end
  p:add_help(false)
  p:help_max_width(common.HELP_WIDTH)
  p:flag("-h --help", "Show this help and exit.")
  p:flag("--json", "Print the decoded JSON.")
  p:option("--ca-file", common.CA_FILE_HELP)
  p:epilog(common.API_ENVIRONMENT)
  return p
end

local function top_usage(out)
  out:write("Usage: thinkific webhooks <action> [options]\n\nActions:\n",
    "  list [--limit N]\n",
    "  create --topic T --target-url URL\n",
    "  get ID\n",
    "  update ID --topic T --target-url URL\n",
    "  delete ID\n",
    "  sync FILE [--dry-run] [--prune]\n",
    "\nEvery action takes --json, --ca-file FILE and --help. create, update and sync\n"
    .. "check topics against 'thinkific topics' unless given --allow-unknown-topic.\n\n",
    common.API_ENVIRONMENT, "\n")
end

local function show(args, webhook)
  if args.json then
    local ok, err = common.print_json(webhook)
    if not ok then return common.fail(PROG, err) end
  else
    io.stdout:write(common.webhook_line(webhook), "\n")
  end
  return 0
end

local function nonempty_id(p, args)
  if args.id == "" then return common.usage_error(p, PROG, "ID must not be empty") end
end

local function arrays(report)
  local array = require("thinkific").array
  local out = {}
  for _, k in ipairs({ "created", "deleted", "unchanged", "extra", "duplicates" }) do
    out[k] = array(report[k] or {})
  end
  return out
end

-- Prints a report of client:sync_webhooks under title; dry: a plan (nothing applied yet).
local function print_report(report, title, dry)
  local out = io.stdout
  out:write(title, "\n")
  local would = dry and "would " or ""
  for _, w in ipairs(report.created) do
    out:write("  ", would, "create\t", common.webhook_line(w), "\n")
  end
  for _, w in ipairs(report.deleted) do
    out:write("  ", would, "delete\t", common.webhook_line(w), "\n")
  end
  for _, w in ipairs(report.unchanged) do out:write("  unchanged\t", common.webhook_line(w), "\n") end
  if #report.deleted == 0 then
    for _, w in ipairs(report.extra) do out:write("  extra\t", common.webhook_line(w), "\n") end
    for _, w in ipairs(report.duplicates) do
      out:write("  duplicate\t", common.webhook_line(w), "\n")
    end
  end
  out:write(string.format("  %d %s, %d %s, %d unchanged, %d extra, %d duplicates\n",
    #report.created, dry and "to create" or "created", #report.deleted,
    dry and "to delete" or "deleted", #report.unchanged, #report.extra, #report.duplicates))
end

-- The pages of `limit` webhooks still to read after `done` of `total` (nil: not known).
local function pages_left(done, total, limit)
  if not total then return 0 end
  return math.max(0, math.ceil(total / limit) - math.ceil(done / limit))
end

-- progress(done, total, stage) for client:sync_webhooks, shown by reporter with the time left
-- (pace: rate_limit.pace); `changes`: those still to apply after the reading. Counts the webhooks
-- read in seen.read.
local function sync_progress(reporter, pace, changes, seen)
  return function(done, total, stage)
    if stage == "read" then seen.read = done end
    if not reporter.active then return end
    if stage == "read" then
      reporter.show("webhooks read: " .. done .. pace(pages_left(done, total, 250) + changes))
    else
      reporter.show(string.format("changes applied: %d/%d%s", done, total, pace(total - done)),
        done == total)
    end
  end
end

-- The line for a sync that stopped half-way: which change failed, why, what was done before.
local function stopped(file, err, explain)
  local why, report = explain(err), type(err) == "table" and err.report
  if type(err) ~= "table" or not (err.entry or err.webhook) or not report then return why end
  local what
  if err.entry then
    what = ("%s entry %d (%s %s) was not created"):format(file, err.entry.index,
      err.entry.topic, err.entry.target_url)
  else
    local w = err.webhook
    what = ("webhook %s (%s %s) was not deleted"):format(tostring(w.id), tostring(w.topic),
      tostring(w.target_url))
  end
  return ("%s: %s; done before it: %d created, %d deleted; running sync again finishes the job")
    :format(what, why, #report.created, #report.deleted)
end

local function sync(p, args, api)
  local desired, err = sync_file.load(args.file, args.allow_unknown_topic)
  if not desired then return common.usage_error(nil, PROG, err) end
  local client = api.client
  local pace, seen = rate_limit.pace(client), { read = 0 }
  local function run(dry, changes)
    local reporter = common.progress()
    local ok, report, serr = pcall(client.sync_webhooks, client, desired,
      { dry_run = dry, prune = args.prune and true or false,
        progress = sync_progress(reporter, pace, changes, seen) })
    reporter.finish()
    if not ok then return nil, nil, report end   -- raised: a bad FILE
    return report, serr
  end
  local plan, perr, bad = run(true, 0)
  if bad then return common.usage_error(p, PROG, args.file .. ": " .. tostring(bad)) end
  if not plan then return api.fail(perr) end
  if not args.json then print_report(plan, "plan:", true) end
  local done
  if not args.dry_run then
    -- Applying reads every page again, then makes the changes.
    local changes = #plan.created + #plan.deleted
    rate_limit.announce(PROG, client, math.max(1, math.ceil(seen.read / 250)) + changes)
    local rerr
    done, rerr = run(false, changes)
    if not done then
      local report = type(rerr) == "table" and rerr.report
      if args.json and report then
        common.print_json({ plan = arrays(plan), result = arrays(report) })
      elseif report then
        print_report(report, "applied before the failure:", false)
      end
      io.stderr:write(PROG, ": ", stopped(args.file, rerr, api.explain), "\n")
      return 1
    end
    if not args.json then print_report(done, "applied:", false) end
  end
  if args.json then
    local ok, jerr = common.print_json({ plan = arrays(plan), result = done and arrays(done) })
    if not ok then return common.fail(PROG, jerr) end
  end
  return 0
end

local function list(p, args, api)
  local limit = args.limit:find("^%d+$") and tonumber(args.limit)
  if not limit or limit < 1 or limit > 250 then
    return common.usage_error(p, PROG, "--limit must be a number 1..250")
  end
  local all = require("thinkific").array()
  -- Text lines stream out as pages come: on a terminal they are the progress.
  local progress = common.progress(not args.json and common.is_tty(1))
  local pace = rate_limit.pace(api.client)
  for webhook, err, total in api.client:webhooks{ limit = limit } do
    if not webhook then
      progress.finish()
      return api.fail(err)
    end
    if args.json then
      all[#all + 1] = webhook
    else
      io.stdout:write(common.webhook_line(webhook), "\n")
      all[#all + 1] = true
    end
    if progress.active then
      progress.show("webhooks listed: " .. #all .. pace(pages_left(#all, total, limit)))
    end
  end
  progress.show("webhooks listed: " .. #all, true)
  progress.finish()
  if args.json then
    local ok, err = common.print_json(all)
    if not ok then return common.fail(PROG, err) end
  elseif #all == 0 then
    io.stderr:write("no webhooks\n") -- stdout stays empty for scripts
  end
  return 0
end

-- argv: the arguments after "webhooks". getenv: os.getenv by default. Returns the exit status.
function _M.main(argv, getenv)
  local action, p, args = common.action(argv, PROG, ACTIONS, top_usage, parser)
  if not action then return p end
  if args.id then
    local bad = nonempty_id(p, args)
    if bad then return bad end
  end
  if (args.topic == "") or (args.target_url == "") then
    return common.usage_error(p, PROG, "--topic and --target-url must not be empty")
  end
  if args.topic then
    local bad_topic = topics.check(args.topic, args.allow_unknown_topic)
    if bad_topic then return common.usage_error(p, PROG, bad_topic) end
  end
  local api, astatus = common.api(PROG, args.ca_file, getenv)
  if not api then return astatus end
  local client = api.client

  local ok, status_or_err = pcall(function()
    if action == "list" then return list(p, args, api) end
    if action == "sync" then return sync(p, args, api) end
    local result, err
    if action == "create" then
      result, err = client:create_webhook{ topic = args.topic, target_url = args.target_url }
    elseif action == "get" then
      result, err = client:get_webhook(args.id)
    elseif action == "update" then
      result, err = client:update_webhook(args.id,
        { topic = args.topic, target_url = args.target_url })
    elseif action == "delete" then
      result, err = client:delete_webhook(args.id)
      if result then
        if args.json then
          common.print_json({ deleted = true, id = args.id })
        else
          io.stdout:write("deleted ", args.id, "\n")
        end
        return 0
      end
    end
    if not result then return api.fail(err) end
    return show(args, result)
  end)
  client:close()
  if not ok then return common.fail(PROG, status_or_err) end
  return status_or_err
end

return _M
