-- One lookup per origin per process: the workers share one decision store
-- (each keeps a small front cache), so a new origin costs one hook run (one
-- call to the tenant service) however many workers its requests land on.
-- plugins/tenant_registry.lua against the test tenant service, 4 workers.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local socket = require("socket")
local cjson = require("cjson")
local h2 = require("spec.support.h2")
require("spec.support.assert")

local WORKERS = 4

-- n preflights for origin at once, each on its own connection (so spread
-- over the workers); returns the responses.
local function burst(gw, origin, n)
  local conns, out = {}, {}
  for i = 1, n do
    conns[i] = assert(http.connect(gw:port(), { timeout = 10 }))
    conns[i]:send(http.build_request("OPTIONS", "/api/x", { { "Origin", origin },
      { "Access-Control-Request-Method", "PUT" } }))
  end
  for i, c in ipairs(conns) do
    out[i] = { c:read_response() }
    c:close()
  end
  return out
end

local function all_allowed(responses, origin)
  for i, r in ipairs(responses) do
    local res, err = r[1], r[2]
    assert.res_status(204, res, err)
    assert.header(res, "access-control-allow-origin", origin, "request " .. i)
  end
end

describe("the decision store the workers share", function()
  local svc, gw, admin_port

  local function admin(method, path)
    return assert(http.request(admin_port, method, path, {}))
  end

  -- the state of origin's decision in each worker's own cache (GET /explain
  -- also runs the hook once itself, for its verdict: the callers count it)
  local function worker_states(origin)
    local j = cjson.decode(admin("GET", "/explain?origin=" .. origin .. "&method=PUT&path=/api/x").body)
    local states = {}
    for _, w in ipairs(j.cache) do states[#states + 1] = w.state end
    return states
  end

  local function count(states, want)
    local n = 0
    for _, s in ipairs(states) do if s == want then n = n + 1 end end
    return n
  end

  lazy_setup(function()
    svc = upstream.start()
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = WORKERS,
      admin = { listen = "127.0.0.1:" .. admin_port },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://" .. svc:target() },
          methods = { "GET", "PUT" } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if svc then svc:stop() end
  end)

  it("100 concurrent preflights for a new origin over 4 workers make one lookup", function()
    -- every worker accepting first (under valgrind the later ones start late,
    -- and the kernel gives their connections to the listeners it has)
    assert.truthy(proc.wait_for(function()
      burst(gw, "https://warm.acme.test", 20)
      return count(worker_states("https://warm.acme.test"), "fresh") == WORKERS
    end, 20 * gateway.slowdown, 0.1), "not every worker accepts connections")
    svc:tenants({ mode = "slow", delay_ms = 300, origins = {
      ["https://flight.acme.test"] = { allowed = true, tenant = "acme" } } })
    all_allowed(burst(gw, "https://flight.acme.test", 100), "https://flight.acme.test")
    assert.equal(1, svc:calls("https://flight.acme.test"))
    -- the requests did land on every worker, and each holds the decision now
    assert.same({ "fresh", "fresh", "fresh", "fresh" }, worker_states("https://flight.acme.test"))
    local with_explain = svc:calls("https://flight.acme.test")
    all_allowed(burst(gw, "https://flight.acme.test", 40), "https://flight.acme.test")
    assert.equal(with_explain, svc:calls("https://flight.acme.test"))
    local m = admin("GET", "/metrics").body
    assert.equal("2", m:match("corsgate_cache_shared_entries (%d+)")) -- this origin's, and the warm-up's
    print("\n[store] 100 concurrent preflights for a new origin over 4 workers: 1 lookup, and all 4 workers hold it")
  end)

  it("a fast lookup too: the workers that ask after it is decided take the store's answer", function()
    svc:tenants({ origins = { ["https://fast.acme.test"] = { allowed = true, tenant = "acme" } } })
    for _ = 1, 5 do all_allowed(burst(gw, "https://fast.acme.test", 20), "https://fast.acme.test") end
    assert.equal(1, svc:calls("https://fast.acme.test"))
    assert.equal(WORKERS, count(worker_states("https://fast.acme.test"), "fresh"))
    assert.equal(2, svc:calls("https://fast.acme.test")) -- explain's own run, not a worker's
  end)

  it("a denial is shared too: one lookup, every worker refuses", function()
    svc:tenants({ mode = "slow", delay_ms = 200, origins = {} })
    for _, r in ipairs(burst(gw, "https://evil.test", 60)) do
      assert.res_status(403, r[1], r[2])
      assert.is_nil(r[1].headers:get("access-control-allow-origin"))
    end
    assert.equal(1, svc:calls("https://evil.test"))
  end)

  it("a purge empties the store and every worker: the next burst makes one new lookup", function()
    svc:tenants({ origins = { ["https://purge.acme.test"] = { allowed = true, tenant = "acme" } } })
    all_allowed(burst(gw, "https://purge.acme.test", 40), "https://purge.acme.test")
    assert.equal(1, svc:calls("https://purge.acme.test"))
    local purged = cjson.decode(admin("DELETE", "/cache?origin=https://purge.acme.test").body).purged
    assert.truthy(purged >= 2, "purged " .. purged) -- the store's entry and the workers'
    assert.equal(0, count(worker_states("https://purge.acme.test"), "fresh"))
    local before = svc:calls("https://purge.acme.test") -- explain's run included
    svc:tenants({ mode = "slow", delay_ms = 200, origins = {
      ["https://purge.acme.test"] = { allowed = true, tenant = "acme" } } })
    all_allowed(burst(gw, "https://purge.acme.test", 60), "https://purge.acme.test")
    assert.equal(before + 1, svc:calls("https://purge.acme.test"))
  end)

  it("an expired decision is refreshed once per process, served stale meanwhile on every worker", function()
    svc:tenants({ origins = { ["https://ttl.acme.test"] = { allowed = true, tenant = "acme", ttl = 1 } } })
    all_allowed(burst(gw, "https://ttl.acme.test", 40), "https://ttl.acme.test")
    assert.equal(1, svc:calls("https://ttl.acme.test"))
    socket.sleep(1.2)
    svc:tenants({ mode = "slow", delay_ms = 400, origins = {
      ["https://ttl.acme.test"] = { allowed = true, tenant = "acme", ttl = 60 } } })
    local t0 = socket.gettime()
    all_allowed(burst(gw, "https://ttl.acme.test", 60), "https://ttl.acme.test")
    local took = socket.gettime() - t0
    assert.truthy(took < 0.35 * gateway.slowdown, ("the burst waited for the refresh: %.2f s"):format(took))
    assert.truthy(proc.wait_for(function() return svc:calls("https://ttl.acme.test") >= 2 end, 2))
    socket.sleep(0.6) -- the refresh lands; the workers' caches take it at their next request
    all_allowed(burst(gw, "https://ttl.acme.test", 40), "https://ttl.acme.test")
    assert.equal(2, svc:calls("https://ttl.acme.test"))
  end)

  -- A gateway with these cache settings where `kept` (a ttl of 1 s) was
  -- decided by every worker, then 400 other origins were decided, then it
  -- expired and the tenant service went down.
  local function expired_in_outage(cache, kept)
    local g_admin = proc.free_port()
    local g = gateway.start({
      workers = WORKERS,
      admin = { listen = "127.0.0.1:" .. g_admin },
      cache = cache,
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://" .. svc:target() },
          methods = { "GET", "PUT" }, deny_ttl = 10 } } },
    })
    local origins = { [kept] = { allowed = true, tenant = "acme", ttl = 1 } }
    for i = 1, 400 do origins[("https://o%d.acme.test"):format(i)] = { allowed = true, tenant = "acme" } end
    svc:tenants({ origins = origins })
    -- every worker holds it (under valgrind the later workers accept late)
    assert.truthy(proc.wait_for(function()
      all_allowed(burst(g, kept, 40), kept)
      local j = cjson.decode(assert(http.request(g_admin, "GET", "/explain?origin=" .. kept .. "&method=PUT&path=/api/x",
        {})).body)
      for _, w in ipairs(j.cache) do if w.state == "absent" then return false end end
      return true
    end, 20 * gateway.slowdown, 0.1), "not every worker holds " .. kept)
    for i = 1, 400 do
      local o = ("https://o%d.acme.test"):format(i)
      all_allowed(burst(g, o, 1), o)
    end
    socket.sleep(1.2)
    svc:tenants({ mode = "down", origins = {} })
    return g
  end

  it("an expired decision the workers no longer hold is served stale from the store while the service is down", function()
    -- the 400 push it out of every worker's front (64 each); the store keeps it
    local g2 = expired_in_outage({ front_entries = 64, stale_limit = 30 }, "https://kept.acme.test")
    local before = svc:calls("https://kept.acme.test")
    for _ = 1, 3 do
      all_allowed(burst(g2, "https://kept.acme.test", 40), "https://kept.acme.test")
      socket.sleep(0.3)
    end
    -- refreshes were tried (once a second at most), and failed: the old answer served on
    assert.truthy(svc:calls("https://kept.acme.test") > before)
    assert.truthy(svc:calls("https://kept.acme.test") <= before + 3)
    g2:stop_clean()
  end)

  it("a busy origin the store's bound evicted (the fronts answered it) is served stale on every worker while the service is down", function()
    -- the fronts hold the busy origin, so the store never sees it used, and
    -- other origins push it out of the store; when it expires with the
    -- service down, the worker that refreshes it gives the store its stale
    -- answer, and no worker is handed a denial
    local g3 = expired_in_outage({ max_entries = 64, front_entries = 1000, stale_limit = 30 }, "https://busy.acme.test")
    for _ = 1, 3 do
      all_allowed(burst(g3, "https://busy.acme.test", 40), "https://busy.acme.test")
      socket.sleep(0.3)
    end
    g3:stop_clean()
  end)

  it("a lookup given up by a worker that stops at a reload is taken over by a request that waited on it", function()
    -- a client asks for a new origin and leaves: its worker's hook runs on,
    -- with nothing else keeping that worker at a reload; a second client's
    -- request for the same origin waits on that lookup (from another worker,
    -- or the same one); the reload stops the first worker, and the waiting
    -- request is decided by a hook of its own worker, not refused
    local h2c = proc.free_port()
    local g4 = gateway.start({
      workers = 2,
      listen = { { address = "127.0.0.1:" .. h2c, http2 = true } },
      plugins = { timeout = 10 },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://" .. svc:target() },
          methods = { "GET", "PUT" } } } },
    }, { port = h2c })
    local origins = {}
    for i = 1, 6 do origins[("https://r%d.acme.test"):format(i)] = { allowed = true, tenant = "acme" } end
    svc:tenants({ mode = "slow", delay_ms = 1000, origins = origins })
    local function ask(origin)
      local c = assert(http.connect(h2c, { timeout = 10 * gateway.slowdown }))
      c:send(http.build_request("OPTIONS", "/api/x", { { "Origin", origin }, { "Access-Control-Request-Method", "PUT" } }))
      return c
    end
    for i = 1, 6 do
      local origin = ("https://r%d.acme.test"):format(i)
      -- over HTTP/2 a client can leave while its request waits (RST_STREAM,
      -- then the connection closes); HTTP/1.1's is not read until then
      h2.run({ port = h2c, mode = "rapid_reset", count = 1, path = "/api/x", extra = { { "origin", origin } }, wait = 0.1 })
      socket.sleep(0.2)
      local c = ask(origin)
      socket.sleep(0.2)
      g4:signal("HUP")
      local res, err = c:read_response()
      c:close()
      assert.res_status(204, res, err)
      assert.header(res, "access-control-allow-origin", origin, origin)
    end
    svc:tenants({ origins = {} })
    g4:stop_clean()
  end)

  it("a hanging tenant service fails closed once for every worker", function()
    svc:tenants({ mode = "hang", origins = {} })
    local responses = burst(gw, "https://hang.acme.test", 40)
    for _, r in ipairs(responses) do assert.res_status(403, r[1], r[2]) end
    assert.equal(1, svc:calls("https://hang.acme.test"))
    assert.truthy(gw:alive())
  end)
end)
