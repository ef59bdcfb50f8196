-- The example configs a package ships (share/doc/corsgate/examples): each is
-- checked as written, started (on the spec's ports), and sent the request it is
-- there to show, so none goes stale.
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local redis = require("spec.support.redis")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")
local cjson = require("cjson")

local root = os.getenv("CORSGATE_ROOT") or "."
local EXAMPLES = {
  demo = root .. "/core/config/demo.lua",
  ["static-cors"] = root .. "/spec/examples/static-cors.lua",
  ["tenant-registry"] = root .. "/spec/examples/tenant-registry.lua",
  ["redis-fleet"] = root .. "/spec/examples/redis-fleet.lua",
}

local function preflight(gw, path, origin, method, extra)
  local hs = { { "Origin", origin }, { "Access-Control-Request-Method", method } }
  for _, h in ipairs(extra or {}) do hs[#hs + 1] = h end
  local res, err = http.request(gw:port(), "OPTIONS", path, hs)
  assert.truthy(res, err)
  return res
end

describe("shipped examples", function()
  for name, path in pairs(EXAMPLES) do
    it(name .. ".lua passes corsgate check without a warning", function()
      local code, out = gateway.cli({ "check", "-c", path })
      assert.equal(0, code, out)
      assert.matches(": ok\n$", out)
    end)
  end

  it("demo.lua is the built-in demo, and answers its README preflight", function()
    local port = proc.free_port()
    local gw = gateway.start_file(EXAMPLES.demo, { ['listen = "127.0.0.1:8080"'] = ('listen = "127.0.0.1:%d"'):format(port),
      port = port })
    local res = preflight(gw, "/api/things", "http://localhost:3000", "PUT", { { "Access-Control-Request-Headers", "content-type" } })
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-origin", "http://localhost:3000")
    gw:stop_clean()
  end)

  it("static-cors.lua allows a preview deployment with credentials, and anyone on /public", function()
    local port, admin = proc.free_port(), proc.free_port()
    local gw = gateway.start_file(EXAMPLES["static-cors"], {
      ['listen = "127.0.0.1:8080"'] = ('listen = "127.0.0.1:%d"'):format(port),
      ['"127.0.0.1:9901"'] = ('"127.0.0.1:%d"'):format(admin), port = port })
    local res = preflight(gw, "/v1/orders", "https://pr-7.preview.example.com", "PATCH",
      { { "Host", "api.example.com" }, { "Access-Control-Request-Headers", "authorization" } })
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-credentials", "true")
    res = preflight(gw, "/public/x", "https://anyone.example", "GET", { { "Host", "api.example.com" } })
    assert.res_status(204, res, gw)
    assert.header(res, "access-control-allow-origin", "*")
    assert.res_status(200, http.request(admin, "GET", "/healthz", {}))
    gw:stop_clean()
  end)

  it("tenant-registry.lua asks the tenant service", function()
    local svc = upstream.start()
    svc:tenants({ origins = { ["https://acme.example"] = { allowed = true, tenant = "acme" } } })
    local port = proc.free_port()
    local gw = gateway.start_file(EXAMPLES["tenant-registry"], {
      ['listen = "127.0.0.1:8080"'] = ('listen = "127.0.0.1:%d"'):format(port),
      ['"http://127.0.0.1:7000"'] = '"http://' .. svc:target() .. '"', port = port })
    assert.res_status(204, preflight(gw, "/x", "https://acme.example", "PUT"), gw)
    assert.res_status(403, preflight(gw, "/x", "https://stranger.example", "PUT"), gw)
    gw:stop_clean()
    svc:stop()
  end)

  it("redis-fleet.lua reads its tenants from Redis and reports Redis on /healthz", function()
    local r = redis.start()
    r:cli("HSET", "corsgate:origin:https://acme.example", "tenant", "acme", "allow", "1")
    local port, admin = proc.free_port(), proc.free_port()
    local gw = gateway.start_file(EXAMPLES["redis-fleet"], {
      ['listen = "0.0.0.0:8080"'] = ('listen = "127.0.0.1:%d"'):format(port),
      ['"127.0.0.1:9901"'] = ('"127.0.0.1:%d"'):format(admin),
      ['"127.0.0.1:6379"'] = '"' .. r:address() .. '"', port = port })
    assert.res_status(204, preflight(gw, "/x", "https://acme.example", "PUT"), gw)
    assert.res_status(403, preflight(gw, "/x", "https://stranger.example", "PUT"), gw)
    local health = cjson.decode(assert.res_status(200, http.request(admin, "GET", "/healthz", {})))
    assert.equal("up", health.redis.state)
    gw:stop_clean()
    r:stop()
  end)
end)
