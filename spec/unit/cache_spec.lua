-- The per-origin decision cache, driven with a fake clock: single flight,
-- TTLs, stale-while-revalidate, failing refreshes, LRU bound, purges, and
-- what a cached origin costs.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local cors = require("cors_ffi")
local ffi = require("ffi")
local C = cors.C

if not pcall(ffi.typeof, "cg_dcache_stats_t") then
  ffi.cdef("typedef struct cg_list { struct cg_list *prev, *next; } cg_list_t;\n" .. cors.header("core/cache/cache.h"))
end

local FRESH, STALE, STALE_REFRESH, MISS_RUN, PENDING = 0, 1, 2, 3, 4
local NAMES = { [0] = "FRESH", "STALE", "STALE_REFRESH", "MISS_RUN", "PENDING" }

local function new(max, stale_limit)
  return ffi.gc(C.cg_dcache_new(max or 1000, stale_limit or 10000), C.cg_dcache_free)
end

local entry_out = ffi.new("cg_dcache_entry_t *[1]")
local function get(c, origin, now, route)
  local rc = C.cg_dcache_get(c, route or 1, origin, #origin, now, entry_out)
  return NAMES[rc], entry_out[0]
end

local function allow_of(e) return C.cg_dcache_entry_allow(e) == 1 end
local function tenant_of(e)
  local t = C.cg_dcache_entry_tenant(e)
  return t ~= nil and ffi.string(t) or nil
end

local function stats(c)
  local s = ffi.new("cg_dcache_stats_t")
  C.cg_dcache_stats(c, s)
  return s
end

describe("decision cache", function()
  it("runs the hook once for many requests, and wakes every waiter with the decision", function()
    local c = new()
    local st, e = get(c, "https://a.example", 0)
    assert.are.equal("MISS_RUN", st)
    local woken = {}
    local cb = ffi.cast("void (*)(cg_dcache_waiter_t *, const cg_dcache_entry_t *)", function(_, en)
      woken[#woken + 1] = { allow_of(en), tenant_of(en) }
    end)
    local waiters = {}
    for i = 1, 100 do
      local st2, e2 = get(c, "https://a.example", 0)
      if i > 1 then assert.are.equal("PENDING", st2) end
      assert.are.equal(e, e2)
      local w = ffi.new("cg_dcache_waiter_t")
      w.cb = cb
      waiters[i] = w
      C.cg_dcache_wait(e2, w)
    end
    C.cg_dcache_cancel(waiters[7]) -- that request went away
    C.cg_dcache_set(c, e, 1, nil, "acme", 1000, 0)
    cb:free()
    assert.are.equal(99, #woken)
    assert.are.same({ true, "acme" }, woken[1])
    assert.are.equal(1, tonumber(stats(c).misses))
  end)

  it("serves a fresh decision until its TTL, keyed by route and origin", function()
    local c = new()
    local _, e = get(c, "https://a.example", 0)
    C.cg_dcache_set(c, e, 1, nil, nil, 1000, 0)
    local st, e2 = get(c, "https://a.example", 999)
    assert.are.same({ "FRESH", true }, { st, allow_of(e2) })
    assert.is_nil(tenant_of(e2))
    assert.are.equal("MISS_RUN", (get(c, "https://a.example", 10, 2)))
    assert.are.equal("MISS_RUN", (get(c, "https://b.example", 10)))
  end)

  it("keeps serving an expired decision while exactly one refresh runs", function()
    local c = new(100, 5000)
    local _, e = get(c, "https://a.example", 0)
    C.cg_dcache_set(c, e, 1, nil, nil, 1000, 0)
    local st, e2 = get(c, "https://a.example", 1000)
    assert.are.same({ "STALE_REFRESH", true }, { st, allow_of(e2) })
    for _ = 1, 10 do assert.are.equal("STALE", (get(c, "https://a.example", 1200))) end
    C.cg_dcache_set(c, e, 0, nil, nil, 1000, 1300)
    st, e2 = get(c, "https://a.example", 1400)
    assert.are.same({ "FRESH", false }, { st, allow_of(e2) })
  end)

  it("keeps the old decision when a refresh fails, retrying once a second, then denies past the stale limit", function()
    local c = new(100, 5000)
    local _, e = get(c, "https://a.example", 0)
    C.cg_dcache_set(c, e, 1, nil, "acme", 1000, 0)
    assert.are.equal("STALE_REFRESH", (get(c, "https://a.example", 2000)))
    C.cg_dcache_fail(c, e, 10000, 2100)
    local st, e2 = get(c, "https://a.example", 2500)
    assert.are.same({ "STALE", true }, { st, allow_of(e2) }) -- backing off
    assert.are.equal("STALE_REFRESH", (get(c, "https://a.example", 3100)))
    C.cg_dcache_fail(c, e, 10000, 6100) -- 5.1 s past expiry: beyond the limit
    st, e2 = get(c, "https://a.example", 6200)
    assert.are.same({ "FRESH", false }, { st, allow_of(e2) })
    assert.are.equal(2, tonumber(stats(c).failures))
  end)

  it("denies at once when the first decision fails, for the deny TTL", function()
    local c = new()
    local _, e = get(c, "https://a.example", 0)
    C.cg_dcache_fail(c, e, 500, 0)
    local st, e2 = get(c, "https://a.example", 499)
    assert.are.same({ "FRESH", false }, { st, allow_of(e2) })
    assert.are.equal("STALE_REFRESH", (get(c, "https://a.example", 500)))
  end)

  it("makes requests wait for a decision expired longer than the stale limit", function()
    local c = new(100, 5000)
    local _, e = get(c, "https://a.example", 0)
    C.cg_dcache_set(c, e, 1, nil, nil, 1000, 0)
    assert.are.equal("MISS_RUN", (get(c, "https://a.example", 6001)))
    assert.are.equal("PENDING", (get(c, "https://a.example", 6002)))
  end)

  it("holds at most max_entries, evicting the least recently used", function()
    local c = new(100)
    for i = 1, 150 do
      local _, e = get(c, "https://t" .. i .. ".example", i)
      C.cg_dcache_set(c, e, 1, nil, nil, 60000, i)
      if i > 50 then assert.are.equal("FRESH", (get(c, "https://t1.example", i))) end -- kept warm
    end
    local s = stats(c)
    assert.are.equal(100, tonumber(s.entries))
    assert.are.equal(50, tonumber(s.evictions))
    assert.are.equal("FRESH", (get(c, "https://t1.example", 200)))
    assert.are.equal("MISS_RUN", (get(c, "https://t2.example", 200)))
    assert.are.equal("FRESH", (get(c, "https://t150.example", 200)))
  end)

  it("keeps the entry just decided while the bound evicts others: its caller reads it next", function()
    local c = new(1)
    local _, a = get(c, "https://a.example", 0)
    local _, b = get(c, "https://b.example", 0) -- two running, over a bound of one
    C.cg_dcache_set(c, a, 1, nil, "acme", 1000, 1) -- a is the oldest: the bound must not take it here
    assert.is_true(allow_of(a)) -- read right after (ASan checks)
    assert.are.equal("acme", tenant_of(a))
    C.cg_dcache_set(c, b, 0, nil, nil, 1000, 2)
    assert.is_false(allow_of(b))
    assert.are.equal(1, tonumber(stats(c).entries))
  end)

  it("never frees an entry whose hook is running; a purge detaches it until the hook reports", function()
    local c = new(2)
    local pending = {}
    for i = 1, 3 do pending[i] = select(2, get(c, "https://p" .. i .. ".example", 0)) end
    assert.are.equal(3, tonumber(stats(c).entries)) -- over the bound, none evictable
    assert.are.equal(3, tonumber(C.cg_dcache_purge_all(c)))
    assert.are.equal(0, tonumber(stats(c).entries))
    local woken = 0
    local cb = ffi.cast("void (*)(cg_dcache_waiter_t *, const cg_dcache_entry_t *)", function() woken = woken + 1 end)
    local w = ffi.new("cg_dcache_waiter_t")
    w.cb = cb
    C.cg_dcache_wait(pending[2], w)
    for i = 1, 3 do C.cg_dcache_set(c, pending[i], 1, nil, nil, 1000, 1) end -- freed here (ASan checks)
    cb:free()
    assert.are.equal(1, woken)
    assert.are.equal("MISS_RUN", (get(c, "https://p2.example", 2)))
  end)

  it("drops entries too old to serve even stale as new origins arrive", function()
    local c = new(1000, 100)
    for i = 1, 10 do
      local _, e = get(c, "https://old" .. i .. ".example", 0)
      C.cg_dcache_set(c, e, 1, nil, nil, 50, 0)
    end
    for i = 1, 5 do
      local _, e = get(c, "https://new" .. i .. ".example", 1000)
      C.cg_dcache_set(c, e, 1, nil, nil, 50, 1000)
    end
    local s = stats(c)
    assert.are.equal(10, tonumber(s.expired))
    assert.are.equal(5, tonumber(s.entries))
  end)

  it("purges by origin across routes, by tenant, and all", function()
    local c = new()
    local function put(origin, route, tenant)
      local _, e = get(c, origin, 0, route)
      C.cg_dcache_set(c, e, 1, nil, tenant, 60000, 0)
    end
    put("https://a.example", 1, "acme")
    put("https://a.example", 2, "acme")
    put("https://b.example", 1, "acme")
    put("https://c.example", 1, "globex")
    put("https://d.example", 1, nil)
    assert.are.equal(2, tonumber(C.cg_dcache_purge_origin(c, "https://a.example", 17)))
    assert.are.equal("MISS_RUN", (get(c, "https://a.example", 1, 2)))
    assert.are.equal(1, tonumber(C.cg_dcache_purge_tenant(c, "acme")))
    assert.are.equal("MISS_RUN", (get(c, "https://b.example", 1)))
    assert.are.equal("FRESH", (get(c, "https://c.example", 1)))
    assert.are.equal(0, tonumber(C.cg_dcache_purge_tenant(c, "nobody")))
    assert.is_true(tonumber(C.cg_dcache_purge_all(c)) >= 3)
    assert.are.equal(0, tonumber(stats(c).entries))
  end)

  -- A purge by tenant walks that tenant's decisions only (an index kept as
  -- decisions change), so it must see every change of who names the tenant.
  it("purges by tenant exactly the decisions that name it now, busy ones included", function()
    local c = new()
    local function put(origin, tenant, now)
      local _, e = get(c, origin, now or 0)
      C.cg_dcache_set(c, e, 1, nil, tenant, 10, now or 0)
      return e
    end
    put("https://a.example", "acme")
    put("https://b.example", "acme")
    put("https://moved.example", "acme")
    put("https://moved.example", "globex", 20) -- refreshed: now globex's
    put("https://other.example", "globex")
    put("https://acme-ish.example", "acm")
    local st, busy = get(c, "https://b.example", 20) -- expired: its refresh is running
    assert.are.equal("STALE_REFRESH", st)
    assert.are.equal(2, tonumber(C.cg_dcache_purge_tenant(c, "acme")))
    assert.are.equal("MISS_RUN", (get(c, "https://a.example", 20)))
    assert.are.equal("FRESH", (get(c, "https://moved.example", 20)))
    assert.are.equal("STALE_REFRESH", (get(c, "https://other.example", 20)))
    -- the busy one left the table; its hook reports afterwards, and the
    -- decision it wakes its waiters with still names its tenant
    local woken
    local w = ffi.new("cg_dcache_waiter_t")
    local cb = ffi.cast("void (*)(cg_dcache_waiter_t *, const cg_dcache_entry_t *)", function(_, en)
      woken = tenant_of(ffi.cast("cg_dcache_entry_t *", en))
    end)
    w.cb = cb
    C.cg_dcache_wait(busy, w)
    C.cg_dcache_set(c, busy, 1, nil, "acme", 10, 20)
    cb:free()
    assert.are.equal("acme", woken)
    assert.are.equal(0, tonumber(C.cg_dcache_purge_tenant(c, "acme")))
    assert.are.equal(1, tonumber(C.cg_dcache_purge_tenant(c, "acm")))
    assert.are.equal(2, tonumber(C.cg_dcache_purge_tenant(c, "globex")))
    assert.are.equal(1, tonumber(stats(c).entries)) -- a.example, asked again above
  end)

  it("owns the overrides it holds (freed on replace, purge and free)", function()
    local policy = cors.must_compile({ origins_by_plugin = true })
    local c = new()
    local _, e = get(c, "https://a.example", 0)
    local ov = cors.decision(policy, { allow = true, expose_headers = { "X-A" } })
    C.cg_dcache_set(c, e, 1, ffi.gc(ov, nil), nil, 1, 0) -- the cache takes it
    assert.are.equal(ov, C.cg_dcache_entry_override(e))
    assert.are.equal("STALE_REFRESH", (get(c, "https://a.example", 5)))
    local ov2 = cors.decision(policy, { allow = true, max_age = 5 })
    C.cg_dcache_set(c, e, 1, ffi.gc(ov2, nil), nil, 1000, 5)
    assert.is_true(tonumber(stats(c).bytes) > 0)
  end)

  -- stats() is read on the worker's loop at every scrape of /metrics, so the
  -- byte count is kept as entries change instead of summed over all of them;
  -- it must still come out exact.
  it("counts the bytes it holds as values change and entries go, busy ones included", function()
    local policy = cors.must_compile({ origins_by_plugin = true })
    local c = new(3)
    local empty = tonumber(stats(c).bytes)
    local _, a = get(c, "https://a.example", 0)
    local one = tonumber(stats(c).bytes)
    assert.is_true(one > empty + #"https://a.example")
    C.cg_dcache_set(c, a, 1, nil, "acme", 1, 0)
    local tenant = tonumber(stats(c).bytes) - one -- a tenant is kept once, with its name
    assert.is_true(tenant > #"acme")
    local _, a2 = get(c, "https://a2.example", 0)
    local two = tonumber(stats(c).bytes)
    C.cg_dcache_set(c, a2, 1, nil, "acme", 1, 0)
    assert.are.equal(two, tonumber(stats(c).bytes)) -- the same tenant again costs nothing
    assert.are.equal(1, tonumber(C.cg_dcache_purge_origin(c, "https://a2.example", #"https://a2.example")))
    assert.are.equal(one + tenant, tonumber(stats(c).bytes))
    assert.are.equal("STALE_REFRESH", (get(c, "https://a.example", 5)))
    local ov = cors.decision(policy, { allow = true, expose_headers = { "X-A" } })
    local ovb = tonumber(C.cg_cors_override_size(ov))
    C.cg_dcache_set(c, a, 1, ffi.gc(ov, nil), nil, 1000, 5)
    assert.are.equal(one + ovb, tonumber(stats(c).bytes))
    C.cg_dcache_fail(c, (select(2, get(c, "https://a.example", 20000))), 100, 20000) -- too old: a denial, no value
    assert.are.equal(one, tonumber(stats(c).bytes))
    -- purged while its hook runs: off the count at once, and what the hook
    -- then sets does not count
    local _, b = get(c, "https://b.example", 20000)
    assert.are.equal(1, tonumber(C.cg_dcache_purge_origin(c, "https://b.example", #"https://b.example")))
    assert.are.equal(one, tonumber(stats(c).bytes))
    C.cg_dcache_set(c, b, 1, nil, "acme", 1000, 20000)
    assert.are.equal(one, tonumber(stats(c).bytes))
    -- evicted past max_entries (3), overrides and all
    for i = 1, 4 do
      local _, e = get(c, "https://e" .. i .. ".example", 20000)
      local eov = cors.decision(policy, { allow = true, max_age = i })
      C.cg_dcache_set(c, e, 1, ffi.gc(eov, nil), "t" .. i, 1000, 20000)
    end
    assert.are.equal(3, tonumber(stats(c).entries))
    assert.is_true(tonumber(C.cg_dcache_purge_all(c)) == 3)
    assert.are.equal(empty, tonumber(stats(c).bytes))
  end)

  -- The cache's hash was FNV-1a, which anyone can compute. FNV-1a's state after
  -- a string depends only on the state before it and its bytes, so two blocks
  -- that lead from one state to the same next state can be swapped freely:
  -- 11 such pairs make 2^11 origins with one hash value, which all landed in
  -- one chain that every lookup of any of them walked.
  local function fnv_colliding_origins(route, pairs_wanted, prefix, suffix)
    local bit = require("bit")
    local M = 4294967296
    local function step(h, byte) -- (h ^ byte) * 16777619 mod 2^32, exactly in doubles
      h = bit.bxor(h, byte) % M
      return (h * 403 + (h % 256) * 16777216) % M
    end
    local function run(h, s)
      for i = 1, #s do h = step(h, s:byte(i)) end
      return h
    end
    local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    local init = bit.bxor(2166136261, route) % M
    local state = run(init, prefix)
    local blocks, n = {}, 0
    while #blocks < pairs_wanted do
      local seen = {}
      while true do -- birthday search: ~2^16 blocks for a 32-bit collision
        n = n + 1
        local b, k = {}, n
        for j = 1, 4 do
          local d = k % 36
          b[j] = alphabet:sub(d + 1, d + 1)
          k = (k - d) / 36
        end
        local block = table.concat(b)
        local h = run(state, block)
        if seen[h] and seen[h] ~= block then
          blocks[#blocks + 1] = { seen[h], block }
          state = h
          break
        end
        seen[h] = block
      end
    end
    local out = { prefix }
    for _, pair in ipairs(blocks) do
      local nxt = {}
      for _, prefix in ipairs(out) do
        nxt[#nxt + 1] = prefix .. pair[1]
        nxt[#nxt + 1] = prefix .. pair[2]
      end
      out = nxt
    end
    for i, o in ipairs(out) do out[i] = o .. suffix end
    local want = run(init, out[1])
    for _, o in ipairs(out) do assert(run(init, o) == want) end -- the flood is real
    return out
  end

  it("keeps origins a client built to share a hash out of one chain", function()
    local origins = fnv_colliding_origins(1, 11, "https://", ".example")
    assert.are.equal(2048, #origins)
    local c = new(10000)
    for _, o in ipairs(origins) do
      local _, e = get(c, o, 0, 1)
      C.cg_dcache_set(c, e, 0, nil, nil, 60000, 0)
    end
    assert.are.equal(2048, tonumber(stats(c).entries))
    -- keyed: as if at random, the fullest of about 2,048 slots holds a handful
    local longest = tonumber(C.cg_dcache_longest_chain(c))
    assert.is_true(longest <= 16, ("%d origins in one chain"):format(longest))
  end)

  it("costs at most 300 bytes per cached origin (1,000,000 origins)", function()
    local n = 1000000
    local c = new(n)
    for i = 1, n do
      local origin = "https://tenant" .. i .. ".example.com"
      local _, e = get(c, origin, 0)
      C.cg_dcache_set(c, e, i % 7 ~= 0 and 1 or 0, nil, nil, 60000, 0)
    end
    local s = stats(c)
    assert.are.equal(n, tonumber(s.entries))
    local per = tonumber(s.bytes) / n
    -- malloc's own overhead (16 bytes per block on glibc) counts too
    local with_malloc = per + 16
    print(("\n[cache] %d origins: %.0f bytes each (%.0f with malloc overhead)"):format(n, per, with_malloc))
    assert.is_true(with_malloc <= 300, ("%.0f bytes per origin"):format(with_malloc))
  end)
end)

describe("decision store (the workers' shared one)", function()
  if not pcall(ffi.typeof, "cg_dstore_answer_t") then ffi.cdef(cors.header("core/cache/store.h")) end

  it("holds exactly cache.max_entries, however it is shared out over its stripes", function()
    for _, max in ipairs({ 1, 10, 33, 1000 }) do
      local s = ffi.gc(C.cg_dstore_new(max, 10000), C.cg_dstore_free)
      local ans, run = ffi.new("cg_dstore_answer_t"), ffi.new("cg_dstore_run_t")
      for i = 1, max * 50 + 50 do -- enough that every stripe is full, whatever the hash key
        local o = "https://o" .. i .. ".test"
        assert.equal(1, C.cg_dstore_acquire(s, 1, o, #o, 0, nil, ans, nil, run)) -- CG_DS_RUN: decide it
        C.cg_dstore_set(s, run, 1, nil, nil, 60000, 0)
      end
      local st = ffi.new("cg_dcache_stats_t")
      C.cg_dstore_stats(s, st)
      assert.equal(max, tonumber(st.entries), "max_entries " .. max)
    end
  end)

  -- a worker refreshing its own stale copy of an origin the store lost
  local function refresh_with_own_copy(s, o, now, purges_seen)
    local mine = ffi.new("cg_dstore_answer_t", { allow = 1, expires = 1000, purges = purges_seen })
    ffi.copy(mine.tenant, "acme")
    local ans, run = ffi.new("cg_dstore_answer_t"), ffi.new("cg_dstore_run_t")
    return C.cg_dstore_acquire(s, 1, o, #o, now, mine, ans, nil, run)
  end

  it("serves other workers a refreshing worker's stale copy, but never one a purge has reached", function()
    local HAVE, RUN, WAIT_NEEDED = 0, 1, 4
    local o = "https://app.acme.test"
    local ans, run = ffi.new("cg_dstore_answer_t"), ffi.new("cg_dstore_run_t")
    -- the store lost it (the fronts kept it): the copy serves the others, stale
    local s = ffi.gc(C.cg_dstore_new(1000, 10000), C.cg_dstore_free)
    assert.equal(RUN, refresh_with_own_copy(s, o, 1500, 0))
    assert.equal(HAVE, C.cg_dstore_acquire(s, 1, o, #o, 1600, nil, ans, nil, run))
    assert.equal(1, ans.allow)
    assert.equal("acme", ffi.string(ans.tenant))
    -- decided, then the tenant purged in the store; the worker's own cache not yet
    s = ffi.gc(C.cg_dstore_new(1000, 10000), C.cg_dstore_free)
    assert.equal(RUN, C.cg_dstore_acquire(s, 1, o, #o, 0, nil, ans, nil, run))
    C.cg_dstore_set(s, run, 1, nil, "acme", 1000, 0)
    assert.equal(1, tonumber(C.cg_dstore_purge_tenant(s, "acme")))
    assert.equal(1, tonumber(C.cg_dstore_purges(s)))
    assert.equal(RUN, refresh_with_own_copy(s, o, 1500, 0)) -- its copy predates the purge
    assert.equal(WAIT_NEEDED, C.cg_dstore_acquire(s, 1, o, #o, 1600, nil, ans, nil, run),
      "a purged answer was put back into the store")
  end)

  it("a worker with a stale copy does not wait on another's lookup: it serves its copy, kept if the lookup fails", function()
    local HAVE, RUN = 0, 1
    local o = "https://app.acme.test"
    local s = ffi.gc(C.cg_dstore_new(1000, 10000), C.cg_dstore_free)
    local ans, run_a, run_b = ffi.new("cg_dstore_answer_t"), ffi.new("cg_dstore_run_t"), ffi.new("cg_dstore_run_t")
    -- a worker without a copy (its front let it go) starts the lookup
    assert.equal(RUN, C.cg_dstore_acquire(s, 1, o, #o, 1500, nil, ans, nil, run_a))
    -- one whose copy expired asks meanwhile: it is served that copy, not made to wait
    local mine = ffi.new("cg_dstore_answer_t", { allow = 1, expires = 1000, purges = 0 })
    assert.equal(HAVE, C.cg_dstore_acquire(s, 1, o, #o, 1550, mine, ans, nil, run_b))
    assert.equal(1, ans.allow)
    -- the lookup fails (the tenant store is down): the stale answer stays, no denial
    C.cg_dstore_fail(s, run_a, 10000, 1600)
    assert.equal(HAVE, C.cg_dstore_acquire(s, 1, o, #o, 1700, nil, ans, nil, run_b))
    assert.equal(1, ans.allow)
  end)
end)
