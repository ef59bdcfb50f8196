-- The admin API: health, Prometheus metrics, the decision caches (stats and
-- purges), explain against the live state, and its token.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local upstream = require("spec.support.upstream")
require("spec.support.assert")
local cjson = require("cjson")

local PLUGIN = [[
local _M = {}
function _M.origin(ctx)
  local tenant = ctx.host:match("^(%w+)%.tenants%.test$")
  if not tenant then return false end
  if tenant == "quote" then tenant = 'a "quoted" label\\' end -- a label is any bytes
  return { allow = true, tenant = tenant, ttl = 600 }
end
return _M
]]

local metric = require("spec.support.metrics").value

describe("admin API", function()
  local gw, dir, admin_port

  local function admin(method, path, headers)
    local res, err = http.request(admin_port, method, path, headers or {})
    assert.truthy(res, err)
    return res
  end

  lazy_setup(function()
    dir = proc.tmpdir("admin")
    proc.write_file(dir .. "/tenants.lua", PLUGIN)
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port },
      plugin_paths = { dir },
      upstreams = { dead = { targets = { upstream.dead_target() } } },
      routes = {
        { name = "api", prefix = "/api", upstream = "echo",
          cors = { origins = { "https://app.example.com" }, methods = { "GET", "PUT" } } },
        { name = "tenants", prefix = "/t", upstream = "echo", cors = { plugin = "tenants" } },
        { name = "dead", prefix = "/dead", upstream = "dead" },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  it("answers /healthz with every worker up", function()
    local res = admin("GET", "/healthz")
    assert.res_status(200, res)
    local j = cjson.decode(res.body)
    assert.same({ "ok", 2, 2 }, { j.status, j.workers, j.workers_up })
    assert.header(res, "content-type", "application/json")
  end)

  it("counts requests, CORS decisions by result and tenant, preflights and upstream errors", function()
    local before = admin("GET", "/metrics").body
    local function req(method, path, h) return http.request(gw:port(), method, path, h) end
    for _ = 1, 3 do
      assert.res_status(204, req("OPTIONS", "/api/x", { { "Origin", "https://app.example.com" },
        { "Access-Control-Request-Method", "PUT" } }))
    end
    assert.res_status(403, req("OPTIONS", "/api/x", { { "Origin", "https://app.example.com" },
      { "Access-Control-Request-Method", "DELETE" } }))
    assert.res_status(200, req("GET", "/api/x", { { "Origin", "https://evil.example" } }))
    assert.res_status(200, req("GET", "/api/x", { { "Origin", "https://app.example.com/x" } }))
    assert.res_status(200, req("GET", "/t/x", { { "Origin", "https://acme.tenants.test" } }))
    assert.res_status(200, req("GET", "/t/x", { { "Origin", "https://acme.tenants.test" } }))
    assert.res_status(200, req("GET", "/t/x", { { "Origin", "https://nobody.example" } }))
    assert.res_status(404, req("GET", "/nowhere", {}))
    assert.res_status(502, req("GET", "/dead", {}))
    local after = admin("GET", "/metrics")
    assert.res_status(200, after)
    assert.header(after, "content-type", "text/plain; version=0.0.4")
    local function delta(name, labels) return metric(after.body, name, labels) - metric(before, name, labels) end
    assert.equal(3, delta("corsgate_requests_total", '{route="api",status="204"}'))
    assert.equal(1, delta("corsgate_requests_total", '{route="api",status="403"}'))
    assert.equal(1, delta("corsgate_requests_total", '{route="",status="404"}'))
    assert.equal(1, delta("corsgate_requests_total", '{route="dead",status="502"}'))
    assert.equal(3, delta("corsgate_preflights_total", '{route="api",status="204",result="allowed"}'))
    assert.equal(1, delta("corsgate_preflights_total", '{route="api",status="403",result="refused"}'))
    assert.equal(3, delta("corsgate_cors_decisions_total", '{route="api",result="allowed",tenant=""}'))
    assert.equal(1, delta("corsgate_cors_decisions_total", '{route="api",result="refused-method",tenant=""}'))
    assert.equal(1, delta("corsgate_cors_decisions_total", '{route="api",result="refused-origin",tenant=""}'))
    assert.equal(1, delta("corsgate_cors_decisions_total", '{route="api",result="malformed-origin",tenant=""}'))
    assert.equal(2, delta("corsgate_cors_decisions_total", '{route="tenants",result="allowed",tenant="acme"}'))
    assert.equal(1, delta("corsgate_cors_decisions_total", '{route="tenants",result="refused-origin",tenant=""}'))
    assert.equal(1, delta("corsgate_upstream_errors_total", '{kind="connect"}'))
    assert.is_true(delta("corsgate_hook_duration_seconds_count") >= 2)
    assert.is_true(delta("corsgate_connections_total") >= 10)
    -- never a raw origin in a label
    assert.falsy(after.body:find("evil.example", 1, true), after.body)
    assert.falsy(after.body:find("nobody.example", 1, true), after.body)
  end)

  it("shows cache stats and purges by origin, by tenant and all", function()
    local function get(origin)
      assert.res_status(200, http.request(gw:port(), "GET", "/t/x", { { "Origin", origin } }))
    end
    -- a few rounds so both workers (SO_REUSEPORT spreads connections) cache them
    for _ = 1, 6 do
      get("https://globex.tenants.test")
      get("https://initech.tenants.test")
    end
    local stats = cjson.decode(admin("GET", "/cache").body)
    assert.is_true(stats.entries >= 2, cjson.encode(stats))
    assert.is_true(stats.bytes > 0)
    local res = admin("DELETE", "/cache?origin=" .. "https%3A%2F%2FGLOBEX.tenants.test%3A443")
    assert.res_status(200, res)
    assert.is_true(cjson.decode(res.body).purged >= 1, res.body)
    local explain = cjson.decode(admin("GET", "/explain?origin=https://globex.tenants.test&path=/t/x").body)
    for _, w in ipairs(explain.cache) do assert.equal("absent", w.state) end
    res = admin("DELETE", "/cache?tenant=initech")
    assert.is_true(cjson.decode(res.body).purged >= 1, res.body)
    assert.equal(0, cjson.decode(admin("DELETE", "/cache?tenant=initech").body).purged)
    get("https://acme.tenants.test")
    res = admin("DELETE", "/cache")
    assert.is_true(cjson.decode(res.body).purged >= 1, res.body)
    assert.equal(0, cjson.decode(admin("GET", "/cache").body).entries)
    assert.res_status(400, admin("DELETE", "/cache?origin=not-an-origin"))
  end)

  it("explains against the live state, cache included", function()
    assert.res_status(200, http.request(gw:port(), "GET", "/t/x", { { "Origin", "https://umbrella.tenants.test" } }))
    local res = admin("GET", "/explain?origin=" .. "https%3A%2F%2Fumbrella.tenants.test" .. "&method=PUT&path=/t/x")
    assert.res_status(200, res)
    local j = cjson.decode(res.body)
    assert.equal("tenants", j.route.name)
    assert.equal("umbrella", j.decided_by.tenant)
    assert.equal("refused-method", j.preflight.result)
    local fresh = 0
    for _, w in ipairs(j.cache) do
      if w.state == "fresh" then
        fresh = fresh + 1
        assert.is_true(w.allow)
        assert.equal("umbrella", w.tenant)
        assert.is_true(w.expires_in_ms > 0 and w.expires_in_ms <= 600000)
      end
    end
    assert.equal(1, fresh, res.body)
    assert.res_status(400, admin("GET", "/explain"))
  end)

  it("explains a cached decision whose tenant label holds quotes and a backslash as valid JSON", function()
    assert.res_status(200, http.request(gw:port(), "GET", "/t/x", { { "Origin", "https://quote.tenants.test" } }))
    local res = admin("GET", "/explain?origin=https%3A%2F%2Fquote.tenants.test&path=/t/x")
    assert.res_status(200, res)
    local ok, j = pcall(cjson.decode, res.body)
    assert.truthy(ok, res.body)
    local labels = {}
    for _, w in ipairs(j.cache) do if w.tenant then labels[#labels + 1] = w.tenant end end
    assert.same({ 'a "quoted" label\\' }, labels)
  end)

  it("explains every problem of a request, not only the first", function()
    local res = admin("GET", "/explain?origin=https%3A%2F%2Fevil.example&method=PATCH&header=X-A&header=X-B&path=/api/x")
    assert.res_status(200, res)
    local j = cjson.decode(res.body)
    local got = {}
    for _, p in ipairs(j.preflight.problems) do got[#got + 1] = p.result .. " " .. (p.arg or "") end
    assert.same({ "refused-origin ", "refused-method PATCH", "refused-header X-A", "refused-header X-B" }, got)
    assert.equal(403, j.preflight.status)
  end)

  it("answers 404 for unknown endpoints and 405 for wrong methods", function()
    assert.res_status(404, admin("GET", "/nope"))
    assert.res_status(405, admin("POST", "/metrics"))
  end)

  -- found by spec/fuzz/fuzz_admin (the same request whole and a byte at a time):
  -- each piece of a value split across reads counted as another Origin
  it("takes the console's own Origin however the request is split across reads", function()
    local req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1:%d\r\n\r\n"):format(admin_port,
      admin_port)
    local c = assert(http.connect(admin_port))
    assert.truthy(c:send_bytewise(req))
    local res, err = c:read_response()
    c:close()
    assert.res_status(200, res, err)
    assert.header(res, "content-type", "text/html; charset=utf-8")
  end)

  -- found by spec/fuzz/fuzz_admin: the JSON went out after the head too
  for _, case in ipairs({ { "/healthz", 200 }, { "/metrics", 405 }, { "/nope", 404 } }) do
    local path, want = case[1], case[2]
    it(("answers HEAD %s with a %d head alone, the body's length in Content-Length"):format(path, want), function()
      local res, err, c = http.raw(admin_port, "HEAD " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        { method = "HEAD" })
      assert.truthy(res, err)
      assert.res_status(want, res)
      assert.truthy(tonumber(res.headers:get("content-length")) > 0, res.raw_head)
      assert.equal("", c:read_all())
      c:close()
    end)
  end
end)

describe("admin API token", function()
  it("is required when configured, compared exactly", function()
    local port = proc.free_port()
    local token = "s3cret-token-0123456789"
    local gw = gateway.start({ admin = { listen = "127.0.0.1:" .. port, token = token },
      routes = { { name = "e", prefix = "/", upstream = "echo" } } })
    local function status(h)
      local res, err = http.request(port, "GET", "/healthz", h)
      assert.truthy(res, err)
      return res.status
    end
    assert.equal(401, status({}))
    assert.equal(401, status({ { "Authorization", "Bearer " .. token:sub(1, -2) } }))
    assert.equal(401, status({ { "Authorization", "Bearer " .. token .. "x" } }))
    assert.equal(401, status({ { "Authorization", token } }))
    -- two headers are not one token (found with spec/fuzz/fuzz_admin's invariant: they were joined)
    assert.equal(401, status({ { "Authorization", "Bearer " .. token:sub(1, 9) }, { "Authorization", token:sub(10) } }))
    assert.equal(200, status({ { "Authorization", "Bearer " .. token } }))
    gw:stop_clean()
  end)

  it("is taken from CORSGATE_ADMIN_TOKEN", function()
    local port = proc.free_port()
    local gw = gateway.start({ admin = { listen = "127.0.0.1:" .. port },
      routes = { { name = "e", prefix = "/", upstream = "echo" } } }, { env = { CORSGATE_ADMIN_TOKEN = "from-the-env-0123456" } })
    assert.equal(401, http.request(port, "GET", "/healthz", {}).status)
    assert.equal(200, http.request(port, "GET", "/healthz", { { "Authorization", "Bearer from-the-env-0123456" } }).status)
    gw:stop_clean()
  end)

  it("must be set for a non-loopback admin address", function()
    local code, out = gateway.check({ admin = { listen = "0.0.0.0:9901" },
      routes = { { name = "e", prefix = "/", upstream = "echo" } } })
    assert.equal(2, code)
    assert.matches("admin%.token: required when admin%.listen is not a loopback address", out)
    code, out = gateway.check({ admin = { listen = "127.0.0.1:9901", token = "short" },
      routes = { { name = "e", prefix = "/", upstream = "echo" } } })
    assert.equal(2, code)
    assert.matches("admin%.token: too short", out)
  end)
end)

describe("admin API against slow and many clients", function()
  local socket = require("socket")
  local gw, admin_port

  lazy_setup(function()
    admin_port = proc.free_port()
    gw = gateway.start({
      admin = { listen = "127.0.0.1:" .. admin_port },
      timeouts = { head = 1, body = 1 },
      routes = { { prefix = "/", static = { status = 200, body = "ok\n" } } },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
  end)

  local function open(partial)
    local c = assert(socket.tcp())
    c:settimeout(5 * gateway.slowdown)
    assert(c:connect("127.0.0.1", admin_port))
    if partial then c:send(partial) end
    return c
  end

  it("answers 408 to a request that does not arrive in time, head or body", function()
    for _, partial in ipairs({ "GET /heal", "PUT /tenants/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc" }) do
      local c = open(partial)
      local t0 = socket.gettime()
      local line = c:receive("*l")
      c:close()
      assert.equal("HTTP/1.1 408 Request Timeout", line, partial)
      local took = socket.gettime() - t0
      assert.truthy(took >= 0.8 and took < 3 * gateway.slowdown, ("answered after %.2f s"):format(took))
    end
  end)

  it("holds at most 64 connections: a new one takes the place of the oldest still sending, so a health check gets in", function()
    local held = {}
    for i = 1, 64 do held[i] = open("GET /healthz HTTP/1.1\r\n") end
    socket.sleep(0.2)
    -- a 65th, whole request is served while 64 half-sent ones are held
    local probe = open("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert.equal("HTTP/1.1 200 OK", probe:receive("*l"))
    probe:close()
    -- the oldest half-sent one made room: closed without an answer
    local got, err = held[1]:receive("*a")
    assert.equal("", got or "", "the oldest held connection got an answer")
    assert.truthy(err == nil or err == "closed", err)
    -- the newest one held was left alone: still open, waiting for its request's end
    held[64]:settimeout(0.1)
    local _, err2 = held[64]:receive(1)
    assert.equal("timeout", err2)
    for _, c in ipairs(held) do c:close() end
  end)

  it("does not keep the process from stopping on SIGTERM with a request half sent", function()
    local c = open("GET /hea")
    socket.sleep(0.1)
    local t0 = socket.gettime()
    gw:signal("TERM")
    assert.truthy(gw:wait_exit(3 * gateway.slowdown), "still running 3 s after SIGTERM")
    assert.truthy(socket.gettime() - t0 < 0.9, "it waited for the half-sent request")
    c:close()
  end)
end)
