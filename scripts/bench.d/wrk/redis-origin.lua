-- An origin drawn from the 1,000,000 that scripts/bench loads into Redis
-- (https://tN.redis.bench.test): with 10,000 cache entries per worker nearly
-- every request is a decision through Redis.
local random = math.random
local head, tail

init = function() head, tail = request_around("https://t@N@.redis.bench.test") end

request = function()
  return head .. random(1, 1000000) .. tail
end
