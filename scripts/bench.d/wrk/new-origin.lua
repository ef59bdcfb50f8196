-- A new origin on every request (https://tN.bench.test), so every decision is a
-- cache miss. The request is formatted once, around a marker where the number
-- goes; each send only joins three strings. Building it with wrk.format on
-- every send (copying the headers into a new table each time) cost wrk so much
-- that it, not the server, set the pace: the limit answered 115,000 req/s
-- that way against 135,000 with this script.
local n = 0
local base = math.random(1, 1e6) * 1e6
local head, tail

init = function()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Origin"] = "https://t@N@.bench.test"
  head, tail = wrk.format(nil, nil, h):match("^(.-)@N@(.*)$")
end

request = function()
  n = n + 1
  return head .. (base + n) .. tail
end
