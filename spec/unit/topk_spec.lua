-- The top refused summary (core/util/topk.c): space-saving in fixed memory,
-- checked against exact counts for what GET /refused promises: a held key's
-- count never under-states and over-states by at most its error, every key
-- seen more than N/K times in N adds is held, and the counts sum to N.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")
local C = cors.C

if not pcall(function() return C.cg_topk_add end) then
  ffi.cdef(cors.header("core/util/topk.h"))
end

local K = 100
local ROUTE, REASON = 1, 2

local function new()
  local t = ffi.new("cg_topk_t")
  C.cg_topk_init(t)
  return t
end

local function add(t, origin, now)
  C.cg_topk_add(t, ROUTE, REASON, origin, #origin, nil, 0, nil, nil, now or 0)
end

-- origin -> { count, error } of what t holds
local function held(t)
  local out = {}
  for i = 0, t.n - 1 do
    local it = t.items[i]
    out[ffi.string(it.origin, it.origin_len)] = { count = tonumber(it.count), error = tonumber(it.error) }
  end
  return out
end

-- the promises, for a stream whose exact counts are `truth` over n adds
local function check(t, truth, n)
  local h, sum, low = held(t), 0, math.huge
  for origin, c in pairs(h) do
    local real = truth[origin] or 0
    assert.truthy(c.count >= real, origin .. ": count " .. c.count .. " under its " .. real)
    assert.truthy(c.count - c.error <= real, origin .. ": count - error " .. (c.count - c.error) .. " over " .. real)
    sum = sum + c.count
    low = math.min(low, c.count)
  end
  assert.equal(n, sum)
  for origin, real in pairs(truth) do
    if real > n / K then assert.truthy(h[origin], origin .. " seen " .. real .. " times of " .. n .. " is not held") end
  end
  assert.equal(t.n < K and 0 or low, tonumber(C.cg_topk_floor(t)))
end

describe("top refused summary", function()
  it("counts exactly while it holds fewer than K keys", function()
    local t, truth = new(), {}
    for i = 1, 2000 do
      local o = "https://k" .. (i % 60) .. ".test"
      add(t, o)
      truth[o] = (truth[o] or 0) + 1
    end
    assert.equal(60, t.n)
    for o, c in pairs(held(t)) do
      assert.equal(truth[o], c.count)
      assert.equal(0, c.error)
    end
    check(t, truth, 2000)
  end)

  it("keeps its promises on a skewed stream of 1,000 keys", function()
    math.randomseed(7)
    local t, truth, n = new(), {}, 50000
    for _ = 1, n do
      -- a few heavy origins, a long tail
      local r = math.random()
      local k = r < 0.5 and math.random(1, 5) or r < 0.8 and math.random(6, 60) or math.random(61, 1000)
      local o = "https://o" .. k .. ".test"
      add(t, o)
      truth[o] = (truth[o] or 0) + 1
    end
    assert.equal(K, t.n)
    check(t, truth, n)
  end)

  it("a flood of new origins: the summary stays level, a heavy origin amid it is held", function()
    local t, truth, n = new(), {}, 0
    for i = 1, 30000 do
      local o = i % 7 == 0 and "https://heavy.test" or ("https://new" .. i .. ".test")
      add(t, o, i)
      truth[o] = (truth[o] or 0) + 1
      n = n + 1
    end
    check(t, truth, n)
    local h = held(t)
    assert.truthy(h["https://heavy.test"])
    -- every other counter within one of the smallest: each new origin takes the smallest's place
    local floor = tonumber(C.cg_topk_floor(t))
    for o, c in pairs(h) do
      if o ~= "https://heavy.test" then assert.truthy(c.count <= floor + 1, o .. ": " .. c.count .. " vs " .. floor) end
    end
  end)

  it("tells keys apart by route, reason and detail as well as origin", function()
    local t = new()
    local o = "https://a.test"
    C.cg_topk_add(t, 1, 1, o, #o, nil, 0, nil, nil, 0)
    C.cg_topk_add(t, 2, 1, o, #o, nil, 0, nil, nil, 0)
    C.cg_topk_add(t, 1, 2, o, #o, nil, 0, nil, nil, 0)
    C.cg_topk_add(t, 1, 2, o, #o, "PATCH", 5, nil, nil, 0)
    C.cg_topk_add(t, 1, 2, o, #o, "PATCH", 5, nil, nil, 0)
    assert.equal(4, t.n)
    local counts = {}
    for i = 0, t.n - 1 do counts[#counts + 1] = tonumber(t.items[i].count) end
    table.sort(counts)
    assert.same({ 1, 1, 1, 2 }, counts)
  end)
end)
