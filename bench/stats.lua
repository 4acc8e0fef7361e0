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

return M
