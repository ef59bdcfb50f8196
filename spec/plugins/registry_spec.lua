-- plugins/tenant_registry.lua against a tenant service (the test upstream in
-- its tenant mode): decisions through the gateway, single flight, the cache's
-- TTLs, stale-while-revalidate and failing closed.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local socket = require("socket")
require("spec.support.assert")

local PF_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"

local function preflight(gw, origin, method, headers)
  local h = { { "Origin", origin }, { "Access-Control-Request-Method", method or "PUT" } }
  if headers then h[#h + 1] = { "Access-Control-Request-Headers", headers } end
  return http.request(gw:port(), "OPTIONS", "/api/things", h)
end

local function get(gw, origin)
  return http.request(gw:port(), "GET", "/api/things", { { "Origin", origin } })
end

local function start(svc, api, extra)
  local cors = { plugin = "tenant_registry", plugin_config = { base_url = "http://" .. svc:target() },
    methods = { "GET", "PUT" }, headers = { "Content-Type" }, max_age = 300 }
  for k, v in pairs(extra and extra.cors or {}) do cors[k] = v end
  local cfg = {
    upstreams = { api = { targets = { api:target() } } },
    routes = { { name = "api", prefix = "/api", upstream = "api", cors = cors } },
  }
  for k, v in pairs(extra or {}) do if k ~= "cors" then cfg[k] = v end end
  return gateway.start(cfg)
end

describe("tenant_registry", function()
  local svc, api

  lazy_setup(function()
    svc = upstream.start()
    api = upstream.start()
  end)

  lazy_teardown(function()
    svc:stop()
    api:stop()
  end)

  before_each(function()
    svc:tenants({ origins = {
      ["https://app.acme.test"] = { allowed = true, tenant = "acme", expose_headers = { "X-Upstream-Port" },
        credentials = true, ttl = 60 },
      ["https://www.globex.test"] = { allowed = true, tenant = "globex" },
      ["https://old.acme.test"] = { allowed = false, ttl = 60 },
    } })
  end)

  it("answers an allowed origin's preflight with the route's fields and the tenant's credentials", function()
    local gw = start(svc, api)
    local before = api:count().requests
    local res, err = preflight(gw, "https://app.acme.test", "PUT", "content-type")
    assert.res_status(204, res, err or gw)
    assert.header(res, "access-control-allow-origin", "https://app.acme.test")
    assert.header(res, "access-control-allow-credentials", "true")
    assert.header(res, "access-control-allow-methods", "GET, PUT")
    assert.header(res, "access-control-allow-headers", "content-type")
    assert.header(res, "access-control-max-age", "300")
    assert.header(res, "vary", PF_VARY)
    assert.equal(before, api:count().requests, "the preflight reached the upstream")
    gw:stop_clean()
  end)

  it("decorates an allowed origin's responses with the tenant's expose headers", function()
    local gw = start(svc, api)
    local res, err = get(gw, "https://app.acme.test")
    assert.res_status(200, res, err or gw)
    assert.header(res, "access-control-allow-origin", "https://app.acme.test")
    assert.header(res, "access-control-expose-headers", "x-upstream-port")
    assert.header(res, "access-control-allow-credentials", "true")
    assert.header(res, "vary", "Origin")
    -- a tenant without extras gets the route's answer only
    res = get(gw, "https://www.globex.test")
    assert.header(res, "access-control-allow-origin", "https://www.globex.test")
    assert.no_header(res, "access-control-allow-credentials")
    assert.no_header(res, "access-control-expose-headers")
    gw:stop_clean()
  end)

  it("refuses unknown and disallowed origins: 403 preflight never forwarded, no CORS headers", function()
    local gw = start(svc, api)
    local before = api:count().requests
    for _, origin in ipairs({ "https://evil.test", "https://old.acme.test" }) do
      local res, err = preflight(gw, origin)
      assert.res_status(403, res, err or gw)
      assert.no_header(res, "access-control-allow-origin")
      assert.no_header(res, "access-control-allow-methods")
      assert.header(res, "vary", PF_VARY)
      res = get(gw, origin)
      assert.res_status(200, res, gw)
      assert.no_header(res, "access-control-allow-origin")
      assert.header(res, "vary", "Origin")
    end
    assert.equal(before + 2, api:count().requests, "only the two actual requests reach the upstream")
    gw:stop_clean()
  end)

  it("makes exactly one call for 100 concurrent requests from a new origin (single flight)", function()
    svc:tenants({ mode = "slow", delay_ms = 300, origins = {
      ["https://flight.acme.test"] = { allowed = true, tenant = "acme" } } })
    local gw = start(svc, api)
    local conns = {}
    for i = 1, 100 do
      conns[i] = assert(http.connect(gw:port(), { timeout = 10 }))
      conns[i]:send(http.build_request("OPTIONS", "/api/x", { { "Origin", "https://flight.acme.test" },
        { "Access-Control-Request-Method", "PUT" } }))
    end
    for i, c in ipairs(conns) do
      local res, err = c:read_response()
      assert.res_status(204, res, err or gw)
      assert.header(res, "access-control-allow-origin", "https://flight.acme.test", "request " .. i)
      c:close()
    end
    assert.equal(1, svc:calls("https://flight.acme.test"))
    -- and the decision is cached: no further call
    for _ = 1, 20 do assert.res_status(204, preflight(gw, "https://flight.acme.test")) end
    assert.equal(1, svc:calls("https://flight.acme.test"))
    gw:stop_clean()
  end)

  it("refreshes an expired decision in the background while serving it", function()
    svc:tenants({ origins = { ["https://ttl.acme.test"] = { allowed = true, tenant = "acme", ttl = 1 } } })
    local gw = start(svc, api)
    assert.res_status(204, preflight(gw, "https://ttl.acme.test"))
    assert.equal(1, svc:calls("https://ttl.acme.test"))
    socket.sleep(1.2)
    -- slow refresh: the expired decision keeps serving, without waiting for it
    svc:tenants({ mode = "slow", delay_ms = 500,
      origins = { ["https://ttl.acme.test"] = { allowed = true, tenant = "acme", ttl = 60 } } })
    local t0 = socket.gettime()
    for _ = 1, 5 do
      local res, err = preflight(gw, "https://ttl.acme.test")
      assert.res_status(204, res, err or gw)
      assert.header(res, "access-control-allow-origin", "https://ttl.acme.test")
    end
    assert.is_true(socket.gettime() - t0 < 0.45, "stale answers waited for the refresh")
    socket.sleep(0.7)
    assert.equal(2, svc:calls("https://ttl.acme.test"), "one refresh for five stale requests")
    gw:stop_clean()
  end)

  it("keeps serving stale while the service is down, up to cache.stale_limit, then denies", function()
    svc:tenants({ origins = { ["https://down.acme.test"] = { allowed = true, tenant = "acme", ttl = 1 } } })
    local gw = start(svc, api, { cache = { stale_limit = 2 } })
    assert.res_status(204, preflight(gw, "https://down.acme.test"))
    svc:tenants({ mode = "down", origins = {} })
    socket.sleep(1.2) -- expired, within the stale limit
    local res, err = preflight(gw, "https://down.acme.test")
    assert.res_status(204, res, err or gw)
    assert.header(res, "access-control-allow-origin", "https://down.acme.test")
    socket.sleep(2.3) -- past expiry + stale_limit
    for _ = 1, 3 do
      res, err = preflight(gw, "https://down.acme.test")
      assert.res_status(403, res, err or gw)
    end
    assert.matches("tenant service answered 500", gw:log())
    assert.is_true(gw:alive())
    gw:stop_clean()
  end)

  it("caches a denial for deny_ttl, then asks again", function()
    svc:tenants({ origins = {} })
    local gw = start(svc, api, { cors = { deny_ttl = 1 } })
    assert.res_status(403, preflight(gw, "https://late.acme.test"))
    svc:tenants({ origins = { ["https://late.acme.test"] = { allowed = true, tenant = "acme" } } })
    assert.res_status(403, preflight(gw, "https://late.acme.test"))
    assert.equal(1, svc:calls("https://late.acme.test"))
    socket.sleep(1.2)
    -- the expired denial serves once more while the refresh runs, then the new answer
    preflight(gw, "https://late.acme.test")
    local ok = require("spec.support.proc").wait_for(function()
      return preflight(gw, "https://late.acme.test").status == 204
    end, 3, 0.05)
    assert.truthy(ok, "the origin never became allowed")
    gw:stop_clean()
  end)

  it("fails closed when the service answers garbage or hangs, and logs it once per origin", function()
    svc:tenants({ mode = "garbage", origins = {} })
    local gw = start(svc, api, { plugins = { timeout = 0.3 }, cors = { deny_ttl = 0 } })
    for _ = 1, 3 do assert.res_status(403, preflight(gw, "https://garbage.acme.test")) end
    svc:tenants({ mode = "hang", origins = {} })
    local t0 = socket.gettime()
    assert.res_status(403, preflight(gw, "https://hang.acme.test"))
    assert.is_true(socket.gettime() - t0 < 2, "the hook was not cut off at plugins.timeout")
    local log = gw:log()
    local _, n = log:gsub("origin https://garbage%.acme%.test denied", "")
    assert.equal(1, n, log)
    assert.matches("origin https://hang%.acme%.test denied: timed out", log)
    -- the worker is fine
    svc:tenants({ origins = { ["https://app.acme.test"] = { allowed = true } } })
    assert.res_status(204, preflight(gw, "https://app.acme.test"))
    gw:stop_clean()
  end)
end)
