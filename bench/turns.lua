-- One round of a bench script: the benches take turns in short bursts, so that all of them see
-- the same moments of a noisy machine. Loaded by path, as stats.lua is.
--
--   local done, spent = turns.round(benches, r, max_seconds)
--   local rates = turns.throughput(benches, rounds, max_seconds, name)
--
-- Each bench is { key =, run = function(n) -> done, seconds, burst =, total =, off = }: a turn
-- gives every bench not `off` one burst of min(burst, total - done), the first to go changing
-- every turn (and every round). The round ends when each has done its total, or as soon as any
-- has spent max_seconds. Returns done and spent (seconds), by key.
local M = {}

function M.round(benches, r, max_seconds)
  local done, spent = {}, {}
  for _, b in ipairs(benches) do done[b.key], spent[b.key] = 0, 0 end
  collectgarbage()
  local turn = r
  while true do
    local busy, out_of_time = false, false
    for i = 0, #benches - 1 do
      local b = benches[(turn + i) % #benches + 1]
      local n = math.min(b.burst, b.total - done[b.key])
      if n > 0 and not b.off then
        local d, s = b.run(n)
        done[b.key], spent[b.key] = done[b.key] + d, spent[b.key] + s
        busy = true
        if spent[b.key] > max_seconds then out_of_time = true end
      end
    end
    turn = turn + 1
    if not busy or out_of_time then break end
  end
  return done, spent
end

-- Runs `rounds` rounds; returns rates[key][r] = done / spent (per second), and writes one
-- line per round on stderr: "<name> round r/n: key N/s (done in s), ...".
function M.throughput(benches, rounds, max_seconds, name)
  local rates = {}
  for _, b in ipairs(benches) do rates[b.key] = {} end
  for r = 1, rounds do
    local done, spent = M.round(benches, r, max_seconds)
    local line = {}
    for _, b in ipairs(benches) do
      rates[b.key][r] = done[b.key] / spent[b.key]
      line[#line + 1] = string.format("%s %.0f/s (%d in %.2fs)", b.key, rates[b.key][r],
        done[b.key], spent[b.key])
    end
    io.stderr:write(string.format("%s round %d/%d: %s\n", name, r, rounds,
      table.concat(line, ", ")))
  end
  return rates
end

return M
