-- GET /refused on the admin API: the origins refused most, with the route,
-- the reason (and the method or header refused), the tenant a plugin named,
-- counts and first and last seen, merged from every worker's fixed-size
-- summary. What on-call reads to answer "why does this app get a CORS error?".
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local cjson = require("cjson")
require("spec.support.assert")

local PLUGIN = [[
return { origin = function(ctx)
  if ctx.origin:find("acme", 1, true) then return { allow = false, tenant = "acme" } end
  return false
end }
]]

describe("top refused origins", function()
  local gw, dir, admin_port

  local function refused(query)
    local res = assert(http.request(admin_port, "GET", "/refused" .. (query or ""), {}))
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function find(list, origin, reason)
    for _, e in ipairs(list) do
      if e.origin == origin and (not reason or e.reason == reason) then return e end
    end
  end

  local function preflight(c, path, origin, method, headers)
    local h = { { "Origin", origin }, { "Access-Control-Request-Method", method or "PUT" } }
    if headers then h[#h + 1] = { "Access-Control-Request-Headers", headers } end
    local res, err = c:request("OPTIONS", path, h)
    assert.truthy(res, err)
    return res
  end

  lazy_setup(function()
    dir = proc.tmpdir("refused")
    proc.write_file(dir .. "/deny_acme.lua", PLUGIN)
    admin_port = proc.free_port()
    gw = gateway.start({
      workers = 2,
      admin = { listen = "127.0.0.1:" .. admin_port },
      plugin_paths = { dir },
      routes = {
        { name = "api", prefix = "/api", upstream = "echo",
          cors = { origins = { "https://app.example.com" }, methods = { "GET", "PUT" }, headers = { "Content-Type" } } },
        { name = "tenants", prefix = "/t", upstream = "echo", cors = { plugin = "deny_acme" } },
      },
    })
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
    proc.rmdir_all(dir)
  end)

  it("lists each refusal with its route, reason, method or header, tenant, count and times", function()
    local c = assert(http.connect(gw:port()))
    for _ = 1, 5 do preflight(c, "/api/x", "https://evil.test") end
    for _ = 1, 3 do preflight(c, "/api/x", "https://app.example.com", "PATCH") end
    for _ = 1, 2 do preflight(c, "/api/x", "https://app.example.com", "PUT", "X-Secret") end
    for _ = 1, 2 do preflight(c, "/t/x", "https://app.acme.test") end
    preflight(c, "/api/x", "https://app.example.com") -- allowed: not listed
    local res = assert(c:request("GET", "/api/x", { { "Origin", 'https://bad"origin' } }))
    assert.equal(200, res.status)
    c:close()
    local j = refused()
    assert.equal(2, j.workers)
    local e = find(j.refused, "https://evil.test", "refused-origin")
    assert.truthy(e, res.body)
    assert.same({ "api", 5, 0 }, { e.route, e.count, e.error })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", e.first_seen)
    assert.truthy(e.first_seen <= e.last_seen)
    e = find(j.refused, "https://app.example.com", "refused-method")
    assert.same({ "PATCH", 3 }, { e and e.method, e and e.count })
    e = find(j.refused, "https://app.example.com", "refused-header")
    assert.same({ "x-secret", 2 }, { e and e.header and e.header:lower(), e and e.count })
    e = find(j.refused, "https://app.acme.test", "refused-origin")
    assert.same({ "tenants", "acme", 2 }, { e and e.route, e and e.tenant, e and e.count })
    e = find(j.refused, 'https://bad"origin', "malformed-origin")
    assert.truthy(e, "a malformed origin is listed as sent, escaped in the JSON")
    assert.is_nil(find(j.refused, "https://app.example.com", "allowed"))
    assert.equal("https://evil.test", j.refused[1].origin, "sorted by count")
  end)

  it("keeps fixed memory under thousands of distinct refused origins, the frequent one on top", function()
    local c = assert(http.connect(gw:port()))
    for i = 1, 3000 do
      preflight(c, "/api/x", "https://noise" .. i .. ".test")
      if i % 10 == 0 then preflight(c, "/api/x", "https://heavy.test") end
    end
    c:close()
    local j = refused("?limit=0")
    assert.truthy(#j.refused <= 2 * 100, #j.refused .. " entries kept for 2 workers of 100")
    local top = j.refused[1]
    assert.equal("https://heavy.test", top.origin)
    -- space-saving: the count never under-states, and over-states by at most error
    assert.truthy(top.count >= 300 and top.count - top.error <= 300, cjson.encode(top))
    assert.equal(5, #refused("?limit=5").refused)
    -- the same origin refused on both workers (new connections land on either):
    -- the merged count still never under-states
    for _ = 1, 20 do
      local res = assert(http.request(gw:port(), "OPTIONS", "/api/x", { { "Origin", "https://heavy.test" },
        { "Access-Control-Request-Method", "PUT" } }))
      assert.equal(403, res.status)
    end
    top = refused("?limit=1").refused[1]
    assert.equal("https://heavy.test", top.origin)
    assert.truthy(top.count >= 320 and top.count - top.error <= 320, cjson.encode(top))
  end)

  it("lists several Origin headers as a problem, not under one of them", function()
    local res = assert(http.raw(gw:port(), "OPTIONS /api/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n"
      .. "Origin: https://other.test\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n"))
    assert.equal(403, res.status)
    local e = find(refused("?limit=0").refused, "", "malformed-origin")
    assert.truthy(e, "no entry for several Origin headers")
    assert.equal("several Origin headers", e.problem)
  end)
end)
