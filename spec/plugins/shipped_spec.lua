-- The shipped plugins expose_by_tenant (a per-response expose_headers hook)
-- and tenant_subdomain (tenants from a JSON file).
local gateway = require("spec.support.gateway")
local upstream = require("spec.support.upstream")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local socket = require("socket")
require("spec.support.assert")

describe("expose_by_tenant", function()
  local up, gw

  lazy_setup(function()
    up = upstream.start()
    gw = gateway.start({
      upstreams = { api = { targets = { up:target() } } },
      routes = { { name = "api", prefix = "/", upstream = "api", cors = { plugin = "expose_by_tenant",
        plugin_config = { tenants = {
          acme = { origins = { "https://app.acme.test" }, expose_headers = { "X-Upstream-Port", "X-Not-Sent" },
            expose_on_error = { "X-Conn-Id" } },
          globex = { origins = { "https://globex.test" } },
        } } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    up:stop()
  end)

  local function get(path, origin)
    local res, err = http.request(gw:port(), "GET", path, { { "Origin", origin } })
    assert.truthy(res, err)
    return res
  end

  it("exposes per tenant only the headers the response carries", function()
    local res = get("/echo", "https://app.acme.test")
    assert.res_status(200, res, gw)
    assert.header(res, "access-control-allow-origin", "https://app.acme.test")
    assert.header(res, "access-control-expose-headers", "x-upstream-port")
    assert.equal(1, res.headers:count("access-control-expose-headers"))
  end)

  it("adds the error headers on 4xx and 5xx answers", function()
    local res = get("/status/503", "https://app.acme.test")
    assert.res_status(503, res, gw)
    assert.header(res, "access-control-expose-headers", "x-upstream-port, x-conn-id")
    res = get("/status/404", "https://app.acme.test")
    assert.header(res, "access-control-expose-headers", "x-upstream-port, x-conn-id")
  end)

  it("exposes nothing for a tenant without a list, and decorates nothing for strangers", function()
    local res = get("/echo", "https://globex.test")
    assert.header(res, "access-control-allow-origin", "https://globex.test")
    assert.no_header(res, "access-control-expose-headers")
    res = get("/echo", "https://evil.test")
    assert.no_header(res, "access-control-allow-origin")
    assert.no_header(res, "access-control-expose-headers")
  end)
end)

describe("tenant_subdomain", function()
  local dir, gw, file

  lazy_setup(function()
    dir = proc.tmpdir("subdomain")
    file = dir .. "/tenants.json"
    proc.write_file(file, [[{"tenants": {"acme": {"expose_headers": ["X-Request-Id"], "credentials": true},
      "globex": {}}}]])
    gw = gateway.start({
      routes = { { name = "app", prefix = "/", upstream = "echo", cors = { plugin = "tenant_subdomain", ttl = 1, deny_ttl = 1,
        plugin_config = { base_domain = "app.example.test", tenants_file = file } } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  local function get(origin)
    local res, err = http.request(gw:port(), "GET", "/x", { { "Origin", origin } })
    assert.res_status(200, res, err or gw)
    return res
  end

  it("allows a listed tenant's subdomain with its own settings", function()
    local res = get("https://acme.app.example.test")
    assert.header(res, "access-control-allow-origin", "https://acme.app.example.test")
    assert.header(res, "access-control-allow-credentials", "true")
    assert.header(res, "access-control-expose-headers", "x-request-id")
    res = get("https://globex.app.example.test")
    assert.header(res, "access-control-allow-origin", "https://globex.app.example.test")
    assert.no_header(res, "access-control-allow-credentials")
  end)

  it("refuses unknown tenants, deeper names, the apex, look-alikes and http", function()
    for _, o in ipairs({ "https://initech.app.example.test", "https://a.acme.app.example.test",
      "https://app.example.test", "https://acme.app.example.test.evil.test", "https://acmeapp.example.test",
      "http://acme.app.example.test" }) do
      assert.no_header(get(o), "access-control-allow-origin", o)
    end
  end)

  it("picks up a changed tenants file once the cached decision expires", function()
    assert.no_header(get("https://initech.app.example.test"), "access-control-allow-origin")
    socket.sleep(1.1) -- mtime has a one-second resolution on some filesystems
    proc.write_file(file, [[{"tenants": {"acme": {}, "initech": {}}}]])
    local ok = proc.wait_for(function()
      return get("https://initech.app.example.test").headers:get("access-control-allow-origin") ~= nil
    end, 15, 0.2)
    assert.truthy(ok, "the new tenant was never allowed\n" .. gw:log_tail())
  end)
end)
