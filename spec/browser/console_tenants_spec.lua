-- The console's tenants view in headless Chromium (spec/browser/
-- console_tenants.js), over a real redis-server holding the tenants: search
-- by name with paging, a tenant's origins and policy, who owns an origin, and
-- purging a tenant's or an origin's cached decisions in every worker.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local cjson = require("cjson")
require("spec.support.assert")

local format = string.format
local TOKEN = "console-tenants-token-0123456789"

describe("the console's tenants view", function()
  local r, gw, admin_port, report, cached_before

  local function admin(method, path, body)
    return assert(http.request(admin_port, method, path, { { "Authorization", "Bearer " .. TOKEN } }, body))
  end

  -- the decision each worker holds for origin, from GET /explain
  local function cached(origin)
    local j = cjson.decode(admin("GET", "/explain?origin=" .. origin .. "&method=PUT&path=/api/x").body)
    local present = 0
    for _, w in ipairs(j.cache) do if w.state ~= "absent" then present = present + 1 end end
    return present
  end

  lazy_setup(function()
    r = redis.start()
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port, token = TOKEN },
      redis = { address = r:address() },
      routes = { { name = "api", prefix = "/api", upstream = "echo",
        cors = { plugin = "tenant_redis", methods = { "GET", "PUT" }, ttl = 3600 } } },
    })
    assert(proc.wait_for(function() return gw:log():find("listening on channel", 1, true) end, 5 * gateway.slowdown))
    assert.equal(201, admin("PUT", "/tenants/acme", cjson.encode({ origins = { "https://app.acme.test",
      "https://admin.acme.test" }, credentials = true, expose_headers = { "X-Request-Id" } })).status)
    assert.equal(201, admin("PUT", "/tenants/globex", cjson.encode({ origins = { "https://globex.test" },
      allowed = false })).status)
    for i = 1, 60 do
      assert.equal(201, admin("PUT", format("/tenants/page%02d", i),
        cjson.encode({ origins = { format("https://p%d.page.test", i) } })).status)
    end
    -- decisions cached in both workers (new connections land on either)
    for _ = 1, 16 do
      http.request(gw:port(), "OPTIONS", "/api/x", { { "Origin", "https://app.acme.test" },
        { "Access-Control-Request-Method", "PUT" } })
      http.request(gw:port(), "OPTIONS", "/api/x", { { "Origin", "https://admin.acme.test" },
        { "Access-Control-Request-Method", "PUT" } })
    end
    cached_before = cached("https://app.acme.test")
    local shots = os.getenv("CORSGATE_SHOTS") or proc.tmpdir("console-shots")
    proc.sh("mkdir -p " .. proc.quote(shots))
    local out = os.tmpname()
    local code, log = proc.sh(format("cd %s && timeout 120 node spec/browser/console_tenants.js %s %s %s %s",
      proc.quote(gateway.root), proc.quote("http://127.0.0.1:" .. admin_port), proc.quote(TOKEN), proc.quote(out),
      proc.quote(shots)))
    local text = proc.read_file(out)
    os.remove(out)
    assert(text and text ~= "", format("console_tenants.js wrote nothing (exit %s):\n%s", tostring(code), log))
    report = cjson.decode(text)
    print("\n[console] tenants view screenshot in " .. shots .. "/console-tenants.png")
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if r then r:stop() end
  end)

  it("runs in Chromium without a script error, and shows the view when there is a tenant store", function()
    assert.is_nil(report.failure, report.failure)
    assert.same({}, report.errors)
    assert.matches("62 tenant%(s%) in the store", report.note)
  end)

  it("finds tenants by name, a page of 50 and then the rest", function()
    assert.equal(50, report.page_first)
    assert.truthy(report.more_visible)
    assert.equal(60, #report.page_all)
    for i = 1, 60 do assert.equal(format("page%02d", i), report.page_all[i]) end
    assert.is_false(report.more_after)
    assert.same({ { "globex", "1", "switched off" } }, report.globex)
  end)

  it("shows a tenant's origins and policy", function()
    assert.same({ { "acme", "2", "allowed" } }, report.acme_row)
    assert.equal("Tenant acme (2 origin(s))", report.detail.name)
    assert.same({ "https://admin.acme.test", "https://app.acme.test" }, report.detail.origins)
    assert.matches("credentials true", report.detail.policy, 1, true)
    assert.matches("expose_headers: X-Request-Id", report.detail.policy, 1, true)
  end)

  it("says who owns an origin (as browsers send it), and that nobody owns another", function()
    assert.matches("https://app.acme.test belongs to tenant acme", report.owner, 1, true)
    assert.same({ "Open acme", "Purge this origin's cached decisions" }, report.owner_buttons)
    assert.matches("no tenant owns https://nobody.test", report.nobody, 1, true)
    assert.matches("an origin has no path", report.bad, 1, true)
  end)

  it("purges a tenant's and an origin's cached decisions in every worker", function()
    assert.equal(2, cached_before, "the spec's traffic did not cache the origin in both workers")
    -- the tenant's purge dropped both origins of acme: in the store the workers
    -- share, and in both workers' front caches
    local n = tonumber(report.purge_tenant:match("Purged (%d+) cached decision"))
    assert.equal(6, n, report.purge_tenant)
    assert.matches("of tenant acme in every worker", report.purge_tenant, 1, true)
    assert.matches("Purged %d+ cached decision%(s%) of origin https://app.acme.test", report.purge_origin)
    assert.equal(0, cached("https://app.acme.test"))
    assert.equal(0, cached("https://admin.acme.test"))
  end)
end)
