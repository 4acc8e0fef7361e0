-- The figures the bench scripts print: median, lowest and highest of the rounds' values.
-- Loaded by path from the scripts beside it (bench/ is not on package.path).
local M = {}

function M.median(list)
  local t = { table.unpack(list) }
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

function M.range(list)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(list) do
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  return lo, hi
end

-- median, lo, hi of list.
function M.summary(list)
  local lo, hi = M.range(list)
  return M.median(list), lo, hi
end

-- The per-round ratios num[r] / den[r].
function M.ratios(num, den)
  local t = {}
  for r = 1, #num do t[r] = num[r] / den[r] end
  return t
end

-- Prints a "row" line per bench (median, lowest, highest of values[key], as "%10.0f unit");
-- returns the medians by key.
function M.print_rows(benches, values, suffix, unit)
  local medians = {}
  for _, b in ipairs(benches) do
    local med, lo, hi = M.summary(values[b.key])
    medians[b.key] = med
    print(string.format("row %-38s %10.0f %10.0f %10.0f  %s", b.label .. suffix, med, lo, hi, unit))
  end
  return medians
end

-- Prints a "ratio" line for throughputs num/den: the median of the per-round ratios (the
-- verdict uses it), the ratio of the medians, the rounds' range, and with a target whether
-- the median reaches it.
function M.print_ratio(label, num, den, num_median, den_median, target)
  local value, lo, hi = M.summary(M.ratios(num, den))
  local verdict = ""
  if target then
    verdict = string.format(">= %.2f: %s", target, value >= target and "target met" or "target missed")
  end
  print(string.format("ratio %-38s %8.2f %10.2f  %.2f-%.2f  %s", label, value,
    num_median / den_median, lo, hi, verdict))
end

return M
