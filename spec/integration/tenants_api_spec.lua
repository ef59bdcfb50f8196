-- The admin API's /tenants: the tenant store (plugins/tenant_redis.lua's keys
-- in a real redis-server) written and read over HTTP by two instances of two
-- workers each, with every write's invalidation reaching both.
local gateway = require("spec.support.gateway")
local http = require("spec.support.http")
local proc = require("spec.support.proc")
local redis = require("spec.support.redis")
local socket = require("socket")
local cjson = require("cjson")
local fleet = require("spec.support.fleet")
require("spec.support.assert")

local TOKEN = "tenants-api-token-0123456789"

local function preflight(port, origin)
  return http.request(port, "OPTIONS", "/api/x", { { "Origin", origin },
    { "Access-Control-Request-Method", "PUT" } })
end

-- Every worker of an instance (new connections land on either).
local function all_say(port, origin, want, n)
  for _ = 1, n or 16 do
    local res = preflight(port, origin)
    if not res or res.headers:get("access-control-allow-origin") ~= want then return false end
  end
  return true
end

local function start(r) return fleet.start(r, nil, TOKEN) end

-- method path [body] [token] -> status, decoded JSON (or the raw body), response
local function api(gw, method, path, body, token)
  local headers = { { "Authorization", "Bearer " .. (token or TOKEN) } }
  if body then headers[#headers + 1] = { "Content-Type", "application/json" } end
  local res = http.request(gw.admin_port, method, path, headers,
    type(body) == "table" and cjson.encode(body) or body)
  assert(res, "no answer from the admin API")
  local ok, doc = pcall(cjson.decode, res.body)
  return res.status, ok and doc or res.body, res
end

-- Visible on every worker of both instances within 1 s; returns the time.
local function everywhere(insts, origin, want)
  local t0 = socket.gettime()
  local seen = proc.wait_for(function()
    for _, gw in ipairs(insts) do
      if not all_say(gw:port(), origin, want) then return false end
    end
    return true
  end, 1.0 * gateway.slowdown, 0.02)
  return seen, socket.gettime() - t0
end

local load_file = fleet.load

describe("admin API /tenants", function()
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

  it("PUT /tenants/{name} creates a tenant (201) that every worker of both instances serves within 1 s", function()
    -- refused and cached as refused for an hour: only the PUT's invalidation can change that
    assert.truthy(all_say(a:port(), "https://app.acme.test", nil))
    assert.truthy(all_say(b:port(), "https://app.acme.test", nil))
    local status, doc = api(a, "PUT", "/tenants/acme", { origins = { "https://app.acme.test", "HTTPS://Api.Acme.test:443" },
      credentials = true, expose_headers = { "X-Request-Id" } })
    assert.equal(201, status, cjson.encode(doc))
    assert.same({ "acme" }, doc.created)
    assert.equal(2, doc.written)
    assert.equal(2, doc.listeners) -- both instances heard the invalidation
    local seen, took = everywhere({ a, b }, "https://app.acme.test", "https://app.acme.test")
    assert.truthy(seen, ("not visible everywhere after %.2f s\n%s"):format(took, a:log_tail(10)))
    print(("\n[tenants api] a new tenant served by both instances (4 workers) %.0f ms after PUT"):format(took * 1000))
    local res = preflight(b:port(), "https://api.acme.test")
    assert.equal("https://api.acme.test", res.headers:get("access-control-allow-origin"))
    assert.equal("true", res.headers:get("access-control-allow-credentials"))
    -- what Redis holds is what tenant_redis reads
    assert.equal("acme", r:cli("HGET", "corsgate:origin:https://api.acme.test", "tenant"))
    assert.equal("2", r:cli("SCARD", "corsgate:tenant:acme:origins"))
    -- GET gives back what PUT takes, origins normalized
    local gs, got = api(b, "GET", "/tenants/acme")
    assert.equal(200, gs)
    assert.equal("acme", got.name)
    assert.same({ "https://api.acme.test", "https://app.acme.test" }, got.tenant.origins)
    assert.equal(true, got.tenant.credentials)
    assert.same({ "X-Request-Id" }, got.tenant.expose_headers)
  end)

  it("a second PUT replaces the tenant (200): the origin it no longer lists is refused everywhere within 1 s", function()
    assert.equal(201, (api(a, "PUT", "/tenants/initech", { origins = { "https://one.initech.test", "https://two.initech.test" } })))
    assert.truthy(everywhere({ a, b }, "https://two.initech.test", "https://two.initech.test"))
    local status, doc = api(b, "PUT", "/tenants/initech", { origins = { "https://one.initech.test" } })
    assert.equal(200, status, cjson.encode(doc))
    assert.same({}, doc.created)
    assert.equal(1, doc.removed)
    local seen, took = everywhere({ a, b }, "https://two.initech.test", nil)
    assert.truthy(seen, ("still served after %.2f s"):format(took))
    assert.truthy(all_say(a:port(), "https://one.initech.test", "https://one.initech.test"))
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://two.initech.test"))
  end)

  it("a bad body gets 400 with each problem's path, and nothing is written", function()
    api(a, "PUT", "/tenants/hooli", { origins = { "https://hooli.test" } })
    local before = r:cli("HGETALL", "corsgate:origin:https://hooli.test")
    local version = r:cli("GET", "corsgate:tenants:version")
    local status, doc = api(a, "PUT", "/tenants/hooli", { origins = { "https://hooli.test", "https://x.test/path", 7 },
      credentials = true, expose_headers = "*", max_age = -1, colour = "blue" })
    assert.equal(400, status)
    local all = table.concat(doc.problems, "\n")
    assert.matches("origins%[2%]: an origin has no path", all)
    assert.matches("origins%[3%]: expected a string", all)
    assert.matches('expose_headers: "%*" with credentials', all)
    assert.matches("max_age: expected a whole number", all)
    assert.matches("colour: unknown key", all)
    assert.equal(5, #doc.problems)
    assert.matches("nothing written", doc.error)
    assert.equal(before, r:cli("HGETALL", "corsgate:origin:https://hooli.test"))
    assert.equal(version, r:cli("GET", "corsgate:tenants:version"))
    -- what is not a list of names is a problem, never a Lua error
    status, doc = api(a, "PUT", "/tenants/hooli", '{"origins":{"a":"https://x.test"},"methods":[true],"headers":[{}]}')
    assert.equal(400, status, cjson.encode(doc))
    assert.same({ "origins: required: a list of origins", "headers[1]: not a header name: a table",
      "methods[1]: not a header name: a boolean" }, doc.problems)
    status, doc = api(a, "PUT", "/tenants/hooli", "{not json")
    assert.equal(400, status)
    assert.matches("not JSON", doc.problems[1])
    status, doc = api(a, "PUT", "/tenants/hooli", "null")
    assert.equal(400, status)
    assert.matches("expected an object", doc.problems[1])
    status, doc = api(a, "PUT", "/tenants/bad%20name", { origins = {} })
    assert.equal(400, status)
    assert.matches("name: a tenant name", doc.problems[1])
    status = api(a, "PUT", "/tenants/x/y", { origins = {} })
    assert.equal(404, status)
    -- over 1 MiB: refused from its Content-Length, before a byte of it is sent
    local c = assert(http.connect(a.admin_port))
    c:send(("PUT /tenants/hooli HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"):format(
      TOKEN, 1024 * 1024 + 1))
    local big = c:read_response()
    c:close()
    assert.equal(413, big.status)
    assert.matches("over 1048576 bytes", big.body)
    status = api(a, "POST", "/tenants/hooli", "{}")
    assert.equal(405, status)
    assert.equal(before, r:cli("HGETALL", "corsgate:origin:https://hooli.test"))
  end)

  it("refuses what the gateway would refuse: origins it takes as malformed, max_age over a day, credentials on plain http", function()
    -- each would be stored and then fail closed on every request (or never match)
    for _, case in ipairs({
      { { origins = { "https://app.example." } }, "origins%[1%]: invalid host" },
      { { origins = { "https://1.2.3" } }, "origins%[1%]: invalid host" },
      { { origins = { "https://0x7f.1" } }, "origins%[1%]: invalid host" },
      { { origins = { "https://a]b[c" } }, "origins%[1%]: invalid host" },
      { { origins = { "https://a..b.test" } }, "origins%[1%]: invalid host" },
      { { origins = { "https://" .. ("a"):rep(250) .. ".test" } }, "origins%[1%]: longer than 255 bytes" },
      { { origins = { "https://ok.test" }, max_age = 90000 }, "max_age: expected a whole number of seconds %(at most a day%)" },
      { { origins = { "https://ok.test", "http://app.example.test" }, credentials = true }, "origins%[2%]: http://app.example.test is plain http" },
    }) do
      local status, doc = api(a, "PUT", "/tenants/strict", case[1])
      assert.equal(400, status, cjson.encode(case[1]))
      assert.matches(case[2], table.concat(doc.problems, "\n"))
    end
    assert.equal("", r:cli("EXISTS", "corsgate:tenant:strict"):gsub("0", ""))
    -- what browsers do send, the gateway takes: underscores, loopback over http with credentials, an IPv4 quad
    local status = api(a, "PUT", "/tenants/strict", { origins = { "https://my_app.example.test",
      "http://localhost:3000", "http://127.0.0.1:8080", "https://10.1.2.3" }, credentials = true, max_age = 86400 })
    assert.equal(201, status)
    assert.truthy(everywhere({ a, b }, "https://my_app.example.test", "https://my_app.example.test"))
    assert.truthy(everywhere({ a, b }, "http://localhost:3000", "http://localhost:3000"))
    api(a, "DELETE", "/tenants/strict")
  end)

  it("an origin another tenant owns is refused with 409 naming the owner; ?takeover=true moves it on purpose", function()
    assert.equal(201, (api(a, "PUT", "/tenants/globex", { origins = { "https://shared.test" } })))
    assert.truthy(everywhere({ a, b }, "https://shared.test", "https://shared.test"))
    local status, doc, res = api(b, "PUT", "/tenants/umbrella", { origins = { "https://own.umbrella.test", "https://shared.test:0443" } })
    assert.equal(409, status, cjson.encode(doc))
    assert.equal("Conflict", res.reason)
    assert.same({ { origin = "https://shared.test", owner = "globex", path = "origins[2]" } }, doc.conflicts)
    assert.matches("nothing written", doc.error)
    assert.equal("0", r:cli("EXISTS", "corsgate:tenant:umbrella"))
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://own.umbrella.test"))
    assert.equal("globex", r:cli("HGET", "corsgate:origin:https://shared.test", "tenant"))
    status, doc = api(b, "PUT", "/tenants/umbrella?takeover=true", { origins = { "https://own.umbrella.test", "https://shared.test:0443" } })
    assert.equal(201, status, cjson.encode(doc))
    assert.same({ { origin = "https://shared.test", from = "globex", to = "umbrella" } }, doc.moved)
    assert.equal("umbrella", r:cli("HGET", "corsgate:origin:https://shared.test", "tenant"))
    assert.equal("0", r:cli("SISMEMBER", "corsgate:tenant:globex:origins", "https://shared.test"))
    local _, owner = api(a, "GET", "/tenants?origin=https://shared.test")
    assert.equal("umbrella", owner.tenant)
    -- globex keeps its other state; a later PUT of globex without the origin does not take it back
    assert.equal(200, (api(a, "PUT", "/tenants/globex", { origins = {} })))
    assert.equal("umbrella", r:cli("HGET", "corsgate:origin:https://shared.test", "tenant"))
  end)

  it("two PUTs racing for one origin: exactly one tenant gets it, the other gets 409", function()
    local results = {}
    local function put(name)
      local c = assert(http.connect(a.admin_port))
      local body = cjson.encode({ origins = { "https://race.test" } })
      c:send(("PUT /tenants/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"):format(
        name, TOKEN, #body, body))
      return c
    end
    local c1, c2 = put("race-one"), put("race-two")
    for i, c in ipairs({ c1, c2 }) do
      local res = c:read_response()
      results[i] = res.status
      c:close()
    end
    table.sort(results)
    assert.same({ 201, 409 }, results)
    local owner = r:cli("HGET", "corsgate:origin:https://race.test", "tenant")
    assert.truthy(owner == "race-one" or owner == "race-two")
    assert.equal("1", r:cli("SCARD", "corsgate:tenant:" .. owner .. ":origins"))
  end)

  it("GET /tenants?origin= says who owns an origin (normalized), 404 when nobody does, 400 for a non-origin", function()
    api(a, "PUT", "/tenants/hooli", { origins = { "https://hooli.test:8443" }, allowed = false })
    local status, doc = api(a, "GET", "/tenants?origin=" .. "HTTPS%3A%2F%2FHooli.test%3A8443")
    assert.equal(200, status)
    assert.same({ origin = "https://hooli.test:8443", tenant = "hooli", allowed = false }, doc)
    status, doc = api(a, "GET", "/tenants?origin=https://nobody.test")
    assert.equal(404, status)
    assert.matches("no tenant owns https://nobody.test", doc.error)
    status, doc = api(a, "GET", "/tenants?origin=https://x.test/path")
    assert.equal(400, status)
    assert.matches("origin: an origin has no path", doc.error)
    status = api(a, "GET", "/tenants/nobody")
    assert.equal(404, status)
  end)

  it("GET /tenants pages through every tenant in name order, also those loaded by tenants-load, and filters by prefix", function()
    local tenants = {}
    for i = 1, 250 do tenants[("page%03d"):format(i)] = { origins = { ("https://t%d.page.test"):format(i) } } end
    local rc, out = load_file(r, { tenants = tenants })
    assert.equal(0, rc, out)
    local names, after, pages = {}, nil, 0
    repeat
      local status, doc = api(b, "GET", "/tenants?match=page&limit=100" .. (after and "&after=" .. after or ""))
      assert.equal(200, status)
      for _, t in ipairs(doc.tenants) do
        names[#names + 1] = t.name
        assert.equal(1, t.origins)
      end
      after = doc.next ~= cjson.null and doc.next or nil
      pages = pages + 1
    until not after or pages > 5
    assert.equal(3, pages)
    assert.equal(250, #names)
    for i = 1, 250 do assert.equal(("page%03d"):format(i), names[i]) end
    local _, doc = api(b, "GET", "/tenants?limit=1000")
    assert.truthy(doc.total >= 250)
    -- an "after" that sorts before the prefix starts at the prefix; a limit that is no number is the default
    local _, first = api(b, "GET", "/tenants?match=page&after=aaa&limit=1")
    assert.same({ "page001" }, { first.tenants[1].name })
    _, doc = api(b, "GET", "/tenants?match=page&limit=many")
    assert.equal(100, #doc.tenants)
  end)

  it("lists tenants written before the listing index existed", function()
    -- as an earlier version's tenants-load left them: no corsgate:tenants index
    r:cli("HSET", "corsgate:tenant:legacy", "policy", '{"origins":["https://legacy.test"]}')
    r:cli("SADD", "corsgate:tenant:legacy:origins", "https://legacy.test")
    r:cli("DEL", "corsgate:tenants", "corsgate:tenants:complete")
    local status, doc = api(a, "GET", "/tenants?match=leg")
    assert.equal(200, status)
    assert.same({ { name = "legacy", origins = 1, allowed = true } }, doc.tenants)
    local _, all = api(a, "GET", "/tenants?limit=1000")
    assert.truthy(all.total >= 250)
  end)

  it("DELETE /tenants/{name} removes the tenant and its origins everywhere within 1 s; again is 404", function()
    assert.equal(201, (api(a, "PUT", "/tenants/gone", { origins = { "https://gone.test" } })))
    assert.truthy(everywhere({ a, b }, "https://gone.test", "https://gone.test"))
    local status, doc = api(b, "DELETE", "/tenants/gone")
    assert.equal(200, status, cjson.encode(doc))
    local seen, took = everywhere({ a, b }, "https://gone.test", nil)
    assert.truthy(seen, ("still served after %.2f s"):format(took))
    assert.equal("0", r:cli("EXISTS", "corsgate:tenant:gone"))
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://gone.test"))
    assert.equal("0", r:cli("ZSCORE", "corsgate:tenants", "gone") == "" and "0" or "1")
    status = api(b, "DELETE", "/tenants/gone")
    assert.equal(404, status)
  end)

  it("needs the token: a wrong one gets 401 and writes nothing", function()
    local status, doc = api(a, "PUT", "/tenants/intruder", { origins = { "https://evil.test" } }, "wrong-token-0123456789")
    assert.equal(401, status)
    assert.matches("Bearer token is required", doc.error)
    assert.equal("0", r:cli("EXISTS", "corsgate:tenant:intruder"))
    -- a large body with a wrong token: answered from its head, before the body
    -- is read (the rest is read and dropped for a while, so a client does not
    -- meet a reset instead of the answer; on loopback the reset did not show)
    local body = '{"origins": [' .. string.rep('"https://x.test", ', 30000) .. '"https://y.test"]}'
    local c = assert(http.connect(a.admin_port))
    c:send(("PUT /tenants/intruder HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\n"
      .. "Content-Length: %d\r\n\r\n%s"):format(#body, body))
    local res, err = c:read_response()
    c:close()
    assert.truthy(res, err)
    assert.equal(401, res.status)
    assert.equal("0", r:cli("EXISTS", "corsgate:tenant:intruder"))
  end)

  it("keys of other data under the prefix: 500 naming them, and nothing is written", function()
    r:cli("SET", "corsgate:origin:https://clash.test", "not a hash")
    local status, doc = api(a, "PUT", "/tenants/clash", { origins = { "https://ok.clash.test", "https://clash.test" } })
    assert.equal(500, status)
    assert.matches("corsgate:origin:https://clash.test is a string, not a hash", doc.problems[1])
    assert.equal("0", r:cli("EXISTS", "corsgate:origin:https://ok.clash.test"))
    r:cli("DEL", "corsgate:origin:https://clash.test")
  end)

  it("tenants-load refuses to move an origin another tenant owns, and --takeover moves it", function()
    assert.equal(201, (api(a, "PUT", "/tenants/owner", { origins = { "https://owned.test" } })))
    local rc, out = load_file(r, { tenants = { thief = { origins = { "https://owned.test" } } } })
    assert.equal(1, rc, out)
    assert.matches("tenants.thief.origins%[1%]: https://owned.test belongs to tenant owner %(%-%-takeover moves it%)", out)
    assert.matches("nothing written", out)
    assert.equal("owner", r:cli("HGET", "corsgate:origin:https://owned.test", "tenant"))
    rc, out = load_file(r, { tenants = { thief = { origins = { "https://owned.test" } } } }, "--takeover")
    assert.equal(0, rc, out)
    assert.equal("thief", r:cli("HGET", "corsgate:origin:https://owned.test", "tenant"))
    assert.truthy(everywhere({ a, b }, "https://owned.test", "https://owned.test"))
    -- a file that moves an origin between two tenants it lists both of is no surprise: no flag needed
    rc, out = load_file(r, { tenants = { thief = { origins = {} }, owner = { origins = { "https://owned.test" } } } })
    assert.equal(0, rc, out)
    assert.equal("owner", r:cli("HGET", "corsgate:origin:https://owned.test", "tenant"))
  end)

  it("Redis down: 503 saying so, no worker hurt; back up, the API works again", function()
    r:kill()
    local status, doc = api(a, "PUT", "/tenants/later", { origins = { "https://later.test" } })
    assert.equal(503, status)
    assert.matches("not reachable", doc.error)
    assert.truthy(a:alive())
    r:restart()
    local ok = proc.wait_for(function()
      return (api(a, "PUT", "/tenants/later", { origins = { "https://later.test" } })) == 201
    end, 10 * gateway.slowdown, 0.1)
    assert.truthy(ok, a:log_tail(10))
  end)
end)

describe("admin API /tenants, checked against the tenant_redis routes' own defaults", function()
  local r, creds, expose

  -- an instance whose tenant_redis route has cors extra (credentials, expose_headers)
  local function with(extra)
    local cors = { plugin = "tenant_redis", methods = { "GET", "PUT" } }
    for k, v in pairs(extra) do cors[k] = v end
    return fleet.start(r, { routes = { { name = "api", prefix = "/api", upstream = "echo", cors = cors } } }, TOKEN)
  end

  local function served(g, origin)
    return proc.wait_for(function() return all_say(g:port(), origin, origin) end, 1 * gateway.slowdown, 0.02)
  end

  lazy_setup(function()
    r = redis.start()
    creds = with({ credentials = true })
    expose = with({ expose_headers = "*" })
  end)

  lazy_teardown(function()
    if creds then creds:stop_clean() end
    if expose then expose:stop_clean() end
    if r then r:stop() end
  end)

  it("credentials by default: refuses a tenant answered with Expose-Headers \"*\" or on a plain-http origin", function()
    local status, doc = api(creds, "PUT", "/tenants/acme", { origins = { "https://app.acme.test" }, expose_headers = "*" })
    assert.equal(400, status)
    assert.matches('expose_headers: "%*" with credentials .*%(the route sends credentials by default%)', doc.problems[1])
    status, doc = api(creds, "PUT", "/tenants/acme", { origins = { "http://app.acme.test" } })
    assert.equal(400, status)
    assert.matches("origins%[1%]: http://app.acme.test is plain http", doc.problems[1])
    -- the tenant that says it sends none is fine
    status = api(creds, "PUT", "/tenants/acme", { origins = { "http://app.acme.test" }, expose_headers = "*",
      credentials = false })
    assert.equal(201, status)
    assert.truthy(served(creds, "http://app.acme.test"))
  end)

  it("\"*\" exposed by default: refuses a tenant with credentials that does not list its own expose_headers", function()
    local status, doc = api(expose, "PUT", "/tenants/initech", { origins = { "https://app.initech.test" },
      credentials = true })
    assert.equal(400, status)
    assert.matches('credentials: the route exposes "%*" by default', doc.problems[1])
    status = api(expose, "PUT", "/tenants/initech", { origins = { "https://app.initech.test" }, credentials = true,
      expose_headers = { "X-Request-Id" } })
    assert.equal(201, status)
    assert.truthy(served(expose, "https://app.initech.test"))
  end)
end)

describe("admin API without a token (loopback)", function()
  local gw, admin_port

  lazy_setup(function()
    gw = gateway.start_loopback_admin()
    admin_port = gw.admin_port
  end)

  lazy_teardown(function()
    if gw then gw:stop_clean() end
  end)

  it("says there is no tenant store (404) when the config has no redis", function()
    local res = http.request(admin_port, "GET", "/tenants", {})
    assert.equal(404, res.status)
    assert.matches("no tenant store", res.body)
  end)

  it("answers only loopback names in Host: a page on a rebound name of its own gets 403", function()
    for _, host in ipairs({ "127.0.0.1:" .. admin_port, "localhost", "[::1]:" .. admin_port, "127.0.0.1" }) do
      assert.equal(200, http.request(admin_port, "GET", "/healthz", { { "Host", host } }).status, host)
    end
    for _, host in ipairs({ "evil.test", "evil.test:" .. admin_port, "127.0.0.1.evil.test", "localhost.evil.test", "[::2]" }) do
      local res = http.request(admin_port, "GET", "/healthz", { { "Host", host } })
      assert.equal(403, res.status, host)
      assert.matches("only to Host 127.0.0.1", res.body)
    end
    -- spaces after the value are no part of it; two Host headers are refused
    local res = http.raw(admin_port, "GET /healthz HTTP/1.1\r\nHost: localhost \t\r\n\r\n")
    assert.equal(200, res.status)
    res = http.raw(admin_port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.test\r\n\r\n")
    assert.equal(403, res.status)
    -- a probe without Host (HTTP/1.0, as the container's health check sends) is no browser
    local raw = http.raw(admin_port, "GET /healthz HTTP/1.0\r\n\r\n")
    assert.equal(200, raw.status)
  end)

  it("reads no body but PUT /tenants/{name}'s: 413 before it is read", function()
    local res = http.request(admin_port, "POST", "/reload", {}, "x")
    assert.equal(413, res.status)
    assert.matches("only PUT /tenants/{name} takes one", res.body, 1, true)
  end)
end)
