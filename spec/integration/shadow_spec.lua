-- shadow_cors: a second, static policy evaluated on every request with an
-- Origin, never enforced; where its answer differs from the enforced one it is
-- counted (corsgate_shadow_decisions_total) and logged, so a policy change can
-- be watched on real traffic before it is rolled out.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
require("spec.support.assert")

local value = require("spec.support.metrics").value

local function metric(text, route, outcome)
  return value(text, "corsgate_shadow_decisions_total", '{route="' .. route .. '",outcome="' .. outcome .. '"}')
end

describe("shadow_cors", function()
  local gw, admin_port

  lazy_setup(function()
    admin_port = proc.free_port()
    gw = gateway.start({
      admin = { listen = "127.0.0.1:" .. admin_port },
      routes = {
        { name = "api", prefix = "/api", upstream = "echo",
          cors = { origins = { "https://app.example" }, methods = { "GET", "PUT" } },
          shadow_cors = { origins = { "https://app.example", "https://new.example" }, methods = { "GET" } } },
        { name = "bare", prefix = "/bare", upstream = "echo",
          shadow_cors = { origins = { "https://app.example" } } },
      },
    })
  end)

  lazy_teardown(function() if gw then gw:stop_clean() end end)

  local function metrics()
    return http.request(admin_port, "GET", "/metrics", {}).body
  end

  it("is never enforced: what the shadow allows stays refused", function()
    local res = http.request(gw:port(), "GET", "/api/x", { { "Origin", "https://new.example" } })
    assert.res_status(200, res)
    assert.no_header(res, "access-control-allow-origin")
    res = http.request(gw:port(), "OPTIONS", "/api/x", { { "Origin", "https://app.example" },
      { "Access-Control-Request-Method", "PUT" } })
    assert.res_status(204, res) -- the shadow would refuse PUT; the enforced policy allows it
    assert.header(res, "access-control-allow-origin", "https://app.example")
  end)

  it("counts requests where both agree and where they differ, and logs the differences", function()
    local before_same, before_diff = metric(metrics(), "api", "same"), metric(metrics(), "api", "different")
    http.request(gw:port(), "GET", "/api/a", { { "Origin", "https://app.example" } })           -- same
    http.request(gw:port(), "GET", "/api/b", { { "Origin", "https://evil.example" } })          -- same (both refuse)
    http.request(gw:port(), "GET", "/api/c", { { "Origin", "https://new.example" } })           -- differs
    http.request(gw:port(), "OPTIONS", "/api/d", { { "Origin", "https://app.example" },
      { "Access-Control-Request-Method", "PUT" } })                                             -- differs
    http.request(gw:port(), "GET", "/api/e", {})                                                -- no Origin: not counted
    local text = metrics()
    assert.equal(before_same + 2, metric(text, "api", "same"), text)
    assert.equal(before_diff + 2, metric(text, "api", "different"), text)
    local log = gw:log()
    assert.truthy(log:find('shadow_cors: route "api", origin https://new.example: enforced refused, shadow allowed', 1, true), log)
    assert.truthy(log:find('shadow_cors: route "api", origin https://app.example: enforced allowed, shadow refused: ', 1, true), log)
  end)

  it("works on a route without cors (planning to add one)", function()
    local res = http.request(gw:port(), "GET", "/bare/x", { { "Origin", "https://app.example" } })
    assert.no_header(res, "access-control-allow-origin")
    assert.truthy(metric(metrics(), "bare", "different") >= 1)
    assert.truthy(gw:log():find('shadow_cors: route "bare", origin https://app.example: enforced no CORS, shadow allowed', 1, true))
  end)

  it("is static: a plugin in a shadow policy is refused at load", function()
    local code, out = gateway.check({ routes = { { name = "a", prefix = "/", upstream = "echo",
      cors = { origins = { "https://a.example" } }, shadow_cors = { plugin = "x" } } } })
    assert.equal(2, code)
    assert.matches("routes%[1%]%.shadow_cors: plugin: a shadow policy is static", out)
  end)
end)
