-- "Did you mean …?" for a mistyped word (a command, an action, a topic): the closest candidate
-- by edit distance, counting a swap of two neighbouring letters as one edit.
local _M = {}

-- The optimal string alignment distance between a and b (bytes).
function _M.distance(a, b)
  local la, lb = #a, #b
  local prev2, prev = nil, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local row = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local d = math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
      if prev2 and i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, prev2[j - 2] + 1)
      end
      row[j] = d
    end
    prev2, prev = prev, row
  end
  return prev[lb]
end

-- The candidate closest to word (the first of equals), when it is close enough to be a typo:
-- at most a third of word's length in edits (at least 1, at most 3). Else nil.
function _M.closest(word, candidates)
  local limit = math.max(1, math.min(3, math.floor(#word / 3)))
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = _M.distance(word, c)
    if d <= limit and (not best_d or d < best_d) then best, best_d = c, d end
  end
  return best
end

-- ": did you mean 'x'?" for the closest candidate, or "" when none is close.
function _M.hint(word, candidates)
  local best = _M.closest(word, candidates)
  if not best then return "" end
  return ": did you mean '" .. best .. "'?"
end

return _M
