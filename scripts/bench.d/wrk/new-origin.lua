-- A new origin on every request (https://tN.bench.test), so every decision is a
-- cache miss.
local n = 0
local base = math.random(1, 1e6) * 1e6
local head, tail

init = function() head, tail = request_around("https://t@N@.bench.test") end

request = function()
  n = n + 1
  return head .. (base + n) .. tail
end
