-- access_log = "json": one JSON object per request on stderr with what an
-- on-call engineer filters on and where the time went.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local upstream = require("spec.support.upstream")
local cjson = require("cjson")
require("spec.support.assert")

describe("JSON access log", function()
  local gw, up, dir

  lazy_setup(function()
    up = upstream.start()
    dir = proc.tmpdir("alog")
    proc.write_file(dir .. "/tenants.lua", [[
local _M = {}
function _M.origin(ctx)
  local t = ctx.host:match("^(%w+)%.tenants%.test$")
  if not t then return false end
  return { allow = true, tenant = t }
end
return _M
]])
    gw = gateway.start({
      access_log = "json",
      plugin_paths = { dir },
      upstreams = { api = { targets = { up:target() } } },
      routes = {
        { name = "static", prefix = "/s", upstream = "api", cors = { origins = { "https://app.example" } } },
        { name = "tenants", prefix = "/t", upstream = "api", cors = { plugin = "tenants", methods = { "GET", "PUT" } } },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    if up then up:stop() end
    proc.rmdir_all(dir)
  end)

  -- the log's JSON lines for path, in order
  local function entries(path)
    local out = {}
    for line in gw:log():gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then
        local e = cjson.decode(line)
        if e.path == path then out[#out + 1] = e end
      end
    end
    return out
  end

  it("logs a proxied request with its CORS decision and upstream time", function()
    http.request(gw:port(), "GET", "/s/one?x=1", { { "Origin", "https://app.example" } })
    local e = assert(proc.wait_for(function() return entries("/s/one?x=1")[1] end, 5), gw:log_tail(5))
    assert.equal("static", e.route)
    assert.equal("localhost", e.host)
    assert.equal("HTTP/1.1", e.proto)
    assert.equal("GET", e.method)
    assert.equal(200, e.status)
    assert.equal("https://app.example", e.origin)
    assert.equal("allowed", e.decision)
    assert.equal(cjson.null, e.tenant)
    assert.equal(cjson.null, e.cache)
    assert.is_number(e.upstream_ms)
    assert.truthy(e.bytes > 0)
    assert.is_number(e.duration_ms)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", e.time)
  end)

  it("logs refusals, plugin decisions with tenant and cache result, and escapes what the client sent", function()
    http.request(gw:port(), "GET", "/s/two", { { "Origin", "https://evil.example" } })
    http.request(gw:port(), "OPTIONS", "/t/p", { { "Origin", "https://acme.tenants.test" },
      { "Access-Control-Request-Method", "PUT" } })
    http.request(gw:port(), "OPTIONS", "/t/p", { { "Origin", "https://acme.tenants.test" },
      { "Access-Control-Request-Method", "PUT" } })
    http.request(gw:port(), "GET", '/s/"q"', { { "Origin", 'https://a"b' } })
    local two = assert(proc.wait_for(function() return entries("/s/two")[1] end, 5))
    assert.equal("refused-origin", two.decision)
    local p = assert(proc.wait_for(function() local l = entries("/t/p") return #l == 2 and l end, 5), gw:log_tail(5))
    assert.equal("acme", p[1].tenant)
    assert.equal("allowed", p[1].decision)
    assert.equal(204, p[1].status)
    assert.equal("miss", p[1].cache)
    assert.is_number(p[1].hook_ms)
    assert.equal("hit", p[2].cache)
    assert.equal(cjson.null, p[1].upstream_ms) -- answered by the gateway
    local q = assert(proc.wait_for(function() return entries('/s/"q"')[1] end, 5), gw:log_tail(5))
    assert.equal('https://a"b', q.origin)
    assert.equal("malformed-origin", q.decision)
  end)

  it("logs the host a request was routed by: an absolute-form target's authority, not the Host it replaced", function()
    local res, err = http.raw(gw:port(), "GET http://api.example:8080/s/abs HTTP/1.1\r\nHost: other.example\r\n\r\n")
    assert.truthy(res, err)
    local e = assert(proc.wait_for(function() return entries("/s/abs")[1] end, 5), gw:log_tail(5))
    assert.equal("api.example:8080", e.host)
    assert.matches("the target's authority api%.example:8080 replaces Host other%.example", gw:log())
  end)

  it("names the protocol a refused request came in on", function()
    local res, err = http.raw(gw:port(), "GET /s/v2 HTTP/2.0\r\nHost: x\r\n\r\n")
    assert.res_status(505, res, err or gw)
    res, err = http.raw(gw:port(), "GET /s/v10 HTTP/1.0\r\nX-A: a\rb\r\n\r\n")
    assert.res_status(400, res, err or gw)
    local v2 = assert(proc.wait_for(function() return entries("/s/v2")[1] end, 5), gw:log_tail(5))
    assert.same({ "HTTP/2.0", 505 }, { v2.proto, v2.status })
    local v10 = assert(proc.wait_for(function() return entries("/s/v10")[1] end, 5), gw:log_tail(5))
    assert.same({ "HTTP/1.0", 400 }, { v10.proto, v10.status })
  end)

  it("refuses an unknown format at load", function()
    local code, out = gateway.check({ access_log = "xml", routes = { { name = "a", prefix = "/", upstream = "echo" } } })
    assert.equal(2, code)
    assert.matches('access_log: expected true, false, "text" or "json", got "xml"', out, 1, true)
  end)
end)
