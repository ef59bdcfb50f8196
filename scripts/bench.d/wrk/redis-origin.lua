-- An origin drawn from the 1,000,000 that scripts/bench loads into Redis
-- (https://tN.redis.bench.test): with 10,000 cache entries per worker nearly
-- every request is a decision through Redis. wrk.format replaces wrk.headers
-- when given a table: copy them.
local random = math.random
request = function()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Origin"] = "https://t" .. random(1, 1000000) .. ".redis.bench.test"
  return wrk.format(nil, nil, h)
end
