-- A fleet: two corsgate instances (two workers each) reading tenants from one
-- real redis-server through plugins/tenant_redis.lua, loaded by
-- scripts/tenants-load, with invalidations on the Redis channel.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local socket = require("socket")
local cjson = require("cjson")
require("spec.support.assert")

local function preflight(port, origin)
  return http.request(port, "OPTIONS", "/api/x", { { "Origin", origin },
    { "Access-Control-Request-Method", "PUT" } })
end

local function get(port, origin)
  return http.request(port, "GET", "/api/x", { { "Origin", origin } })
end

local fleet = require("spec.support.fleet")
local load_tenants = fleet.load

local start = fleet.start

local function admin(gw, method, path)
  return http.request(gw.admin_port, method, path, {})
end

-- Every worker of an instance: new connections land on either worker
-- (SO_REUSEPORT), so asking often enough reaches both.
local function all_say(port, origin, want, n)
  for _ = 1, n or 16 do
    local res = preflight(port, origin)
    if not res or res.headers:get("access-control-allow-origin") ~= want then return false, res end
  end
  return true
end

describe("fleet (Redis)", function()
  local r, a, b

  lazy_setup(function()
    r = redis.start()
    a = start(r)
    b = start(r)
  end)

  lazy_teardown(function()
    if a then a:stop_clean() end
    if b then b:stop_clean() end
    if r then r:stop() end
  end)

  it("serves tenants loaded into Redis: origins, credentials, exposed headers; unknown and switched-off origins are refused", function()
    local rc, out = load_tenants(r, { tenants = {
      acme = { origins = { "https://app.acme.test", "HTTPS://Admin.Acme.Test:443" }, credentials = true,
               expose_headers = { "X-Request-Id" } },
      globex = { origins = { "https://globex.test" }, allowed = false },
    } })
    assert.equal(0, rc, out)
    assert.matches("2 tenant%(s%), 3 origin%(s%) written", out)
    assert.equal("acme", r:cli("HGET", "corsgate:origin:https://admin.acme.test", "tenant"))
    for _, gw in ipairs({ a, b }) do
      local res = preflight(gw:port(), "https://app.acme.test")
      assert.res_status(204, res, gw)
      assert.header(res, "access-control-allow-origin", "https://app.acme.test")
      assert.header(res, "access-control-allow-credentials", "true")
      res = get(gw:port(), "https://admin.acme.test")
      assert.res_status(200, res, gw)
      assert.header(res, "access-control-allow-origin", "https://admin.acme.test")
      assert.header(res, "access-control-expose-headers", "x-request-id")
      assert.header(res, "vary", "Origin")
      res = preflight(gw:port(), "https://globex.test")
      assert.res_status(403, res, gw)
      assert.no_header(res, "access-control-allow-origin")
      res = get(gw:port(), "https://unknown.test")
      assert.res_status(200, res, gw)
      assert.no_header(res, "access-control-allow-origin")
    end
  end)

  it("a tenant change published through Redis reaches every worker of both instances within 1 s", function()
    assert.equal(0, (load_tenants(r, { tenants = { initech = {
      origins = { "https://one.initech.test", "https://two.initech.test" }, expose_headers = { "X-Old" } } } })))
    -- cached everywhere, for an hour (ttl 3600): only an invalidation can change them now
    for _, gw in ipairs({ a, b }) do
      assert.truthy(all_say(gw:port(), "https://one.initech.test", "https://one.initech.test"))
      assert.truthy(all_say(gw:port(), "https://two.initech.test", "https://two.initech.test"))
      assert.truthy(all_say(gw:port(), "https://three.initech.test", nil)) -- a cached denial
    end
    local before = {}
    for i, gw in ipairs({ a, b }) do
      before[i] = tonumber(admin(gw, "GET", "/metrics").body:match("corsgate_redis_invalidations_total (%d+)"))
    end
    -- two goes, three comes, one exposes another header
    local t0 = socket.gettime()
    local rc, out = load_tenants(r, { tenants = { initech = {
      origins = { "https://one.initech.test", "https://three.initech.test" }, expose_headers = { "X-New" } } } })
    assert.equal(0, rc, out)
    assert.matches("2 instance%(s%) listening", out)
    local seen = proc.wait_for(function()
      for _, gw in ipairs({ a, b }) do
        if not all_say(gw:port(), "https://two.initech.test", nil) then return false end
        if not all_say(gw:port(), "https://three.initech.test", "https://three.initech.test") then return false end
        for _ = 1, 8 do
          local res = get(gw:port(), "https://one.initech.test")
          if res.headers:get("access-control-expose-headers") ~= "x-new" then return false end
        end
      end
      return true
    end, 1.0 * gateway.slowdown, 0.02)
    local took = socket.gettime() - t0
    assert.truthy(seen, ("not visible everywhere after %.2f s\n%s"):format(took, a:log_tail(10)))
    print(("\n[fleet] tenant change visible on both instances (4 workers) %.0f ms after tenants-load started"):format(
      took * 1000))
    for i, gw in ipairs({ a, b }) do
      local now = tonumber(admin(gw, "GET", "/metrics").body:match("corsgate_redis_invalidations_total (%d+)"))
      assert.truthy(now > before[i], "instance " .. i .. " counted no invalidation")
      assert.log_has(gw, "fleet: invalidation (")
    end
  end)

  it("applies origin, tenant and all messages published by anyone, and ignores garbage", function()
    assert.equal(0, (load_tenants(r, { tenants = { hooli = { origins = { "https://hooli.test" } } } })))
    assert.truthy(all_say(a:port(), "https://hooli.test", "https://hooli.test"))
    -- changed behind corsgate's back: nothing tells the instances yet
    r:cli("HSET", "corsgate:origin:https://hooli.test", "allow", "0")
    assert.truthy(all_say(a:port(), "https://hooli.test", "https://hooli.test"))
    r:cli("PUBLISH", "corsgate:invalidate", "something else\norigin not an origin")
    r:cli("PUBLISH", "corsgate:invalidate", "origin HTTPS://HOOLI.test:443")
    assert.truthy(proc.wait_for(function() return all_say(a:port(), "https://hooli.test", nil) end, 1))
    assert.log_has(a, 'unknown invalidation "something else"')
    r:cli("HSET", "corsgate:origin:https://hooli.test", "allow", "1")
    r:cli("PUBLISH", "corsgate:invalidate", "tenant hooli")
    -- the denial carried the tenant label, so a tenant purge reaches it
    assert.truthy(proc.wait_for(function() return all_say(a:port(), "https://hooli.test", "https://hooli.test") end, 1))
    r:cli("DEL", "corsgate:origin:https://hooli.test")
    r:cli("PUBLISH", "corsgate:invalidate", "all")
    assert.truthy(proc.wait_for(function() return all_say(a:port(), "https://hooli.test", nil) end, 1))
    assert.truthy(a:alive() and b:alive())
  end)

  it("loads a tenant with 10,000 origins, and a new load removes the ones it no longer lists", function()
    local origins = {}
    for i = 1, 10000 do origins[i] = "https://o" .. i .. ".big.test" end
    local rc, out = load_tenants(r, { tenants = { big = { origins = origins } } })
    assert.equal(0, rc, out)
    assert.equal("10000", r:cli("SCARD", "corsgate:tenant:big:origins"))
    assert.truthy(all_say(a:port(), "https://o9999.big.test", "https://o9999.big.test", 4))
    rc, out = load_tenants(r, { tenants = { big = { origins = { "https://o1.big.test" } } } })
    assert.equal(0, rc, out)
    assert.matches("1 origin%(s%) written, 9999 removed", out)
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://o9999.big.test"))
    assert.truthy(proc.wait_for(function() return all_say(a:port(), "https://o9999.big.test", nil, 4) end, 1))
    rc, out = load_tenants(r, '{"tenants": {"big": null}}')
    assert.equal(0, rc, out)
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://o1.big.test"))
    assert.equal("0", r:cli("EXISTS", "corsgate:tenant:big:origins"))
  end)

  it("refuses an invalid tenants file and writes nothing", function()
    local before = r:cli("HGETALL", "corsgate:origin:https://one.initech.test")
    local rc, out = load_tenants(r, { tenants = { initech = { origins = { "https://one.initech.test/path" },
      credentials = true, expose_headers = "*" } } })
    assert.equal(1, rc, out)
    assert.matches("tenants.initech.origins%[1%]: an origin has no path", out)
    assert.matches('tenants.initech.expose_headers: "%*" with credentials', out)
    assert.matches("nothing written", out)
    assert.equal(before, r:cli("HGETALL", "corsgate:origin:https://one.initech.test"))
    rc, out = load_tenants(r, "{not json")
    assert.equal(1, rc, out)
    assert.matches("not JSON", out)
  end)

  it("Redis killed mid-traffic: no worker dies, cached decisions serve stale up to the limit, then fail closed; all recovers with Redis", function()
    local c = start(r, { workers = 1 })
    assert.equal(0, (load_tenants(r, { tenants = { umbrella = { origins = { "https://umbrella.test" }, ttl = 1 } } })))
    assert.res_status(204, preflight(c:port(), "https://umbrella.test"), c)
    -- traffic runs while Redis dies
    local stop_at = socket.gettime() + 1.5
    local statuses = {}
    local killed = false
    while socket.gettime() < stop_at do
      if not killed and socket.gettime() > stop_at - 1.2 then
        r:kill()
        killed = true
      end
      local res = preflight(c:port(), "https://umbrella.test")
      statuses[res and res.status or "none"] = (statuses[res and res.status or "none"] or 0) + 1
    end
    -- ttl 1 s has run out: these were served stale, every one of them allowed
    assert.same({ [204] = statuses[204] }, statuses)
    local health = cjson.decode(admin(c, "GET", "/healthz").body)
    assert.equal("degraded", health.status)
    assert.equal("down", health.redis.state)
    assert.equal(200, admin(c, "GET", "/healthz").status, "Redis down must not pull the instance from its balancer")
    assert.matches("corsgate_redis_up 0", admin(c, "GET", "/metrics").body, 1, true)
    -- an origin never seen cannot be decided: refused at once
    local res = preflight(c:port(), "https://new.umbrella.test")
    assert.res_status(403, res, c)
    assert.no_header(res, "access-control-allow-origin")
    -- past cache.stale_limit (3 s after expiry) the stale answer goes: fail closed
    assert.truthy(proc.wait_for(function()
      local x = preflight(c:port(), "https://umbrella.test")
      return x and x.status == 403
    end, 5), c:log_tail(10))
    assert.truthy(c:alive(), "the gateway died")
    -- Redis back (empty: it kept nothing), tenants loaded again
    r:restart()
    assert.truthy(proc.wait_for(function()
      return cjson.decode(admin(c, "GET", "/healthz").body).status == "ok"
    end, 8), c:log_tail(10))
    assert.equal(0, (load_tenants(r, { tenants = { umbrella = { origins = { "https://umbrella.test",
      "https://new.umbrella.test" } } } })))
    assert.truthy(proc.wait_for(function()
      local x = preflight(c:port(), "https://new.umbrella.test")
      return x and x.status == 204
    end, 2), c:log_tail(10))
    assert.res_status(204, preflight(c:port(), "https://umbrella.test"), c)
    assert.matches("corsgate_redis_up 1", admin(c, "GET", "/metrics").body, 1, true)
    -- the other instances lived through it too
    assert.truthy(a:alive() and b:alive())
    assert.truthy(proc.wait_for(function()
      return cjson.decode(admin(a, "GET", "/healthz").body).status == "ok"
    end, 8))
    c:stop_clean()
  end)
end)
