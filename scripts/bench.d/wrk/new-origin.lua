-- A new origin on every request (https://tN.bench.test), so every decision is a
-- cache miss. wrk.format replaces wrk.headers when given a table: copy them.
local n = 0
local base = math.random(1, 1e6) * 1e6
request = function()
  n = n + 1
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Origin"] = "https://t" .. (base + n) .. ".bench.test"
  return wrk.format(nil, nil, h)
end
