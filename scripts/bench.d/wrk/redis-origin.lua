-- An origin drawn from the 1,000,000 that scripts/bench loads into Redis
-- (https://tN.redis.bench.test): with 10,000 cache entries per worker nearly
-- every request is a decision through Redis. Formatted once around a marker,
-- as in new-origin.lua, so that wrk's own Lua does not set the pace.
local random = math.random
local head, tail

init = function()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Origin"] = "https://t@N@.redis.bench.test"
  head, tail = wrk.format(nil, nil, h):match("^(.-)@N@(.*)$")
end

request = function()
  return head .. random(1, 1000000) .. tail
end
