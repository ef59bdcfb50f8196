-- Routes: host matching (exact, *.wildcard, any), longest prefix, static and echo
-- answers, 404 for no route, and the access log line.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
require("spec.support.assert")
local cjson = require("cjson")

local function static(body) return { status = 200, body = body, headers = { ["content-type"] = "text/plain" } } end

describe("routing", function()
  local gw

  lazy_setup(function()
    gw = gateway.start({
      routes = {
        { name = "any-root", prefix = "/", static = static("any-root") },
        { name = "any-api", prefix = "/api", static = static("any-api") },
        { name = "any-api-v1", prefix = "/api/v1", static = static("any-api-v1") },
        { name = "exact-root", host = "api.example.com", prefix = "/", static = static("exact-root") },
        { name = "exact-api", host = "api.example.com", prefix = "/api", static = static("exact-api") },
        { name = "wild-api", host = "*.example.com", prefix = "/api", static = static("wild-api") },
        { name = "echo", prefix = "/echo", upstream = "echo" },
        { name = "teapot", prefix = "/teapot",
          static = { status = 418, body = "short and stout\n",
                     headers = { ["content-type"] = "text/x-teapot", ["x-pot"] = "yes" } } },
        { name = "empty", prefix = "/empty", static = { status = 204 } },
      },
    })
  end)

  lazy_teardown(function() gw:stop_clean() end)

  -- host, path, the route expected to answer
  local cases = {
    { "localhost", "/", "any-root" },
    { "localhost", "/api", "any-api" },
    { "localhost", "/api/", "any-api" },
    { "localhost", "/api/things", "any-api" },
    { "localhost", "/api/v1", "any-api-v1" },
    { "localhost", "/api/v1/things?x=1", "any-api-v1" },
    { "localhost", "/api/v10", "any-api" },           -- prefixes match whole segments
    { "localhost", "/apix", "any-root" },
    { "api.example.com", "/", "exact-root" },
    { "api.example.com", "/api/v1/x", "exact-api" },   -- host-specific routes before "*" ones
    { "API.Example.COM", "/api", "exact-api" },        -- host names are case-insensitive
    { "api.example.com:8443", "/api", "exact-api" },   -- the port is not part of the host
    { "www.example.com", "/api/x", "wild-api" },
    { "a.b.example.com", "/api", "wild-api" },         -- one or more labels
    { "example.com", "/api", "any-api" },              -- the apex is not *.example.com
    { "www.example.com", "/other", "any-root" },
    { "evil-example.com", "/api", "any-api" },
    { "api.example.com.evil.net", "/api", "any-api" },
  }

  for _, case in ipairs(cases) do
    local host, path, route = case[1], case[2], case[3]
    it(("Host %s, %s -> route %s"):format(host, path, route), function()
      local res, err = http.request(gw:port(), "GET", path, { { "Host", host } })
      local body = assert.res_status(200, res, gw or err)
      assert.equal(route, body)
    end)
  end

  it("answers a static route with its status, body and headers", function()
    local res, err = http.request(gw:port(), "GET", "/teapot", {})
    local body = assert.res_status(418, res, gw or err)
    assert.equal("short and stout\n", body)
    assert.header(res, "content-type", "text/x-teapot", gw)
    assert.header(res, "x-pot", "yes", gw)
    assert.header(res, "content-length", "16", gw)
  end)

  it("answers HEAD on a static route with the headers and no body", function()
    local c = assert(http.connect(gw:port()))
    c:send("HEAD /teapot HTTP/1.1\r\nHost: x\r\n\r\n")
    local res = c:read_response({ method = "HEAD" })
    assert.res_status(418, res, gw)
    assert.equal("", res.body)
    -- nothing follows the head: the next response starts cleanly
    c:send("GET /teapot HTTP/1.1\r\nHost: x\r\n\r\n")
    local res2 = c:read_response()
    assert.res_status(418, res2, gw)
    assert.equal("short and stout\n", res2.body)
    c:close()
  end)

  it("answers a bodiless static status without a body", function()
    local res, err = http.request(gw:port(), "GET", "/empty", {})
    assert.res_status(204, res, gw or err)
    assert.equal("", res.body)
  end)

  it("the echo upstream describes the request as JSON", function()
    local res, err = http.request(gw:port(), "POST", "/echo/x?a=1&b=2",
      { { "Host", "echo.test" }, { "X-Custom", "Value 1" }, { "Content-Type", "text/plain" } }, "12345")
    local body = assert.res_status(200, res, gw or err)
    assert.header(res, "content-type", "application/json", gw)
    local j = cjson.decode(body)
    assert.same({ method = "POST", path = "/echo/x", query = "a=1&b=2", body_bytes = 5, route = "echo" },
      { method = j.method, path = j.path, query = j.query, body_bytes = j.body_bytes, route = j.route })
    assert.equal("Value 1", j.headers["x-custom"])
    assert.equal("echo.test", j.headers.host)
    assert.equal("5", j.headers["content-length"])
  end)

  it("answers 404 with a JSON error when no route matches", function()
    local gw2 = gateway.start({ routes = { { name = "only", prefix = "/only", static = static("x") } } })
    local res, err = http.request(gw2:port(), "GET", "/elsewhere", {})
    local body = assert.res_status(404, res, gw2 or err)
    local ok, j = pcall(cjson.decode, body)
    assert.truthy(ok, "404 body is not JSON: " .. body)
    assert.equal(404, j.status)
    assert.equal("string", type(j.error))
    assert.truthy((res.headers:get("content-type") or ""):find("application/json", 1, true))
    gw2:stop_clean()
  end)

  it("writes one access log line per request with method, path and status", function()
    local marker = "/teapot/access-log-" .. tostring(math.random(1e9))
    local res = http.request(gw:port(), "PUT", marker, {}, "x")
    assert.res_status(418, res, gw)
    local lines = {}
    require("spec.support.proc").wait_for(function()
      lines = {}
      for line in gw:log():gmatch("[^\n]+") do
        if line:find(marker, 1, true) then lines[#lines + 1] = line end
      end
      return #lines > 0
    end, 2)
    assert.equal(1, #lines, gw:log_tail())
    assert.truthy(lines[1]:find("PUT", 1, true), lines[1])
    assert.truthy(lines[1]:find("418", 1, true), lines[1])
  end)

  it("writes no access log lines with access_log = false", function()
    local gw2 = gateway.start({ access_log = false, routes = { { name = "s", prefix = "/", static = static("x") } } })
    for _ = 1, 3 do assert.res_status(200, http.request(gw2:port(), "GET", "/quiet-please", {}), gw2) end
    gw2:stop()
    local log = gw2:log()
    gw2:stop_clean()
    assert.truthy(log:find("listening", 1, true), log) -- the log was read before cleanup
    assert.falsy(log:find("/quiet-please", 1, true), log)
  end)
end)
